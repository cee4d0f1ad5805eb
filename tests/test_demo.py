"""`make demo` end to end (the same `pipeline demo` command) at a tiny size."""

from pathlib import Path

from click.testing import CliRunner

from pipeline.cli import cli

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "--set",
    "train.resolutions=[[64, 96], [32, 64]]",
    "--set",
    "train.epochs=2",
    "--set",
    "model.kwargs={encoder_depth: 3, decoder_channels: [16, 8, 4]}",
]


def test_demo_end_to_end(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").symlink_to(
        REPO / "configs"
    )  # the recipe names configs/... (relative paths)
    args = ["demo", "--cars", "4", "--views", "3", "--test-cars", "1", "--size", "96x64", *TINY]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    for text in (
        "summary",
        "demo-unet-r18_64x96",
        "demo-unet-r18_32x64",
        "demo-ensemble",
        "vs best member",
        "validated",
        "estimated test",
    ):
        assert text in result.output, text
    sub = tmp_path / "submissions" / "demo-ensemble.csv"
    assert sub.is_file() and (tmp_path / "submissions" / "demo-ensemble.json").is_file()
    assert len(sub.read_text().splitlines()) == 1 + 3
    again = CliRunner().invoke(cli, args)  # reruns reuse data and finished folds
    assert again.exit_code == 0, again.output
    assert "reusing" in again.output
