"""One decision artifact and fingerprinted caches: the failures of issue 12,
end to end on a tiny run.

- an ensemble rerun after a member was predicted again fuses the new predictions (not the old
  fused OOF store), and ``--name`` gives it its own folder;
- an ensemble over a damaged member store entry fails instead of reusing its old fused store;
- pseudo-labels use the decision the submission applied (fixed values included);
- a run's tuned decision is the one serve/video apply.
"""

import contextlib
import json

import numpy as np
import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.decide.decision import Decision, read_decision, write_decision
from pipeline.decide.store import ProbStore
from pipeline.paths import Layout
from pipeline.predict.runmodel import RunModel
from tests.conftest import copy_project, write_config

RUN = "tiny_64x96"


def invoke(*args):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture(scope="module")
def predicted(tiny_project, tmp_path_factory):
    work = copy_project(tiny_project, tmp_path_factory.mktemp("decisions") / "work")
    with contextlib.chdir(work):
        result = invoke("predict", "tiny.yaml", "--tta", "flip")
        assert result.exit_code == 0, result.output
    return work


@pytest.fixture()
def project(predicted, tmp_path, monkeypatch):
    work = copy_project(predicted, tmp_path / "work")
    monkeypatch.chdir(work)
    return work


def stores_equal(a: ProbStore, b: ProbStore) -> bool:
    return a.ids() == b.ids() and all((a.read(i) == b.read(i)).all() for i in a.ids())


def test_ensemble_refuses_a_stale_fused_oof_store_and_name_gives_its_own_folder(project):
    write_config(project / "ens.yaml", f"name: tiny-ens\nmembers: [{{run: {RUN}}}]\nworkers: 0\n")
    layout = Layout(project)
    assert invoke("ensemble", "ens.yaml").exit_code == 0
    first = ProbStore.open(layout.ensemble("tiny-ens").store("oof"))
    member = layout.run(RUN).store("oof")
    assert stores_equal(
        first, ProbStore.open(member)
    )  # one member, weight 1: fused OOF = member OOF
    before = {i: first.read(i).copy() for i in first.ids()}

    result = invoke(
        "predict", "tiny.yaml", "--tta", "none", "--force"
    )  # the member changes under the ensemble
    assert result.exit_code == 0, result.output
    assert any((ProbStore.open(member).read(i) != p).any() for i, p in before.items())

    result = invoke("ensemble", "ens.yaml", "--name", "again")
    assert result.exit_code == 0, result.output
    again = layout.ensemble("again")
    assert stores_equal(
        ProbStore.open(again.store("oof")), ProbStore.open(member)
    )  # fused anew, in its own folder
    side = json.loads((project / "submissions" / "again.json").read_text())
    assert side["ensemble"] == "again" and side["run_config"] == str(
        again.config().relative_to(project)
    )
    assert all(
        (first.read(i) == p).all() for i, p in before.items()
    )  # the first ensemble's folder is untouched

    result = invoke(
        "ensemble", "ens.yaml", "--overwrite"
    )  # same name: the stale fused store is replaced too
    assert result.exit_code == 0, result.output
    assert stores_equal(
        ProbStore.open(layout.ensemble("tiny-ens").store("oof")), ProbStore.open(member)
    )


def test_ensemble_over_a_damaged_member_entry_fails(project):
    write_config(project / "ens.yaml", f"name: tiny-ens\nmembers: [{{run: {RUN}}}]\nworkers: 0\n")
    assert invoke("ensemble", "ens.yaml").exit_code == 0
    store = ProbStore.open(Layout(project).run(RUN).store("oof"))
    damaged = store.path / f"{store.ids()[0]}{store.suffix}"
    damaged.write_bytes(damaged.read_bytes()[:12] + b"\0" * 20)
    result = invoke("ensemble", "ens.yaml", "--overwrite")
    assert result.exit_code == 1 and "corrupt store entry" in result.output, result.output


@pytest.mark.parametrize(
    "fixed, expected",
    [
        (
            "threshold: 0.37\nmin_area: tune\ncleanup: false\n",
            {"threshold": 0.37, "cleanup": False},
        ),
        (
            "threshold: 0.37\nmin_area: 5\ncleanup: true\n",
            {"threshold": 0.37, "min_area": 5.0, "cleanup": True},
        ),
    ],
)
def test_pseudo_labels_use_the_decision_the_submission_applied(project, fixed, expected):
    write_config(
        project / "ens.yaml", f"name: tiny-ens\nmembers: [{{run: {RUN}}}]\nworkers: 0\n{fixed}"
    )
    result = invoke("ensemble", "ens.yaml")
    assert result.exit_code == 0, result.output
    side = json.loads((project / "submissions" / "tiny-ens.json").read_text())
    result = invoke("pseudo", "tiny-ens", "--round", "1", "--tau", "1.1")
    assert result.exit_code == 0, result.output
    applied = json.loads((project / "folds" / "pseudo_r1.json").read_text())["decision"]
    assert {k: applied[k] for k in expected} == expected
    assert {k: applied[k] for k in ("threshold", "min_area", "cleanup")} == {
        k: side[k] for k in ("threshold", "min_area", "cleanup")
    }  # the submission's decision, not another


def test_a_run_tuned_to_042_serves_masks_at_042(project):
    result = invoke("tune", "--run", RUN)
    assert result.exit_code == 0, result.output
    layout = Layout(project)
    tuned = read_decision(layout.run(RUN), multiclass=False)
    assert (
        RunModel.load(layout.run(RUN), device="cpu").decision == tuned
    )  # what tune wrote is what serve applies
    write_decision(layout.run(RUN), Decision(0.42, 0, False), "tune")
    model = RunModel.load(layout.run(RUN), device="cpu")
    probs = np.array([[[0.41, 0.43], [0.41, 0.43]]], np.float32)
    assert model.label(probs).tolist() == [
        [0, 1],
        [0, 1],
    ]  # 0.43 > 0.42 > 0.41; at 0.5 both would be 0
    summary = invoke("summary", RUN)
    assert summary.exit_code == 0 and "0.4200" in summary.output, summary.output


@pytest.mark.parametrize("damage", ["corrupt", "deleted"])
def test_a_damaged_checkpoint_leads_to_a_command_that_fixes_it(project, damage):
    run = Layout(project).run(RUN)
    oof = run.store("oof")
    before = {p.name: p.read_bytes() for p in oof.iterdir()}
    assert ProbStore.open(oof).complete
    if damage == "corrupt":
        run.model(0).write_bytes(b"not a checkpoint")
    else:
        run.model(0).unlink()
    result = invoke("predict", "tiny.yaml")
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert (
        "--fold 0" if damage == "corrupt" else "not trained yet; run 'pipeline train'"
    ) in result.output
    assert {
        p.name: p.read_bytes() for p in oof.iterdir()
    } == before  # the complete store was not touched
    result = invoke(
        "train", "tiny.yaml", "--fold", "0"
    )  # what the message says: it trains, not "done before"
    assert result.exit_code == 0 and "done before" not in result.output, result.output
    result = invoke("predict", "tiny.yaml")
    assert result.exit_code == 0, result.output
    assert ProbStore.open(oof).complete


def test_a_decision_tuned_on_predictions_that_changed_is_stale(project):
    assert invoke("tune", "--run", RUN).exit_code == 0
    assert (
        invoke("predict", "tiny.yaml", "--tta", "flip").exit_code == 0
    )  # nothing to redo: the decision holds
    folder = Layout(project).run(RUN)
    assert read_decision(folder, multiclass=False)
    assert invoke("predict", "tiny.yaml", "--tta", "none", "--force").exit_code == 0
    result = invoke("show", "--run", RUN, "--worst", "1")
    assert result.exit_code == 1 and "changed since; rerun 'pipeline tune --run" in result.output, (
        result.output
    )
    assert invoke("tune", "--run", RUN).exit_code == 0
    assert invoke("show", "--run", RUN, "--worst", "1").exit_code == 0
