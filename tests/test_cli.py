import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from pipeline.cli import cli

COMMANDS = sorted(cli.commands)


def test_group_help_lists_every_command():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_help(name):
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_python_dash_m():
    out = subprocess.run(
        [sys.executable, "-m", "pipeline", "--help"], capture_output=True, text=True, check=True
    )
    assert "folds" in out.stdout


def test_demo_data_layout_and_determinism(tmp_path):
    runner = CliRunner()
    args = ["--cars", "2", "--views", "3", "--test-cars", "1", "--size", "96x64", "--seed", "4"]
    for out in ("a", "b"):
        result = runner.invoke(cli, ["demo-data", str(tmp_path / out), *args])
        assert result.exit_code == 0, result.output
    a, b = tmp_path / "a", tmp_path / "b"
    assert sorted(p.name for p in a.iterdir()) == [
        "sample_submission.csv",
        "test",
        "train",
        "train_masks",
        "train_masks.csv",
    ]
    assert (
        len(list((a / "train").glob("*.jpg"))) == 6 and len(list((a / "test").glob("*.jpg"))) == 3
    )
    for f in sorted(a.rglob("*.*")):
        assert f.read_bytes() == (b / f.relative_to(a)).read_bytes(), f
    mask = np.array(Image.open(next((a / "train_masks").glob("*_mask.gif"))))
    assert mask.shape == (64, 96) and set(np.unique(mask)) == {0, 1}
    assert (a / "sample_submission.csv").read_text().splitlines()[0] == "img,rle_mask"


def test_demo_data_refuses_to_overwrite(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    result = CliRunner().invoke(cli, ["demo-data", str(tmp_path / "x"), "--size", "96x64"])
    assert result.exit_code == 1 and "not empty" in result.output
    assert (tmp_path / "x" / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize("size", ["96", "0x10", "5000x100"])
def test_demo_data_bad_size(tmp_path, size):
    result = CliRunner().invoke(cli, ["demo-data", str(tmp_path / "y"), "--size", size])
    assert result.exit_code != 0 and "size" in result.output.lower()
