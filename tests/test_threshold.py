import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.ops.metrics import dice_score
from pipeline.ops.threshold import areas_from_histograms, dice_table, histograms, histograms_numpy, search
from pipeline.tune import Collector, channel_targets, tune_channel


@given(st.integers(1, 3), st.integers(1, 12), st.integers(1, 12), st.integers(0, 2**31 - 1), st.booleans())
@settings(max_examples=40, deadline=None)
def test_numba_histograms_match_numpy(channels, h, w, seed, with_valid):
    rng = np.random.default_rng(seed)
    probs = rng.integers(0, 256, (channels, h, w), dtype=np.uint8)
    target = rng.random((channels, h, w)) < 0.4
    valid = rng.random((h, w)) < 0.8 if with_valid else None
    for got, want in zip(histograms(probs, target, valid), histograms_numpy(probs, target, valid), strict=True):
        np.testing.assert_array_equal(got, want)


@given(st.integers(0, 2**31 - 1))
@settings(max_examples=25, deadline=None)
def test_dice_table_equals_direct_dice_at_every_level(seed):
    rng = np.random.default_rng(seed)
    probs = rng.integers(0, 256, (1, 7, 9), dtype=np.uint8)
    truth = rng.random((1, 7, 9)) < rng.random()
    pred, tp, gt = areas_from_histograms(*histograms(probs, truth))
    table = dice_table(pred, tp, gt)[0]
    for level in (0, 1, 100, 127, 200, 254, 255):
        assert table[level] == pytest.approx(dice_score(probs[0] > level, truth[0]))


def test_planted_optimum_is_recovered():
    rng = np.random.default_rng(0)
    collector = Collector(1)
    for _ in range(10):
        truth = rng.random((1, 16, 24)) < 0.3
        probs = np.where(truth, rng.integers(150, 256, truth.shape), rng.integers(0, 150, truth.shape))
        collector.add(probs.astype(np.uint8), truth, np.ones((16, 24), bool), fold=0)
    pred, tp, gt, folds = collector.arrays()
    result = tune_channel("car", pred[:, 0], tp[:, 0], gt[:, 0], folds, [0])
    assert result.level == 149 and result.dice_tuned == pytest.approx(1.0)
    assert result.dice_half < 1.0  # 0.5 (level 127) lets some negatives in


@pytest.mark.parametrize("pred_area, gt_area, min_area, expected", [
    (3, 0, 0, 0.0),   # a few false positives on an empty image
    (3, 0, 3, 0.0),   # not below min_area: kept
    (3, 0, 4, 1.0),   # below min_area: emptied, empty vs empty = 1
    (3, 3, 4, 0.0),   # emptied although correct
    (0, 0, 0, 1.0),
    (5, 5, 2, 1.0),
])
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
        probs = np.stack([np.where(target[c], rng.integers(cuts[c] + 1, 256, mask.shape),
                                   rng.integers(0, cuts[c] + 1, mask.shape)) for c in range(3)]).astype(np.uint8)
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
