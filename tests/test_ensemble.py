import contextlib
import csv
import gzip
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.store import ProbStore
from tests.conftest import copy_project, write_config

RUN = "tiny_64x96"


def invoke(*args):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture(scope="module")
def predicted(tiny_project, tmp_path_factory):
    """tiny_project plus OOF/test stores of a second run (same models, other TTA) for fusion."""
    work = copy_project(tiny_project, tmp_path_factory.mktemp("ens") / "work")
    with contextlib.chdir(work):
        assert invoke("predict", "tiny.yaml").exit_code == 0
        second = work / "artifacts" / "runs" / "tiny2_64x96"
        second.mkdir(parents=True)
        for k in (0, 1):
            (second / f"fold{k}").mkdir()
            (second / f"fold{k}" / "model.pt").write_bytes(
                (work / "artifacts" / "runs" / RUN / f"fold{k}" / "model.pt").read_bytes())
        (second / "config.yaml").write_text((work / "artifacts" / "runs" / RUN / "config.yaml").read_text())
        assert invoke("predict", "tiny.yaml", "--set", "name=tiny2", "--tta", "none").exit_code == 0
    return work


@pytest.fixture()
def project(predicted, tmp_path, monkeypatch):
    work = copy_project(predicted, tmp_path / "work")
    monkeypatch.chdir(work)
    write_config(work / "ens.yaml", f"""name: tiny-ens
members: [{{run: {RUN}}}, {{run: tiny2_64x96}}]
weights: fit
fit_grid: [0.0, 0.5, 1.0]
workers: 0
""")
    return work


def read_rows(path):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", newline="") as fh:
        return list(csv.reader(fh))


def test_ensemble_writes_valid_submission_sidecar_and_ledger(project):
    result = invoke("ensemble", "ens.yaml")
    assert result.exit_code == 0, result.output
    rows = read_rows(project / "submissions" / "tiny-ens.csv")
    assert rows[0] == ["img", "rle_mask"] and len(rows) == 1 + 4
    assert all(r[0].endswith(".jpg") for r in rows[1:])
    side = json.loads((project / "submissions" / "tiny-ens.json").read_text())
    assert side["members"] == [RUN, "tiny2_64x96"] and abs(sum(side["weights"]) - 1) < 1e-9
    assert 0 <= side["threshold"] < 1 and side["oof_dice"] is not None and side["config_hash"]
    assert set(side["member_oof_dice"]) == {RUN, "tiny2_64x96"}
    ledger = read_rows(project / "submissions" / "ledger.csv")
    assert ledger[0][0] == "time" and ledger[1][1] == "tiny-ens"
    assert ProbStore.open(project / "artifacts" / "ensembles" / "tiny-ens" / "test").complete
    assert invoke("validate", "submissions/tiny-ens.csv").exit_code == 0
    again = invoke("ensemble", "ens.yaml")
    assert again.exit_code == 1 and "exists" in again.output  # never overwritten silently
    assert invoke("ensemble", "ens.yaml", "--overwrite").exit_code == 0
    assert len(read_rows(project / "submissions" / "ledger.csv")) == 3


def test_gzip_workers_and_rows_follow_sample_order(project, tiny_carvana):
    result = invoke("ensemble", "ens.yaml", "--set", "gzip=true", "--set", "workers=2", "--set", "weights=equal",
                    "--set", "threshold=0.5", "--set", "min_area=0", "--set", "cleanup=false")
    assert result.exit_code == 0, result.output
    rows = read_rows(project / "submissions" / "tiny-ens.csv.gz")
    sample = read_rows(tiny_carvana / "sample_submission.csv")
    assert [r[0] for r in rows] == [r[0] for r in sample]
    assert invoke("validate", "submissions/tiny-ens.csv.gz").exit_code == 0


def test_killed_ensemble_leaves_no_partial_submission(project):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-c", (
        "import time, pipeline.stages.ensemble as e\n"
        "orig = e._encode_image\n"
        "def slow(i):\n    time.sleep(0.5)\n    return orig(i)\n"
        "e._encode_image = slow\n"
        "from pipeline.cli import cli\ncli(['ensemble', 'ens.yaml', '--set', 'workers=0'])\n")],
        cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    subs = project / "submissions"
    while time.time() < deadline and not any(p.name.endswith(".tmp") for p in subs.glob(".*")):
        time.sleep(0.05)
    assert any(p.name.endswith(".tmp") for p in subs.glob(".*")), "the writer never started"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (subs / "tiny-ens.csv").exists()
    assert not (subs / "tiny-ens.json").exists()


def test_validate_reports_each_violation(project, tiny_carvana):
    sample = tiny_carvana / "sample_submission.csv"
    ids = [r[0] for r in read_rows(sample)[1:]]
    bad = project / "bad.csv"
    bad.write_text("img,rle\n"
                   f"{ids[1]},1 5\n"
                   f"{ids[0]},5 2 1 2\n"
                   f"{ids[0]},1 2\n"
                   f"{ids[2]},1 0\n"
                   f"{ids[3]},6143 3\n")
    result = invoke("validate", str(bad), "--sample", str(sample), "--format", "carvana", "--size", "96x64")
    assert result.exit_code == 1
    out = result.output
    for expected in ["line 1: header", "line 2: id", "out of order", "line 3:", "unsorted or overlaps",
                     "line 4: id", "repeats line 3", "line 5:", "not positive", "line 6:", "ends past"]:
        assert expected in out, (expected, out)


def test_validate_good_file_with_sample(project, tiny_carvana):
    sample = tiny_carvana / "sample_submission.csv"
    result = invoke("validate", str(sample), "--sample", str(sample), "--size", "96x64")
    assert result.exit_code == 0, result.output


def test_member_missing_is_a_clear_error(project):
    result = invoke("ensemble", "ens.yaml", "--set", "members=[{run: ghost}]")
    assert result.exit_code == 1 and "ghost" in result.output and "train and predict" in result.output
