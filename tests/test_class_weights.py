"""Per-class argmax weights tuned on OOF mIoU: hand-made cases and the never-lower guarantee."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.decide.class_weights import full_miou, tune_class_weights, weighted_argmax


def test_weighted_argmax_truth_table():
    probs = np.array([[[200, 100]], [[150, 90]]], np.uint8)  # (C=2, 1, 2)
    assert weighted_argmax(probs, None).tolist() == [[0, 0]]
    assert weighted_argmax(probs, (1.0, 1.5)).tolist() == [[1, 1]]  # 225 > 200, 135 > 100
    assert weighted_argmax(probs, (1.0, 1.2)).tolist() == [[0, 1]]  # 180 < 200, 108 > 100


def test_an_under_predicted_thin_class_is_raised():
    """Class 2 (a 'pole') is always second to background at 0.4 vs 0.6:
    plain argmax never finds it."""
    rng = np.random.default_rng(0)
    pairs = []
    for _ in range(4):
        truth = np.zeros((16, 16), np.uint8)
        truth[:, :8] = 1
        truth[:, 7] = 2  # a thin column
        truth[0, :] = 255  # void
        probs = np.zeros((3, 16, 16), np.float64)
        probs[0] = 0.6 * (truth != 1)
        probs[1] = (truth == 1) * 1.0
        probs[2] = np.where(truth == 2, 0.4, 0.05)
        probs[0][truth == 2] = 0.6
        noisy = np.clip(np.round(probs * 255) + rng.integers(-2, 3, probs.shape), 0, 255)
        pairs.append((noisy.astype(np.uint8), truth))
    tuned = tune_class_weights(pairs, 3, 255)
    assert tuned.weights[2] > 1.5 * tuned.weights[0]
    assert tuned.miou > tuned.miou_plain
    assert tuned.miou == pytest.approx(full_miou(pairs, 3, 255, tuned.weights))
    assert tuned.miou == pytest.approx(1.0)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 5))
def test_tuned_weights_never_lower_oof_miou(seed, classes):
    rng = np.random.default_rng(seed)
    pairs = [
        (rng.integers(0, 256, (classes, 9, 7), dtype=np.uint8), rng.integers(0, classes, (9, 7)))
        for _ in range(3)
    ]
    tuned = tune_class_weights(pairs, classes, None, stride=3)
    assert tuned.miou >= tuned.miou_plain
    assert tuned.miou_plain == pytest.approx(full_miou(pairs, classes, None, None))
    assert tuned.miou == pytest.approx(full_miou(pairs, classes, None, tuned.weights))
