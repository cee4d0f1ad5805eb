"""Issue 23, items 1-5: the score shown is the score of what is applied, and no stale or leaky
prediction is reused.

1. the clean-up search scores candidates through ``Decision.mask`` (clean-up, then min area);
2. an ensemble that fixes part of its decision searches the rest with it held fixed, and the
   sidecar, ledger and summary give the OOF Dice of the applied decision (also all fixed);
3. weights are fitted on the maps the fused store holds; ``tune --ensemble`` writes what
   ``ensemble`` writes;
4. ``predict`` refuses fold models trained on other folds than the folds table gives now;
5. a store entry is reused only while its checkpoint, TTA, precision and image file are unchanged.
"""

import contextlib
import csv
import json
import os
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.config import load_config
from pipeline.data import open_dataset
from pipeline.decide.decision import Decision, Fixed
from pipeline.decide.search import cleanup_table, search_oof
from pipeline.decide.store import ProbStore
from pipeline.ops.metrics import dice_score
from pipeline.paths import Layout
from tests.conftest import copy_project, write_config

RUN = "tiny_64x96"
ONE_MEMBER = f"name: tiny-ens\nmembers: [{{run: {RUN}}}]\nworkers: 0\nqa: false\n"
HEADER = {
    "run": "r",
    "split": "oof",
    "folds": [0],
    "tta": "none",
    "classes": ["bg", "car"],
    "checkpoints": {},
    "resolution": "model",
}


def invoke(*args):
    return CliRunner().invoke(cli, list(args))


# ---- 1: one decision rule ---------------------------------------------------------------------
def _two_blobs_store(tmp_path):
    """One image: a 20-px and a 15-px blob, both true. Clean-up keeps the 20-px one; min area 25
    then empties it (the submission's rule), while min area before clean-up (35 px) keeps it."""
    probs = np.zeros((1, 20, 30), np.uint8)
    probs[0, 2:6, 2:7] = 250  # 20 px
    probs[0, 12:15, 20:25] = 250  # 15 px
    truth = (probs[0] > 127).astype(np.uint8)
    store = ProbStore.create(tmp_path / "oof", HEADER)
    store.write("a", probs)
    store.finalize([("a", 20, 30)])
    sample = SimpleNamespace(image_id="a")
    dataset = SimpleNamespace(
        train=[sample],
        read_mask=lambda s: truth,
        ignore_index=None,
        classes=["bg", "car"],
        num_classes=2,
    )
    return store, dataset, probs[0], truth


def test_the_clean_up_search_scores_the_submissions_own_rule(tmp_path):
    store, dataset, probs, truth = _two_blobs_store(tmp_path)
    table = cleanup_table(store, dataset, {"a": dataset.train[0]}, [127], 25)
    applied = Decision(127 / 255, 25, True).mask(probs)
    assert applied.sum() == 0  # clean-up first (20 px left), then min area: empty
    assert table[127] == (1.0, dice_score(applied, truth)) == (1.0, 0.0)
    out, _ = search_oof(store, dataset, {"a": 0}, Fixed(0.5, 25, True))
    decided = (out["threshold"], out["min_area"], out["cleanup"], out["oof_dice_final"])
    assert decided == (0.5, 25, True, 0.0)


# ---- 2 and 3: ensembles ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def predicted(tiny_project, tmp_path_factory):
    work = copy_project(tiny_project, tmp_path_factory.mktemp("integrity") / "work")
    with contextlib.chdir(work):
        result = invoke("predict", "tiny.yaml", "--set", "predict.precision=fp32")
        assert result.exit_code == 0, result.output
    return work


@pytest.fixture()
def project(predicted, tmp_path, monkeypatch):
    work = copy_project(predicted, tmp_path / "work")
    monkeypatch.chdir(work)
    return work


def _applied_oof_dice(project, name: str, decision: Decision) -> float:
    """Mean OOF Dice of ``decision`` over the ensemble's fused OOF store, computed here."""
    dataset = open_dataset(load_config("tiny.yaml").dataset)
    store = ProbStore.open(Layout(project).ensemble(name).store("oof"))
    by_id = {s.image_id: s for s in dataset.train}
    return float(
        np.mean(
            [
                dice_score(decision.mask(store.read(i)[0]), dataset.read_mask(by_id[i]) == 1)
                for i in store.ids()
            ]
        )
    )


@pytest.mark.parametrize(
    "fixed",
    [
        # part fixed: a poor threshold, on purpose
        "threshold: 0.05\nmin_area: tune\ncleanup: tune\n",
        # all fixed: still scored
        "threshold: 0.05\nmin_area: 40\ncleanup: true\n",
    ],
)
def test_the_ensemble_reports_the_oof_dice_of_the_decision_it_applied(project, fixed):
    write_config(project / "ens.yaml", f"{ONE_MEMBER}{fixed}")
    result = invoke("ensemble", "ens.yaml")
    assert result.exit_code == 0, result.output
    side = json.loads((project / "submissions" / "tiny-ens.json").read_text())
    applied = Decision(side["threshold"], side["min_area"], side["cleanup"])
    assert side["threshold"] == 0.05
    want = _applied_oof_dice(project, "tiny-ens", applied)
    assert side["oof_dice"] == pytest.approx(want, abs=1e-12)
    if "min_area: tune" in fixed:  # searched at 0.05: no other min area does better there
        searched = Layout(project).ensemble("tiny-ens").thresholds()
        grid = json.loads(searched.read_text())["min_area_grid"]
        others = [
            _applied_oof_dice(project, "tiny-ens", Decision(0.05, a, applied.cleanup)) for a in grid
        ]
        assert want >= max(others) - 1e-12
    with open(project / "submissions" / "ledger.csv", newline="") as fh:
        row = list(csv.DictReader(fh))[-1]
    assert float(row["oof_dice"]) == pytest.approx(want, abs=1e-6)
    assert f"ensemble OOF Dice {want:.5f} at threshold 0.0500" in result.output
    summary = invoke("summary", RUN, "--ensemble", "tiny-ens")
    assert summary.exit_code == 0 and f"{want:.4f}" in summary.output, summary.output


def test_weights_are_fitted_on_the_maps_the_fused_store_holds(project, monkeypatch):
    """Members stored below the image size: fit, fused store and test pass fuse, then resize."""
    import pipeline.stages.ensemble as stage
    from pipeline.decide.blend import BinaryScorer

    runs = Layout(project).artifacts / "runs"
    shutil.copytree(runs / RUN, runs / "tiny2_64x96")
    rng = np.random.default_rng(0)
    for run in (RUN, "tiny2_64x96"):
        store = ProbStore.open(runs / run / "oof")
        for image_id in store.ids():
            store.write(image_id, rng.integers(0, 256, (1, 32, 48), dtype=np.uint8), (64, 96))
    seen: list[np.ndarray] = []

    class Recording(BinaryScorer):
        def add(self, fused, mask):
            seen.append(fused.copy())
            super().add(fused, mask)

    monkeypatch.setattr(stage, "BinaryScorer", Recording)
    write_config(
        project / "ens.yaml",
        f"name: tiny-ens\nmembers: [{{run: {RUN}}}, "
        "{run: tiny2_64x96}]\nweights: fit\nfit_grid: [0.5]\nfit_rounds: 1\n"
        "cleanup: false\nworkers: 0\nqa: false\n",
    )
    result = invoke("ensemble", "ens.yaml")  # one candidate (equal weights): one scorer, one pass
    assert result.exit_code == 0, result.output
    fused = ProbStore.open(Layout(project).ensemble("tiny-ens").store("oof"))
    assert len(seen) == len(fused.ids()) == 24
    for image_id, maps in zip(fused.ids(), seen, strict=True):
        np.testing.assert_array_equal(maps, fused.read(image_id))


def test_tune_ensemble_writes_the_decision_ensemble_writes(project):
    write_config(project / "ens.yaml", f"{ONE_MEMBER}threshold: 0.05\nmin_area: tune\n")
    assert invoke("ensemble", "ens.yaml").exit_code == 0
    folder = Layout(project).ensemble("tiny-ens")
    first = json.loads(folder.decision().read_text())
    result = invoke("tune", "--ensemble", "tiny-ens")
    assert result.exit_code == 0, result.output
    again = json.loads(folder.decision().read_text())
    assert again["made_by"] == "tune" and first["made_by"] == "ensemble"
    assert {k: again[k] for k in ("decision", "inputs", "oof_score", "metric")} == {
        k: first[k] for k in ("decision", "inputs", "oof_score", "metric")
    }
    applied = Decision(**{k: again["decision"][k] for k in ("threshold", "min_area", "cleanup")})
    assert again["decision"]["threshold"] == 0.05
    want = _applied_oof_dice(project, "tiny-ens", applied)
    assert again["oof_score"] == pytest.approx(want, abs=1e-12)
    assert json.loads(folder.thresholds().read_text())["fixed"]["threshold"] == 0.05


# ---- 4: no leaky OOF ----------------------------------------------------------------------------
def test_predict_refuses_fold_models_of_another_folds_table(project):
    oof = Layout(project).run(RUN).store("oof")
    before = {p.name: p.read_bytes() for p in oof.iterdir()}
    folds_csv = project / "folds" / "tiny.csv"
    old_table = folds_csv.read_text()
    result = invoke("folds", "tiny.yaml", "--set", "folds.seed=7")
    assert result.exit_code == 0, result.output
    assert folds_csv.read_text() != old_table  # cars moved to other folds
    result = invoke("predict", "tiny.yaml", "--set", "predict.precision=fp32")
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert "fold0/summary.json: this fold model was trained on other images than" in result.output
    assert "would leak" in result.output and "'pipeline train CONFIG --force'" in result.output
    assert {p.name: p.read_bytes() for p in oof.iterdir()} == before  # the store was not touched
    result = invoke("train", "tiny.yaml")  # train refuses too, for the same reason
    assert result.exit_code == 1 and "other fold images" in result.output
    folds_csv.write_text(old_table)  # the folds the models were trained on: predict goes on
    assert invoke("predict", "tiny.yaml", "--set", "predict.precision=fp32").exit_code == 0


def test_a_fold_retrained_with_another_setting_is_no_leak(project):
    """Same fold images, another config: the model never saw what it predicts, so no refusal."""
    from pipeline.errors import PipelineError
    from pipeline.model import checkpoint
    from pipeline.train.provenance import check_fold_model

    layout, cfg = Layout(project), load_config("tiny.yaml")
    dataset = open_dataset(cfg.dataset)
    by_id = {s.image_id: s for s in dataset.train}
    rows = list(csv.DictReader((project / "folds" / "tiny.csv").read_text().splitlines()))
    train = [by_id[r["image_id"]] for r in rows if r["fold"] != "0"]
    val = [by_id[r["image_id"]] for r in rows if r["fold"] == "0"]
    fold = layout.run(RUN).fold(0)
    trained = checkpoint.load(fold.model())["config"]
    recorded = json.loads(fold.summary().read_text())["fingerprint"]
    table = layout.folds_csv("tiny")
    longer = cfg.model_copy(deep=True)
    longer.train.epochs = 5  # edited since: not what fold 0 trained with, but no leak
    check_fold_model(longer, trained, recorded, train, val, [], fold.summary(), table, dataset)
    with pytest.raises(PipelineError, match=r"other images than .*train.epochs 2 -> 5") as err:
        check_fold_model(longer, trained, recorded, val, train, [], fold.summary(), table, dataset)
    assert "\n" not in str(err.value)


# ---- 5: store entries carry what made them ------------------------------------------------------
def test_store_entries_are_reused_only_while_what_made_them_is_unchanged(project, monkeypatch):
    written = []
    original = ProbStore.write

    def write(self, image_id, *rest):
        written.append((self.path.name, image_id))
        original(self, image_id, *rest)

    monkeypatch.setattr(ProbStore, "write", write)
    fp32 = ("--set", "predict.precision=fp32")
    assert invoke("predict", "tiny.yaml", *fp32).exit_code == 0
    assert written == []  # nothing changed: every entry reused
    result = invoke("predict", "tiny.yaml", "--set", "predict.precision=bf16")
    assert result.exit_code == 0, result.output
    assert len(set(written)) == len(written) == 24 + 4  # another precision: all redone
    written.clear()
    assert invoke("predict", "tiny.yaml", "--set", "predict.precision=bf16").exit_code == 0
    assert written == []
    dataset = open_dataset(load_config("tiny.yaml").dataset)
    touched = dataset.train[0]
    stat = touched.image_path.stat()
    os.utime(touched.image_path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # changed
    assert invoke("predict", "tiny.yaml", "--set", "predict.precision=bf16").exit_code == 0
    assert written == [("oof", touched.image_id)]  # only that image, predicted again
    store = ProbStore.open(Layout(project).run(RUN).store("oof"))
    assert store.complete and store.manifest["format"] == "segfuse-store-3"
