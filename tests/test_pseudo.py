import contextlib
import json
import os
import shutil
from collections import Counter

import numpy as np
import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.decide.pseudo_labels import (
    PseudoRow,
    PseudoRule,
    check_no_leak,
    select,
    table_from_csv,
    table_to_csv,
)
from pipeline.errors import PipelineError
from pipeline.ops.confidence import band_fraction, mean_entropy, mean_entropy_numpy
from pipeline.train.sampler import MixedBatchSampler
from tests.conftest import copy_project, write_config

RUN = "tiny_64x96"


def invoke(*args):
    return CliRunner().invoke(cli, list(args))


@pytest.mark.parametrize(
    "values, lo, hi, expected",
    [
        ([0, 255, 128, 128], 0.1, 0.9, 0.5),
        ([25, 26, 229, 230], 0.1, 0.9, 0.5),  # 25.5 < p*255 < 229.5: 26 and 229 are inside the band
        ([0, 0, 0, 0], 0.1, 0.9, 0.0),
    ],
)
def test_band_fraction_truth_table(values, lo, hi, expected):
    assert band_fraction(np.array(values, np.uint8).reshape(1, 2, 2), lo, hi) == expected


def test_entropy_truth_table():
    assert mean_entropy(np.array([[[0, 255]]], np.uint8)) == 0.0
    half = mean_entropy(np.array([[[128]]], np.uint8))
    assert half == pytest.approx(1.0, abs=1e-4)
    rng = np.random.default_rng(0)
    probs = rng.integers(0, 256, (2, 9, 11), dtype=np.uint8)
    assert mean_entropy(probs) == pytest.approx(mean_entropy_numpy(probs))


@pytest.mark.parametrize(
    "tau, top_n, expected",
    [
        (0.5, None, ["c", "a", "b"]),
        (0.25, None, ["c", "a"]),
        (0.5, 2, ["c", "a"]),
        (0.05, None, []),
    ],
)
def test_selection_rule(tau, top_n, expected):
    scores = {"a": 0.2, "b": 0.3, "c": 0.1, "d": 0.9}
    assert select(scores, PseudoRule("band", tau, top_n=top_n)) == expected


def test_bad_rules():
    with pytest.raises(PipelineError, match="unknown"):
        PseudoRule("votes")
    with pytest.raises(PipelineError, match="lo < hi"):
        PseudoRule("band", lo=0.9, hi=0.1)


@pytest.mark.parametrize(
    "ratio, batch, pseudo_per_batch", [(0.25, 8, 2), (0.2, 8, 2), (0.01, 8, 1), (0.9, 4, 3)]
)
def test_batch_ratio_is_honoured(ratio, batch, pseudo_per_batch):
    sampler = MixedBatchSampler(n_labelled=30, n_pseudo=5, batch_size=batch, ratio=ratio, seed=0)
    sampler.set_epoch(3)
    batches = list(sampler)
    counts = Counter("pseudo" if i >= 30 else "labelled" for b in batches for i in b)
    assert counts["labelled"] == 30  # every labelled image exactly once per epoch
    assert all(sum(i >= 30 for i in b) == pseudo_per_batch for b in batches)
    assert counts["pseudo"] == pseudo_per_batch * len(batches) == pseudo_per_batch * len(sampler)
    assert sorted(i for b in batches for i in b if i < 30) == list(range(30))


def test_sampler_ranks_split_the_batches():
    full = list(MixedBatchSampler(20, 4, 4, 0.25, seed=1))
    samplers = [MixedBatchSampler(20, 4, 4, 0.25, seed=1, rank=r, world=2) for r in (0, 1)]
    parts = [list(s) for s in samplers]
    # 7 batches on 2 ranks: both take 4 steps (DDP would hang on 4 vs 3),
    # the 8th repeats the first batch
    assert len(full) == 7 and [len(p) for p in parts] == [len(s) for s in samplers] == [4, 4]
    assert sorted(map(tuple, parts[0] + parts[1])) == sorted(map(tuple, full + full[:1]))


def test_table_round_trip_and_leak_guard():
    rows = [
        PseudoRow("t_01", "t", 0.25, "m/t_01.png", False),
        PseudoRow("t_02", "t", 0.3, "m/t_02.png", True),
    ]
    assert table_from_csv(table_to_csv(rows), "x") == rows
    with pytest.raises(PipelineError, match="'t_02' .* is labelled"):
        check_no_leak(rows, {"t_02", "zz"}, "folds/pseudo_r1.csv")
    with pytest.raises(PipelineError, match="fold -1"):
        table_from_csv(table_to_csv(rows).replace(",-1,", ",0,"), "x")


@pytest.fixture(scope="module")
def ensembled(tiny_project, tmp_path_factory):
    work = copy_project(tiny_project, tmp_path_factory.mktemp("pseudo") / "work")
    with contextlib.chdir(work):
        assert invoke("predict", "tiny.yaml").exit_code == 0
        write_config(work / "ens.yaml", f"name: tiny-ens\nmembers: [{{run: {RUN}}}]\nworkers: 0\n")
        result = invoke("ensemble", "ens.yaml")
        assert result.exit_code == 0, result.output
    return work


@pytest.fixture()
def project(ensembled, tmp_path, monkeypatch):
    work = copy_project(ensembled, tmp_path / "work")
    monkeypatch.chdir(work)
    return work


def test_pseudo_round_writes_masks_table_and_provenance(project):
    result = invoke(
        "pseudo", "tiny-ens", "--round", "1", "--rule", "entropy", "--tau", "1.0", "--top-n", "3"
    )
    assert result.exit_code == 0, result.output
    rows = table_from_csv((project / "folds" / "pseudo_r1.csv").read_text(), "t")
    assert len(rows) == 3 and all(r.fold == -1 for r in rows)
    assert all((project / r.mask).is_file() or os.path.isfile(r.mask) for r in rows)
    prov = json.loads((project / "folds" / "pseudo_r1.json").read_text())
    assert (
        prov["ensemble"] == "tiny-ens"
        and prov["rule"]["kind"] == "entropy"
        and prov["selected"] == 3
    )
    assert 0 <= prov["decision"]["threshold"] < 1 and prov["candidates"] == 4
    again = invoke("pseudo", "tiny-ens", "--round", "1")
    assert again.exit_code == 1 and "exists" in again.output


@pytest.mark.parametrize("soft", [False, True])
def test_training_with_pseudo_rows_never_validates_them(project, monkeypatch, soft):
    args = ["pseudo", "tiny-ens", "--round", "2", "--tau", "1.1"] + (["--soft"] if soft else [])
    assert invoke(*args).exit_code == 0
    pseudo_ids = {
        r.image_id for r in table_from_csv((project / "folds" / "pseudo_r2.csv").read_text(), "t")
    }
    seen = {}
    from pipeline.train import loop

    original = loop.FoldTrainer.__init__

    def spy(self, setup, reporter=None):
        seen[setup.fold] = (
            {s.image_id for s in setup.train_set.samples},
            {s.image_id for s in setup.val_set.samples},
        )
        original(self, setup, reporter)

    monkeypatch.setattr(loop.FoldTrainer, "__init__", spy)
    result = invoke(
        "train",
        "tiny.yaml",
        "--set",
        "name=withpseudo",
        "--set",
        "train.epochs=1",
        "--set",
        "pseudo.table=folds/pseudo_r2.csv",
        "--set",
        "pseudo.ratio=0.25",
    )
    assert result.exit_code == 0, result.output
    assert set(seen) == {0, 1}
    for train_ids, val_ids in seen.values():
        assert pseudo_ids <= train_ids and not pseudo_ids & val_ids


def test_leaking_pseudo_table_is_an_error(project):
    labelled = next(iter((project / "folds" / "tiny.csv").read_text().splitlines()[1:])).split(",")[
        0
    ]
    (project / "folds" / "pseudo_r9.csv").write_text(
        table_to_csv([PseudoRow(labelled, "g", 0.2, "x.png", False)])
    )
    result = invoke(
        "train", "tiny.yaml", "--set", "name=leak", "--set", "pseudo.table=folds/pseudo_r9.csv"
    )
    assert result.exit_code == 1 and labelled in result.output and "is labelled" in result.output


def test_compare_runs(project):
    run_dir = project / "artifacts" / "runs"
    report = json.loads((run_dir / RUN / "predict_report.json").read_text())
    base = {int(k): v["score"] for k, v in report["folds"].items()}
    shutil.copytree(run_dir / RUN, run_dir / "tiny2_64x96")
    for k, delta in ((0, 0.1), (1, -0.02)):  # a candidate better on fold 0, worse on fold 1
        report["folds"][str(k)]["score"] = base[k] + delta
    (run_dir / "tiny2_64x96" / "predict_report.json").write_text(json.dumps(report))
    result = invoke("compare", RUN, "tiny2_64x96")
    assert result.exit_code == 0, result.output
    # differences +0.1 and -0.02: mean +0.04, population std 0.06, one fold of two better
    assert (
        "mean difference +0.04000 ± 0.06000" in result.output
        and "1 of 2 folds better" in result.output
    )
    assert f"{base[0]:.5f}" in result.output and f"{base[0] + 0.1:.5f}" in result.output
    reverse = invoke("compare", "tiny2_64x96", RUN)
    assert (
        "mean difference -0.04000 ± 0.06000" in reverse.output
        and "1 of 2 folds better" in reverse.output
    )
    (
        run_dir / "tiny2_64x96" / "predict_report.json"
    ).unlink()  # falls back to training's fold scores
    fallback = invoke("compare", RUN, "tiny2_64x96")
    assert fallback.exit_code == 0 and "predict reports / training summaries" in fallback.output
