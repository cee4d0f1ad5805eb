import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.ops.fusion import fixed_point_weights, fuse, fuse_numpy


@given(st.integers(1, 5), st.integers(0, 2**31 - 1))
@settings(max_examples=60, deadline=None)
def test_fixed_point_mean_matches_float_reference(members, seed):
    rng = np.random.default_rng(seed)
    maps = [rng.integers(0, 256, (2, 5, 7), dtype=np.uint8) for _ in range(members)]
    weights = rng.random(members) + 0.01
    diff = np.abs(fuse(maps, weights).astype(int) - fuse_numpy(maps, weights).astype(int))
    assert diff.max() <= 1


@pytest.mark.parametrize("mode", ["mean", "gmean"])
def test_identical_members_fuse_to_themselves(mode):
    m = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    out = fuse([m, m, m], [1, 2, 3], mode)
    assert np.abs(out.astype(int) - m.astype(int)).max() <= (0 if mode == "mean" else 1)


def test_truth_table():
    a, b = np.array([[[0, 255, 100]]], np.uint8), np.array([[[255, 255, 0]]], np.uint8)
    np.testing.assert_array_equal(fuse([a, b], [1, 1]), [[[128, 255, 50]]])
    np.testing.assert_array_equal(fuse([a, b], [3, 1]), [[[64, 255, 75]]])
    np.testing.assert_array_equal(fuse([a, b], [1, 0]), a)
    assert fuse([a, b], [1, 1], "gmean")[0, 0, 0] < 10  # one confident "no" vetoes


def test_weights_sum_exactly():
    for w in ([1, 1, 1], [0.2, 0.3, 0.5], [1e-9, 1]):
        w = np.asarray(w, float) / np.sum(w)
        assert fixed_point_weights(w).sum() == 1 << 16


def test_bad_input():
    a = np.zeros((1, 2, 2), np.uint8)
    with pytest.raises(ValueError):
        fuse([a, a], [0, 0])
    with pytest.raises(ValueError):
        fuse([a, np.zeros((1, 2, 3), np.uint8)], [1, 1])
    with pytest.raises(ValueError):
        fuse([a], [1], "median")


@pytest.mark.parametrize("threshold, min_area, cleanup", [(0.5, 0, False), (0.3, 5, False), (0.5, 100, False),
                                                          (0.5, 0, True)])
def test_decision_rle_fast_path_equals_mask_then_encode(threshold, min_area, cleanup):
    from pipeline.ensemble import Decision
    from pipeline.ops.rle import rle_encode

    rng = np.random.default_rng(3)
    probs = (rng.random((20, 30)) * 255).astype(np.uint8)
    probs[5:12, 8:20] = 250
    d = Decision(threshold, min_area, cleanup)
    assert d.rle(probs, "C") == rle_encode(d.mask(probs), "C")
