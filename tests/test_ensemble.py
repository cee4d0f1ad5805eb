import contextlib
import csv
import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.config import load_config
from pipeline.data import open_dataset
from pipeline.decide.store import ProbStore
from pipeline.output.writers import LEDGER_COLUMNS, upgrade_ledger
from tests.conftest import copy_project, write_config

RUN = "tiny_64x96"


def invoke(*args):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture(scope="module")
def predicted(tiny_project, tmp_path_factory):
    """tiny_project's stores plus a planted better member ``tiny2_64x96``: its OOF store holds the
    truth, timidly (160 on the car, 96 elsewhere: OOF Dice 1 at 0.5, but averaging in the weak first
    run blurs it, so all weight on it is the unique optimum);
    its test store copies the first run's."""
    work = copy_project(tiny_project, tmp_path_factory.mktemp("ens") / "work")
    with contextlib.chdir(work):
        assert invoke("predict", "tiny.yaml").exit_code == 0
        first, second = (
            work / "artifacts" / "runs" / RUN,
            work / "artifacts" / "runs" / "tiny2_64x96",
        )
        shutil.copytree(first, second)
        dataset = open_dataset(load_config("tiny.yaml").dataset)
        store = ProbStore.open(second / "oof")
        for sample in dataset.train:
            store.write(
                sample.image_id,
                np.where(dataset.read_mask(sample) == 1, 160, 96).astype(np.uint8)[None],
            )
    return work


@pytest.fixture()
def project(predicted, tmp_path, monkeypatch):
    work = copy_project(predicted, tmp_path / "work")
    monkeypatch.chdir(work)
    write_config(
        work / "ens.yaml",
        f"""name: tiny-ens
members: [{{run: {RUN}}}, {{run: tiny2_64x96}}]
weights: fit
fit_grid: [0.0, 0.5, 1.0]
workers: 0
""",
    )
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
    # fit finds the planted member: all weight on it, and the ensemble scores what it scores
    # (member_oof_dice comes from each run's predict_report.json, which the planted run copied)
    assert side["weights"] == [0.0, 1.0] and side["oof_dice"] == 1.0 > side["member_oof_dice"][RUN]
    board = side[
        "estimated_score"
    ]  # QA's estimate: mean of the test images' estimated Dice, 95% interval
    assert (
        board["metric"] == "Dice"
        and board["low"] <= board["mean"] <= board["high"]
        and board["images"] == 4
    )
    assert 0 <= board["oof_estimated_mean"] <= 1 and board["oof_true_mean"] == pytest.approx(
        side["oof_dice"]
    )
    assert re.search(
        r"OOF Dice 1\.00000, estimated test Dice [01]\.\d{4} ± 0\.\d{4} \(95%", result.output
    )
    ledger = read_rows(project / "submissions" / "ledger.csv")
    assert ledger[0][0] == "time" and ledger[1][1] == "tiny-ens"
    assert ledger[0][-2:] == ["est_score", "est_half_width"] and float(
        ledger[1][-2]
    ) == pytest.approx(board["mean"])
    assert ProbStore.open(project / "artifacts" / "ensembles" / "tiny-ens" / "test").complete
    assert invoke("validate", "submissions/tiny-ens.csv").exit_code == 0
    again = invoke("ensemble", "ens.yaml")
    assert again.exit_code == 1 and "exists" in again.output  # never overwritten silently
    assert invoke("ensemble", "ens.yaml", "--overwrite").exit_code == 0
    assert len(read_rows(project / "submissions" / "ledger.csv")) == 3


def test_an_older_ledger_gains_the_new_columns_before_a_row_is_added(tmp_path):
    ledger = tmp_path / "ledger.csv"
    old = [c for c in LEDGER_COLUMNS if not c.startswith("est_")]
    ledger.write_text(",".join(old) + "\n" + ",".join(f"v{i}" for i in range(len(old))) + "\n")
    upgrade_ledger(ledger)
    rows = read_rows(ledger)
    assert rows[0] == list(LEDGER_COLUMNS) and rows[1] == [f"v{i}" for i in range(len(old))] + [
        "",
        "",
    ]
    upgrade_ledger(ledger)
    assert read_rows(ledger) == rows


def test_gzip_workers_and_rows_follow_sample_order(project, tiny_carvana):
    result = invoke(
        "ensemble",
        "ens.yaml",
        "--set",
        "gzip=true",
        "--set",
        "workers=2",
        "--set",
        "weights=equal",
        "--set",
        "threshold=0.5",
        "--set",
        "min_area=0",
        "--set",
        "cleanup=false",
    )
    assert result.exit_code == 0, result.output
    rows = read_rows(project / "submissions" / "tiny-ens.csv.gz")
    sample = read_rows(tiny_carvana / "sample_submission.csv")
    assert [r[0] for r in rows] == [r[0] for r in sample]
    assert invoke("validate", "submissions/tiny-ens.csv.gz").exit_code == 0


@pytest.mark.slow
def test_killed_ensemble_leaves_no_partial_submission(project):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import time, pipeline.stages.ensemble as e\n"
                "orig = e._encode_image\n"
                "def slow(i):\n    time.sleep(0.5)\n    return orig(i)\n"
                "e._encode_image = slow\n"
                "from pipeline.cli import cli\n"
                "cli(['ensemble', 'ens.yaml', '--set', 'workers=0'])\n"
            ),
        ],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.time() + 120
    subs = project / "submissions"
    while time.time() < deadline and not any(".tmp" in p.name for p in subs.glob(".*")):
        time.sleep(0.05)
    assert any(".tmp" in p.name for p in subs.glob(".*")), "the writer never started"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (subs / "tiny-ens.csv").exists()
    assert not (subs / "tiny-ens.json").exists()


def test_validate_reports_each_violation(project, tiny_carvana):
    sample = tiny_carvana / "sample_submission.csv"
    ids = [r[0] for r in read_rows(sample)[1:]]
    bad = project / "bad.csv"
    bad.write_text(
        f"img,rle\n{ids[1]},1 5\n{ids[0]},5 2 1 2\n{ids[0]},1 2\n{ids[2]},1 0\n{ids[3]},6143 3\n"
    )
    result = invoke(
        "validate", str(bad), "--sample", str(sample), "--format", "carvana", "--size", "96x64"
    )
    assert result.exit_code == 1
    out = result.output
    for expected in [
        "line 1: header",
        "line 2: id",
        "out of order",
        "line 3:",
        "unsorted or overlaps",
        "line 4: id",
        "repeats line 3",
        "line 5:",
        "not positive",
        "line 6:",
        "ends past",
    ]:
        assert expected in out, (expected, out)


def test_validate_accepts_a_real_submission_and_rejects_its_mutations(project, tiny_carvana):
    """A file with non-trivial masks (not the sample itself) passes;
    each single defect is caught."""
    from pipeline.ops.rle import rle_encode_numpy

    sample = tiny_carvana / "sample_submission.csv"
    ids = [r[0] for r in read_rows(sample)[1:]]
    rng = np.random.default_rng(0)
    masks = [rng.random((64, 96)) < 0.3 for _ in ids]
    masks[0][:] = False  # an empty mask: empty RLE
    masks[1][-1, -1] = masks[1][0, 0] = True  # first and last pixel
    rles = [rle_encode_numpy(m.astype(np.uint8), "C") for m in masks]
    assert rles[0] == "" and rles[1].startswith("1 ") and all(len(r.split()) > 20 for r in rles[1:])

    def check(rows):
        path = project / "sub.csv"
        path.write_text("img,rle_mask\n" + "".join(f"{i},{r}\n" for i, r in rows))
        return invoke(
            "validate", str(path), "--sample", str(sample), "--format", "carvana", "--size", "96x64"
        )

    good = check(list(zip(ids, rles, strict=True)))
    assert good.exit_code == 0, good.output
    last = rles[2].split()
    mutations = {
        "out of order": [
            (ids[1], rles[1]),
            (ids[0], rles[0]),
            *zip(ids[2:], rles[2:], strict=True),
        ],
        "missing": list(zip(ids[:-1], rles[:-1], strict=True)),
        "ends past": [(ids[0], "6144 2"), *zip(ids[1:], rles[1:], strict=True)],
        "pairs": [
            *zip(ids[:2], rles[:2], strict=True),
            (ids[2], " ".join(last[:-1])),
            *zip(ids[3:], rles[3:], strict=True),
        ],
    }
    for message, rows in mutations.items():
        result = check(rows)
        assert result.exit_code == 1 and message in result.output, (message, result.output)


def test_member_missing_is_a_clear_error(project):
    result = invoke("ensemble", "ens.yaml", "--set", "members=[{run: ghost}]")
    assert (
        result.exit_code == 1 and "ghost" in result.output and "train and predict" in result.output
    )


def test_weights_are_judged_under_clean_up():
    """A confident false blob far from the car costs Dice at every threshold, but clean-up removes
    it: the clean-up scorer judges a candidate by what the submission will get."""
    from pipeline.decide.blend import BinaryScorer, CleanupScorer

    mask = np.zeros((64, 96), np.uint8)
    mask[10:50, 20:70] = 1
    fused = (mask * 230)[None].astype(np.uint8)
    fused[0, 52:64, 74:96] = 240  # the blob: more confident than the car itself
    plain, cleaned = BinaryScorer(), CleanupScorer()
    for sc in (plain, cleaned):
        sc.add(fused, mask)
    assert plain.score() < 0.95
    assert cleaned.score() == 1.0
    # and never worse than the plain scorer (clean-up can only be chosen when it helps)
    holes = fused.copy()
    holes[0, 20:30, 30:40] = 0  # a hole clean-up fills: also right here
    blurred = np.where(fused > 0, 140, 120).astype(np.uint8)  # clean-up cannot help at 0.5
    for candidate in (holes, blurred):
        p, c = BinaryScorer(), CleanupScorer()
        p.add(candidate, mask)
        c.add(candidate, mask)
        assert c.score() >= p.score()


def test_ensemble_refuses_a_member_whose_test_store_misses_a_shard(project):
    from pipeline.decide.store_shards import Shard

    store = ProbStore.open(project / "artifacts" / "runs" / RUN / "test")
    index = store.manifest["index"]
    store.manifest.pop("index")
    store.update_manifest(complete=False)
    store.finalize_shard(Shard(1, 2), [tuple(row) for row in index if Shard(1, 2).holds(row[0])])
    result = invoke("ensemble", "ens.yaml")
    assert result.exit_code == 1
    assert "shard 2/2 missing" in result.output and "--shard 2/2" in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
