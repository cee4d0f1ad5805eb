import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.data.splits import rows_from_csv
from pipeline.decide.store import ProbStore
from pipeline.errors import PipelineError
from tests.conftest import copy_project
from tests.killing import kill_during_write

RUN = "tiny_64x96"


def invoke(*args):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture()
def project(tiny_project, tmp_path, monkeypatch):
    work = copy_project(tiny_project, tmp_path / "work")
    monkeypatch.chdir(work)
    return work


def test_predict_writes_complete_stores_and_report(project):
    result = invoke("predict", "tiny.yaml", "--tta", "hflip")
    assert result.exit_code == 0, result.output
    assert "OOF Dice" in result.output and "all" in result.output
    run_dir = project / "artifacts" / "runs" / RUN
    rows = rows_from_csv((project / "folds" / "tiny.csv").read_text(), "folds")
    oof = ProbStore.open(run_dir / "oof")
    assert oof.complete and sorted(oof.ids()) == sorted(r.image_id for r in rows)
    assert oof.read(oof.ids()[0]).shape == (1, 64, 96)  # original size
    test = ProbStore.open(run_dir / "test")
    assert test.complete and len(test.ids()) == 4 and test.manifest["folds"] == [0, 1]
    assert set(test.manifest["checkpoints"]) == {"0", "1"}
    report = json.loads((run_dir / "predict_report.json").read_text())
    assert set(report["folds"]) == {"0", "1"} and 0 <= report["oof"]["dice"] <= 1
    assert report["oof"]["images"] == len(rows)
    info = invoke("store", "info", str(run_dir / "test"))
    assert info.exit_code == 0 and "hflip" in info.output and "complete" in info.output


def test_sigkilled_predict_leaves_only_whole_entries_and_resumes(project, monkeypatch):
    # a real SIGKILL while the 4th store entry is being written
    # (its bytes are on disk, not yet committed)
    info = kill_during_write(
        ["predict", "tiny.yaml", "--split", "oof", "--tta", "none"], project, ".u8zst", skip=3
    )
    store_dir = project / "artifacts" / "runs" / RUN / "oof"
    in_flight = Path(info["path"])
    image_id = in_flight.name.lstrip(".").split(".u8zst")[0]
    assert in_flight.parent == store_dir and info["bytes"] > 0
    assert not (
        store_dir / f"{image_id}.u8zst"
    ).exists()  # the interrupted entry is not there under its name
    store = ProbStore.open(store_dir)
    done = sorted(store.ids())
    assert len(done) == 3 and image_id not in done and not store.complete
    for i in done:  # every entry that is there is whole
        assert store.read(i).shape == (1, 64, 96)
    resumed = []
    original = ProbStore.write
    monkeypatch.setattr(
        ProbStore,
        "write",
        lambda self, i, p, *rest: (resumed.append(i), original(self, i, p, *rest)),
    )
    assert invoke("predict", "tiny.yaml", "--split", "oof", "--tta", "none").exit_code == 0
    assert set(done).isdisjoint(resumed) and len(resumed) == 24 - 3 and image_id in resumed
    store = ProbStore.open(store_dir)
    assert store.complete and len(store.ids()) == 24
    assert all(store.read(i).shape == (1, 64, 96) for i in store.ids())


def test_rerun_skips_everything_and_retrained_fold_is_redone(project, monkeypatch):
    assert invoke("predict", "tiny.yaml", "--split", "oof").exit_code == 0
    written = []
    original = ProbStore.write
    monkeypatch.setattr(
        ProbStore,
        "write",
        lambda self, i, p, *rest: (written.append(i), original(self, i, p, *rest)),
    )
    assert invoke("predict", "tiny.yaml", "--split", "oof").exit_code == 0
    assert written == []
    assert (
        invoke("train", "tiny.yaml", "--fold", "1", "--force", "--set", "train.epochs=1").exit_code
        == 0
    )
    result = invoke("predict", "tiny.yaml", "--split", "oof")
    assert result.exit_code == 0 and "fold 1: model changed" in result.output
    rows = rows_from_csv((project / "folds" / "tiny.csv").read_text(), "folds")
    assert sorted(written) == sorted(r.image_id for r in rows if r.fold == 1)


def test_store_mismatching_dataset_is_a_clear_error(project):
    assert invoke("predict", "tiny.yaml", "--split", "test").exit_code == 0
    store = ProbStore.open(project / "artifacts" / "runs" / RUN / "test")
    with pytest.raises(PipelineError, match="does not have"):
        store.check_against({i: (64, 96) for i in store.ids()[1:]})
    with pytest.raises(PipelineError, match="was predicted at"):
        store.check_against({i: (64, 97) for i in store.ids()})


def test_predict_before_training_is_a_clear_error(project):
    result = invoke("predict", "tiny.yaml", "--set", "name=other")
    assert result.exit_code == 1 and "not trained yet" in result.output


def test_tta_none_equals_plain(project):
    result = invoke("predict", "tiny.yaml", "--split", "oof", "--tta", "none")
    assert result.exit_code == 0
    report = json.loads((project / "artifacts" / "runs" / RUN / "predict_report.json").read_text())
    # the store holds round(p * 255) and p > 0.5 <=> round(p * 255) > 127.5: no TTA,
    # same Dice exactly
    assert report["oof"]["dice"] == report["oof"]["dice_plain"]
    assert all(f["dice"] == f["dice_plain"] for f in report["folds"].values())
    store = ProbStore.open(project / "artifacts" / "runs" / RUN / "oof")
    assert store.manifest["tta"] == "none" and np.issubdtype(
        store.read(store.ids()[0]).dtype, np.uint8
    )


def test_tune_on_oof_store(project):
    assert invoke("predict", "tiny.yaml", "--split", "oof").exit_code == 0
    result = invoke("tune", "--run", RUN)
    assert result.exit_code == 0, result.output
    out = json.loads((project / "artifacts" / "runs" / RUN / "thresholds.json").read_text())
    assert 0 <= out["threshold"] <= 1 and out["oof_dice_tuned"] >= out["oof_dice_at_0.5"] - 1e-12
    assert {f["fold"] for f in out["channels"][0]["per_fold"]} == {0, 1}
    assert out["oof_dice_final"] >= out["oof_dice_tuned"] - 1e-9 or not out["cleanup"]
    assert (project / "artifacts" / "runs" / RUN / "threshold_curve.png").stat().st_size > 1000
    report = json.loads((project / "artifacts" / "runs" / RUN / "predict_report.json").read_text())
    assert out["oof_dice_at_0.5"] == pytest.approx(report["oof"]["dice"], abs=1e-9)


def test_tune_errors(project):
    assert "exactly one of" in invoke("tune").output
    assert "not found" in invoke("tune", "--run", "nope").output
    result = invoke("tune", "--run", RUN)  # no predict yet
    assert result.exit_code == 1 and "not a probability store" in result.output


def test_test_shards_predicted_on_two_machines_complete_the_store(project, tmp_path, monkeypatch):
    from pipeline.decide.store_shards import shard_of

    wrong = invoke("predict", "tiny.yaml", "--split", "oof", "--shard", "1/2")
    assert wrong.exit_code == 1 and "use it with --split test" in wrong.output
    assert (
        "expected i/N" in invoke("predict", "tiny.yaml", "--split", "test", "--shard", "3/2").output
    )
    machine2 = copy_project(
        project, tmp_path / "machine2"
    )  # trained models and folds, as copied to a second machine
    result = invoke("predict", "tiny.yaml", "--split", "test", "--shard", "1/2", "--tta", "none")
    assert result.exit_code == 0, result.output
    store_dir = project / "artifacts" / "runs" / RUN / "test"
    store = ProbStore.open(store_dir)
    ids = [
        f"80a486915ac6_{v:02d}" for v in range(1, 5)
    ]  # the tiny test car: shard 1 holds _04, shard 2 the rest
    assert store.ids() == sorted(i for i in ids if shard_of(i, 2) == 1) and not store.complete
    assert "shard 2/2 missing" in store.incomplete_reason()
    monkeypatch.chdir(machine2)
    assert (
        invoke(
            "predict", "tiny.yaml", "--split", "test", "--shard", "2/2", "--tta", "none"
        ).exit_code
        == 0
    )
    shutil.copytree(machine2 / "artifacts" / "runs" / RUN / "test", store_dir, dirs_exist_ok=True)
    store = ProbStore.open(store_dir)
    assert store.complete and store.ids() == ids
    whole = copy_project(
        project, tmp_path / "whole"
    )  # the same images predicted in one go agree with the shards
    monkeypatch.chdir(whole)
    assert (
        invoke("predict", "tiny.yaml", "--split", "test", "--tta", "none", "--force").exit_code == 0
    )
    single = ProbStore.open(whole / "artifacts" / "runs" / RUN / "test")
    for i in ids:
        assert np.abs(single.read(i).astype(int) - store.read(i).astype(int)).max() <= 1


def test_test_only_prediction_keeps_the_oof_report(project):
    """`predict --split test` leaves the OOF store alone,
    so the OOF scores it reported stay in the report."""
    report_path = project / "artifacts" / "runs" / RUN / "predict_report.json"
    assert invoke("predict", "tiny.yaml", "--split", "oof").exit_code == 0
    before = json.loads(report_path.read_text())
    assert before["oof"] and before["folds"]
    assert invoke("predict", "tiny.yaml", "--split", "test").exit_code == 0
    after = json.loads(report_path.read_text())
    assert (
        after["oof"] == before["oof"]
        and after["folds"] == before["folds"]
        and after["test_images"] > 0
    )
    # another TTA: the old OOF scores are not of this TTA, so none are carried
    assert invoke("predict", "tiny.yaml", "--split", "test", "--tta", "none").exit_code == 0
    assert json.loads(report_path.read_text())["oof"] == {}
