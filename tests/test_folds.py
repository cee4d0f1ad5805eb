from collections import Counter, defaultdict

import numpy as np
import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.data.splits import (
    area_bins,
    fold_ids,
    holdout_assign,
    kfold_assign,
    rows_from_csv,
    rows_to_csv,
)
from pipeline.errors import PipelineError
from tests.conftest import write_config


def synthetic(n_groups=20, per_group=(1, 8), seed=0):
    rng = np.random.default_rng(seed)
    ids, groups, areas = [], [], []
    for g in range(n_groups):
        base = rng.uniform(0.05, 0.6)
        for v in range(int(rng.integers(*per_group))):
            ids.append(f"g{g:02d}_{v:02d}")
            groups.append(f"g{g:02d}")
            areas.append(float(np.clip(base + rng.normal(0, 0.02), 0, 1)))
    return ids, groups, areas


@pytest.mark.parametrize("k", [2, 3, 5])
@pytest.mark.parametrize("seed", [0, 1])
def test_groups_never_span_folds_and_every_image_once(k, seed):
    ids, groups, areas = synthetic(seed=seed)
    rows = kfold_assign(ids, groups, areas, k=k, seed=seed)
    assert sorted(r.image_id for r in rows) == sorted(ids)
    folds_of_group = defaultdict(set)
    for r in rows:
        folds_of_group[r.group].add(r.fold)
    assert all(len(f) == 1 for f in folds_of_group.values())
    assert fold_ids(rows) == list(range(k))


def test_fold_sizes_balanced():
    ids, groups, areas = synthetic(n_groups=40, per_group=(4, 5))  # 4 images per group
    rows = kfold_assign(ids, groups, areas, k=4, seed=3)
    sizes = Counter(r.fold for r in rows)
    assert max(sizes.values()) - min(sizes.values()) <= 4  # at most one group apart


def test_stratified_by_area():
    ids, groups, areas = synthetic(n_groups=40, per_group=(4, 5))
    rows = kfold_assign(ids, groups, areas, k=4, seed=0, n_bins=4)
    per_fold = defaultdict(list)
    for r in rows:
        per_fold[r.fold].append(r.area)
    means = [np.mean(v) for v in per_fold.values()]
    assert max(means) - min(means) < 0.08
    assert {r.area_bin for r in rows} == {0, 1, 2, 3}


def test_input_order_does_not_matter():
    ids, groups, areas = synthetic()
    perm = np.random.default_rng(5).permutation(len(ids))
    a = rows_to_csv(kfold_assign(ids, groups, areas, 3, 9))
    b = rows_to_csv(
        kfold_assign(
            [ids[i] for i in perm], [groups[i] for i in perm], [areas[i] for i in perm], 3, 9
        )
    )
    assert a == b


def test_seed_changes_assignment():
    ids, groups, areas = synthetic()
    assert rows_to_csv(kfold_assign(ids, groups, areas, 3, 1)) != rows_to_csv(
        kfold_assign(ids, groups, areas, 3, 2)
    )


def test_too_few_groups():
    with pytest.raises(PipelineError, match="only 2 groups"):
        kfold_assign(["a", "b"], ["x", "y"], [0.1, 0.2], k=3, seed=0)


@pytest.mark.parametrize(
    "areas, bins, expected",
    [
        ([0.1, 0.2, 0.3, 0.4], 2, [0, 0, 1, 1]),
        ([0.1, 0.2, 0.3, 0.4], 1, [0, 0, 0, 0]),
        ([0.5, 0.5, 0.5], 3, [2, 2, 2]),
    ],
)
def test_area_bins(areas, bins, expected):
    assert area_bins(np.array(areas), bins).tolist() == expected


def test_holdout_pattern():
    ids = ["0007_a", "0008_b", "0009_c", "0019_d"]
    rows = holdout_assign(ids, [i + ".png" for i in ids], ids, [0.5] * 4, "*9_?.png")
    assert {r.image_id: r.fold for r in rows} == {
        "0007_a": -1,
        "0008_b": -1,
        "0009_c": 0,
        "0019_d": 0,
    }
    with pytest.raises(PipelineError, match="matches no image"):
        holdout_assign(ids, ids, ids, [0.5] * 4, "*.jpg")
    with pytest.raises(PipelineError, match="both sides"):
        holdout_assign(ids, [i + ".png" for i in ids], ["g"] * 4, [0.5] * 4, "*9_?.png")


def test_csv_round_trip():
    ids, groups, areas = synthetic()
    rows = kfold_assign(ids, groups, areas, 3, 0)
    text = rows_to_csv(rows)
    back = rows_from_csv(text, "x")
    assert rows_to_csv(back) == text
    assert [(r.image_id, r.group, r.fold, r.area_bin) for r in back] == [
        (r.image_id, r.group, r.fold, r.area_bin) for r in rows
    ]
    with pytest.raises(PipelineError, match="header"):
        rows_from_csv("a,b\n", "x.csv")


def test_cli_folds_deterministic_and_grouped(tiny_carvana, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = write_config(
        tmp_path / "c.yaml",
        f"dataset: {{layout: carvana, name: tiny, root: {tiny_carvana}}}\n"
        "folds: {k: 3, seed: 5}\n",
    )
    runner = CliRunner()
    result = runner.invoke(cli, ["folds", str(cfg)])
    assert result.exit_code == 0, result.output
    first = (tmp_path / "folds" / "tiny.csv").read_bytes()
    assert runner.invoke(cli, ["folds", str(cfg)]).exit_code == 0
    assert (tmp_path / "folds" / "tiny.csv").read_bytes() == first
    assert "seed: 5" in (tmp_path / "folds" / "tiny.config.yaml").read_text()
    rows = rows_from_csv(first.decode(), "tiny.csv")
    assert len(rows) == 24 and fold_ids(rows) == [0, 1, 2]
    assert all(len({r.fold for r in rows if r.group == g}) == 1 for g in {r.group for r in rows})
