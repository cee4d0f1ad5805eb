"""QA quality features and the calibrated score estimate: truth tables and planted relations."""

import cv2
import numpy as np
import pytest
from scipy.stats import spearmanr

from pipeline.errors import PipelineError
from pipeline.review import estimate as est
from pipeline.review.quality import (
    binary_features,
    channel_features,
    multiclass_features,
    near_boundary,
)


# ---- features ------------------------------------------------------------------------------------
def half_mask(h: int = 20, w: int = 20) -> np.ndarray:
    mask = np.zeros((h, w), bool)
    mask[:, : w // 2] = True
    return mask


def test_near_boundary_is_both_sides_within_the_radius_and_nothing_for_empty_or_full_masks():
    mask = half_mask()
    near, edge = near_boundary(mask, 3.0)
    assert (
        near[0].tolist() == [False] * 7 + [True] * 6 + [False] * 7
    )  # columns 7..9 inside, 10..12 outside
    assert edge[0].tolist() == [False] * 9 + [True] + [False] * 10
    for flat in (np.zeros((5, 6), bool), np.ones((5, 6), bool)):
        assert not any(a.any() for a in near_boundary(flat, 3.0))


def test_channel_features_of_a_hand_made_map():
    """Car = left half (200 px, certain); one uncertain column beside it (p = 102/255 = 0.4),
    one far away."""
    mask = half_mask()
    probs = np.where(mask, 255, 0).astype(np.uint8)
    probs[:, 10] = 102  # next to the boundary: near
    probs[:, 19] = 51  # 9 px away, beyond the 3 px ring: far
    f = channel_features(probs, mask, raw=mask | (probs > 40))
    assert f["area"] == 0.5
    assert f["band"] == pytest.approx(20 / 200) and f["band_far"] == pytest.approx(20 / 200)
    assert f["band_wide"] == f["band"]  # no pixel in the band's tails
    assert f["edge_width"] == pytest.approx(
        1.0
    )  # 20 uncertain near pixels over a 20-pixel boundary
    assert f["soft_dice"] == pytest.approx(
        2 * 200 / (200 + 20 * 0.4 + 200)
    )  # the far column is not counted
    assert f["removed"] == pytest.approx(40 / 240) and f["components"] == 2


def test_sharper_maps_score_better_and_empty_masks_are_finite():
    mask = half_mask(40, 40)
    soft = {}
    for sigma in (0.8, 3.0):
        blurred = np.round(255 * cv2.GaussianBlur(mask.astype(np.float32), (0, 0), sigma)).astype(
            np.uint8
        )
        soft[sigma] = binary_features(blurred[None], blurred > 127, 0.5)
    assert (
        soft[3.0]["band"] > soft[0.8]["band"] and soft[3.0]["edge_width"] > soft[0.8]["edge_width"]
    )
    assert soft[3.0]["soft_dice"] < soft[0.8]["soft_dice"] < 1
    empty = channel_features(np.full((8, 8), 100, np.uint8), np.zeros((8, 8), bool))
    assert empty["area"] == 0 and empty["band_far"] == 64 and empty["soft_dice"] == 0.0


def test_multiclass_features_are_named_per_class():
    label = np.array([[0, 1, 1, 2]] * 4, np.uint8)
    probs = np.stack([(label == c) * 255 for c in range(3)]).astype(np.uint8)
    f = multiclass_features(probs, label, ["road", "car", "sky"])
    assert f["area:car"] == 0.5 and f["area:sky"] == 0.25 and f["band:road"] == 0.0
    assert len(f) == 3 * 6


# ---- the estimator -------------------------------------------------------------------------------
def planted(n_groups: int = 12, views: int = 8, seed: int = 0, slope: float = 0.8):
    """Rows whose log error is ``-4 + slope * log(band / 0.1)`` + small noise;
    ``noise_feature`` unrelated."""
    rng = np.random.default_rng(seed)
    rows, scores, groups = [], [], []
    for g in range(n_groups):
        level = rng.normal(0, 0.3)
        for _ in range(views):
            band = 0.1 * np.exp(level + rng.normal(0, 0.4))
            t = -4 + slope * np.log(band / 0.1) + rng.normal(0, 0.05)
            rows.append({"band": band, "noise_feature": rng.normal()})
            scores.append(1 + est.EPS - np.exp(t))
            groups.append(f"car{g:02d}")
    return rows, np.array(scores), groups


def test_calibration_recovers_a_planted_relation():
    rows, scores, groups = planted()
    model = est.fit(rows, scores, groups)
    weights = dict(zip(model.columns, model.weights, strict=True))
    assert weights["band"] == pytest.approx(0.8, abs=0.08) and abs(weights["noise_feature"]) < 0.05
    cv = est.cross_validate(rows, scores, groups)
    figures = est.calibration(scores, cv, groups)
    assert figures["spearman"] > 0.95 and figures["groups"] == 12
    assert abs(figures["estimated_mean"] - figures["true_mean"]) < 0.001
    worst = min(set(groups), key=lambda g: scores[np.array(groups) == g].mean())
    assert figures["worst_group"] == worst and figures["worst_group_in_top10"] >= 0.5


def test_an_image_far_outside_the_oof_range_gets_the_worst_estimate_and_says_why():
    rows, scores, groups = planted()
    model = est.fit(rows, scores, groups)
    test = [{"band": 0.1, "noise_feature": 0.0}, {"band": 3.0, "noise_feature": 0.0}]
    low, high = model.predict(test)[::-1]
    assert low < scores.min() < high
    push = model.contributions(test[1])
    assert max(push, key=push.get) == "band" and push["band"] > 1


def test_a_feature_that_never_varies_is_left_out_and_none_leaves_the_mean():
    rows, scores, groups = planted()
    for r in rows:
        r["disagreement"] = 0.0  # one member: nothing to disagree with
    assert "disagreement" not in est.fit(rows, scores, groups).columns
    flat = est.fit([{"band": 0.1}] * 6, np.array([0.9, 0.95, 0.9, 0.95, 0.9, 0.95]), list("aabbcc"))
    assert flat.columns == [] and flat.predict([{"band": 0.5}])[0] == pytest.approx(
        0.925, abs=0.002
    )


@pytest.mark.parametrize(
    "name, values, expected",
    [
        ("band", [0.0, 1.0], np.log([1e-3, 1.001])),
        ("soft_dice:car", [1.0], np.log([1e-4])),
        ("area_z", [-2.0], np.log1p([2.0])),
        ("empty", [1.0], [1.0]),
    ],
)
def test_feature_transforms(name, values, expected):
    assert est.transform(name, np.array(values)) == pytest.approx(expected)


def test_group_splits_leave_one_group_out_up_to_the_limit():
    assert est.group_splits(["b", "a", "c", "a"], 20).tolist() == [1, 0, 2, 0]
    assert est.group_splits([f"g{i}" for i in range(5)], 2).tolist() == [0, 1, 0, 1, 0]
    with pytest.raises(PipelineError, match="at least 2 groups"):
        est.cross_validate([{"band": 0.1}] * 4, np.ones(4), ["a"] * 4)


def test_leaderboard_interval():
    board = est.leaderboard(
        np.array([0.97, 0.98, 0.99]), test_groups=4, residual_sd=0.002, oof_groups=12
    )
    assert board["mean"] == pytest.approx(0.98)
    assert board["half_width"] == pytest.approx(1.96 * 0.002 * np.sqrt(1 / 4 + 1 / 12))
    assert board["low"] < 0.98 < board["high"] and board["images"] == 3


def test_spearman_of_calibration_matches_scipy():
    truth, estimate = np.array([0.9, 0.8, 0.95, 0.7]), np.array([0.91, 0.85, 0.9, 0.6])
    assert est.calibration(truth, estimate, list("abab"))["spearman"] == pytest.approx(
        spearmanr(truth, estimate)[0]
    )


def test_slopes_come_from_inside_groups_when_groups_hold_several_images():
    """Inside each car the log error rises one for one with log band; between cars it falls (each
    car its own calibration). Groups of six: the slope inside them; every image its own group:
    the mixture."""
    rng = np.random.default_rng(1)
    rows, scores, cars = [], [], []
    for car in range(10):
        level = rng.normal(0, 0.5)
        for _ in range(6):
            log_band = level + rng.normal(0, 0.3)
            rows.append({"band": float(np.exp(log_band))})
            scores.append(1 + est.EPS - np.exp(-4 - level + (log_band - level)))
            cars.append(f"car{car}")
    scores = np.array(scores)
    assert est.within_groups(cars) and not est.within_groups([f"img{i}" for i in range(len(rows))])
    inside = est.fit(rows, scores, cars)
    assert inside.within and inside.weights[0] == pytest.approx(1.0, abs=0.15)
    pooled = est.fit(rows, scores, [f"img{i}" for i in range(len(rows))])
    assert not pooled.within and pooled.weights[0] < 0
