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


def _reference_mask(probs, threshold, min_area, cleanup):
    """Decision rule from scipy, independent of pipeline.decide.postprocess: p > t, largest
    8-connected component + holes (4-connected background) filled, then emptied below min_area."""
    from scipy import ndimage

    mask = probs > threshold * 255
    if cleanup and mask.any():
        labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
        sizes = np.bincount(labels.ravel())[1:]
        mask = ndimage.binary_fill_holes(labels == 1 + np.argmax(sizes))
    if mask.sum() < min_area:
        mask[:] = False
    return mask.astype(np.uint8)


def _blobs():
    rng = np.random.default_rng(3)
    probs = rng.integers(0, 100, (20, 30)).astype(np.uint8)
    probs[5:12, 8:20] = 250  # the object (84 px) ...
    probs[8, 12:15] = 20  # ... with a 3-pixel hole
    probs[15:17, 25:28] = 200  # a second, smaller blob (6 px)
    probs[0, 0] = probs[19, 29] = 140  # speckles in the first and last pixel (RLE edge cases)
    return probs


@pytest.mark.parametrize(
    "threshold, min_area, cleanup",
    [
        (0.5, 0, False),
        (0.3, 5, False),
        (0.5, 100, False),
        (0.5, 89, False),
        (0.5, 90, False),  # 89 px at 0.5: the fast path's min-area boundary
        (0.5, 0, True),
        (0.5, 84, True),
        (0.5, 85, True),
        (0.05, 0, True),  # clean-up keeps the 84-px object
    ],
)
@pytest.mark.parametrize("order", ["C", "F"])
def test_decision_rle_matches_an_independent_reference(threshold, min_area, cleanup, order):
    from pipeline.decide.decision import Decision
    from pipeline.ops.rle import rle_encode_numpy

    probs = _blobs()
    want = _reference_mask(probs, threshold, min_area, cleanup)
    d = Decision(threshold, min_area, cleanup)
    np.testing.assert_array_equal(d.mask(probs), want)
    assert d.rle(probs, order) == rle_encode_numpy(want, order)


def test_reference_cases_are_not_trivial():
    probs = _blobs()
    plain, cleaned = _reference_mask(probs, 0.5, 0, False), _reference_mask(probs, 0.5, 0, True)
    assert (
        plain.sum() == 84 - 3 + 6 + 2 and cleaned.sum() == 84
    )  # clean-up drops blob + speckles, fills the hole
    assert (
        _reference_mask(probs, 0.5, 85, True).sum() == 0
        and _reference_mask(probs, 0.5, 84, True).sum() == 84
    )


def test_fuse_stored_fuses_at_the_stored_size_then_members_of_other_sizes_after_resizing(tmp_path):
    from pipeline.decide import store_codec
    from pipeline.decide.blend import fuse_stored
    from pipeline.decide.store import ProbStore
    from pipeline.errors import PipelineError

    header = {
        "run": "r",
        "split": "test",
        "folds": [0],
        "tta": "none",
        "classes": ["bg", "car"],
        "checkpoints": {},
        "resolution": "model",
    }
    rng = np.random.default_rng(0)
    small = [rng.integers(0, 256, (1, 6, 9), dtype=np.uint8) for _ in range(2)]
    large = rng.integers(0, 256, (1, 12, 18), dtype=np.uint8)
    stores = [ProbStore.create(tmp_path / f"m{k}", header) for k in range(3)]
    for store, probs in zip(stores, [*small, large], strict=True):
        store.write("a", probs, (12, 18))
    fused, original = fuse_stored(stores[:2], "a", [1, 3])
    assert original == (12, 18) and fused.shape == (
        1,
        6,
        9,
    )  # same-size members: fused before the one resize
    np.testing.assert_array_equal(fused, fuse(small, [1, 3]))
    fused, _ = fuse_stored(
        stores, "a", [1, 1, 2]
    )  # mixed sizes: each resized to the original first
    want = fuse([store_codec.resize(p, (12, 18)) for p in small] + [large], [1, 1, 2])
    np.testing.assert_array_equal(fused, want)
    stores[2].write("b", large, (13, 18))
    stores[0].write("b", small[0], (12, 18))
    with pytest.raises(PipelineError, match="different original sizes"):
        fuse_stored([stores[0], stores[2]], "b", [1, 1])
