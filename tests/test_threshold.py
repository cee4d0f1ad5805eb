import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.decide.search import Collector, channel_targets, tune_channel
from pipeline.ops.threshold import (
    areas_from_histograms,
    dice_table,
    histograms,
    histograms_numpy,
    search,
)


@given(
    st.integers(1, 3),
    st.integers(1, 12),
    st.integers(1, 12),
    st.integers(0, 2**31 - 1),
    st.booleans(),
)
@settings(max_examples=40, deadline=None)
def test_numba_histograms_match_numpy(channels, h, w, seed, with_valid):
    rng = np.random.default_rng(seed)
    probs = rng.integers(0, 256, (channels, h, w), dtype=np.uint8)
    target = rng.random((channels, h, w)) < 0.4
    valid = rng.random((h, w)) < 0.8 if with_valid else None
    for got, want in zip(
        histograms(probs, target, valid), histograms_numpy(probs, target, valid), strict=True
    ):
        np.testing.assert_array_equal(got, want)


def test_planted_optimum_is_recovered():
    rng = np.random.default_rng(0)
    collector = Collector(1)
    for _ in range(10):
        truth = rng.random((1, 16, 24)) < 0.3
        probs = np.where(
            truth, rng.integers(150, 256, truth.shape), rng.integers(0, 150, truth.shape)
        )
        collector.add(probs.astype(np.uint8), truth, np.ones((16, 24), bool), fold=0)
    pred, tp, gt, folds = collector.arrays()
    result = tune_channel("car", pred[:, 0], tp[:, 0], gt[:, 0], folds, [0])
    assert result.level == 149 and result.dice_tuned == pytest.approx(1.0)
    assert result.dice_half < 1.0  # 0.5 (level 127) lets some negatives in


@pytest.mark.parametrize(
    "pred_area, gt_area, min_area, expected",
    [
        (3, 0, 0, 0.0),  # a few false positives on an empty image
        (3, 0, 3, 0.0),  # not below min_area: kept
        (3, 0, 4, 1.0),  # below min_area: emptied, empty vs empty = 1
        (3, 3, 4, 0.0),  # emptied although correct
        (0, 0, 0, 1.0),
        (5, 5, 2, 1.0),
    ],
)
def test_min_area_truth_table(pred_area, gt_area, min_area, expected):
    pred = np.array([[pred_area]])
    tp = np.array([[min(pred_area, gt_area)]])
    assert dice_table(pred, tp, np.array([gt_area]), min_area)[0, 0] == expected


@pytest.mark.parametrize("fill", [0, 1])
def test_all_empty_and_all_full(fill):
    truth = np.full((1, 4, 5), bool(fill))
    probs = np.full((1, 4, 5), 255 if fill else 0, np.uint8)
    pred, tp, gt = areas_from_histograms(*histograms(probs, truth))
    level, area, score, curve = search(pred, tp, gt)
    assert score == 1.0 and area == 0.0
    assert dice_table(pred, tp, gt)[0, 127] == 1.0


def test_min_area_search_finds_the_cleanup():
    collector = Collector(1)
    for i in range(6):
        truth = np.zeros((1, 10, 10), bool)
        probs = np.zeros((1, 10, 10), np.uint8)
        if i % 2:
            truth[0, :5] = True
            probs[0, :5] = 220
        else:
            probs[0, 0, :3] = 220  # speckle on an empty image
        collector.add(probs, truth, np.ones((10, 10), bool), 0)
    pred, tp, gt, folds = collector.arrays()
    result = tune_channel("x", pred[:, 0], tp[:, 0], gt[:, 0], folds, [0, 2, 4, 8, 60])
    assert result.min_area == 4 and result.dice_tuned == 1.0 and result.dice_half == 0.5


def test_multi_channel_thresholds_are_independent():
    rng = np.random.default_rng(1)
    collector = Collector(3)
    for _ in range(5):
        mask = rng.integers(0, 3, (12, 12))
        target, valid = channel_targets(mask, 3, None)
        cuts = (60, 127, 200)
        probs = np.stack(
            [
                np.where(
                    target[c],
                    rng.integers(cuts[c] + 1, 256, mask.shape),
                    rng.integers(0, cuts[c] + 1, mask.shape),
                )
                for c in range(3)
            ]
        ).astype(np.uint8)
        collector.add(probs, target, valid, 0)
    pred, tp, gt, folds = collector.arrays()
    for c, cut in enumerate((60, 127, 200)):
        result = tune_channel(str(c), pred[:, c], tp[:, c], gt[:, c], folds, [0])
        lowest_positive = min(np.flatnonzero(h[c])[0] for h in collector.hist_pos)
        assert result.dice_tuned == 1.0 and cut <= result.level < lowest_positive


def test_ignore_pixels_are_left_out():
    mask = np.array([[0, 1, 255]])
    target, valid = channel_targets(mask, 1, 255)
    a, p = histograms(np.array([[[0, 255, 255]]], np.uint8), target, valid)
    assert a.sum() == 2 and p.sum() == 1


def _brute_force_curve(probs, truths, min_area):
    """Mean Dice over images at each of the 256 levels, straight from the pixels (no histograms)."""
    curve = np.zeros(256)
    for level in range(256):
        scores = []
        for p, t in zip(probs, truths, strict=True):
            pred = p > level
            if pred.sum() < min_area:
                pred = np.zeros_like(pred)
            denom = pred.sum() + t.sum()
            scores.append(1.0 if denom == 0 else 2.0 * (pred & t).sum() / denom)
        curve[level] = np.mean(scores)
    return curve


def _brute_force_best(probs, truths, min_areas):
    """The documented rule: highest mean Dice; ties -> smallest min area, then level nearest 127.5
    (127 before 128)."""
    best = None
    for area in sorted(min_areas):
        curve = _brute_force_curve(probs, truths, area)
        for level in sorted(range(256), key=lambda k: (abs(k - 127.5), k)):
            key = (-round(curve[level], 12), area, abs(level - 127.5), level)
            if best is None or key < best[0]:
                best = (key, level, area, curve[level])
    return best[1:]


@pytest.mark.parametrize("seed", range(6))
def test_search_equals_brute_force_over_all_levels_and_min_areas(seed):
    rng = np.random.default_rng(seed)
    n, min_areas = int(rng.integers(2, 6)), [0, 3, 10, 40]
    # few distinct levels on half the seeds, so flat optima and ties really occur
    palette = rng.choice(256, size=5, replace=False).astype(np.uint8) if seed % 2 else None
    probs, truths = [], []
    for _ in range(n):
        h, w = rng.integers(3, 12, 2)
        truth = rng.random((h, w)) < rng.choice([0.0, 0.1, 0.5])
        noise = rng.integers(0, 256, (h, w)) if palette is None else rng.choice(palette, (h, w))
        probs.append(
            np.where(truth & (rng.random((h, w)) < 0.7), np.maximum(noise, 128), noise).astype(
                np.uint8
            )
        )
        truths.append(truth)
    hists = [histograms(p[None], t[None]) for p, t in zip(probs, truths, strict=True)]
    pred, tp, gt = areas_from_histograms(
        np.stack([a[0] for a, _ in hists]), np.stack([b[0] for _, b in hists])
    )
    for area in min_areas:
        np.testing.assert_allclose(
            dice_table(pred, tp, gt, area).mean(0),
            _brute_force_curve(probs, truths, area),
            rtol=0,
            atol=1e-12,
        )
    level, area, score, _ = search(pred, tp, gt, min_areas)
    want_level, want_area, want_score = _brute_force_best(probs, truths, min_areas)
    assert (level, area) == (want_level, want_area) and score == pytest.approx(
        want_score, abs=1e-12
    )


@pytest.mark.parametrize(
    "low, high, expected",
    [
        (0, 255, 127),  # perfect at every level 0..254: the level nearest 0.5, 127 before 128
        (140, 200, 140),  # flat optimum 140..199 above 0.5: its lower end
        (30, 90, 89),  # flat optimum 30..89 below 0.5: its upper end
    ],
)
def test_tie_break_is_pinned(low, high, expected):
    truth = np.zeros((1, 4, 4), bool)
    truth[0, :2] = True
    probs = np.where(truth, high, low).astype(np.uint8)
    pred, tp, gt = areas_from_histograms(*histograms(probs, truth))
    level, area, score, curve = search(pred, tp, gt, [5, 0, 8])  # 0 and 5 both keep the 8-px mask
    assert (level, area, score) == (expected, 0.0, 1.0)


def test_cleanup_is_judged_jointly_with_the_threshold():
    """A high threshold that only suppresses one image's false blob loses to 0.5 + clean-up."""
    from pipeline.decide.search import choose_cleanup

    table = {127: (0.970, 0.9850), 169: (0.972, 0.9845), 76: (0.960, 0.9840)}
    assert choose_cleanup(table, tuned_level=169) == (127, True, 0.9850)
    # clean-up that does not help is not kept; ties go to the tuned level, then to no clean-up
    assert choose_cleanup({127: (0.98, 0.97), 169: (0.99, 0.99)}, tuned_level=169) == (
        169,
        False,
        0.99,
    )
    assert choose_cleanup({127: (0.99, 0.99), 169: (0.99, 0.99)}, tuned_level=169) == (
        169,
        False,
        0.99,
    )


def test_tune_run_picks_the_joint_decision(tiny_project, tmp_path):
    import contextlib
    import json

    from click.testing import CliRunner

    from pipeline.cli import cli
    from tests.conftest import copy_project

    work = copy_project(tiny_project, tmp_path / "w")
    with contextlib.chdir(work):
        for args in (["predict", "tiny.yaml", "--split", "oof"], ["tune", "--run", "tiny_64x96"]):
            result = CliRunner().invoke(cli, args)
            assert result.exit_code == 0, result.output
    out = json.loads((work / "artifacts" / "runs" / "tiny_64x96" / "thresholds.json").read_text())
    table = {int(k): (v["raw"], v["cleanup"]) for k, v in out["cleanup_table"].items()}
    best = max(max(pair) for pair in table.values())
    assert out["oof_dice_final"] == best
    assert out["threshold"] == out["level"] / 255
    assert table[out["level"]][1 if out["cleanup"] else 0] == best
