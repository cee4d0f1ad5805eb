import numpy as np
import pytest

from pipeline.ops.rle import rle_decode_numpy, rle_encode_numpy

MASK = np.array([[0, 1, 1], [1, 0, 1]], dtype=np.uint8)


@pytest.mark.parametrize("order, rle", [("C", "2 3 6 1"), ("F", "2 2 5 2")])
def test_truth_table_2x3(order, rle):
    assert rle_encode_numpy(MASK, order) == rle
    np.testing.assert_array_equal(rle_decode_numpy(rle, MASK.shape, order), MASK)


@pytest.mark.parametrize("mask, rle", [(np.zeros((2, 3)), ""), (np.ones((2, 3)), "1 6"),
                                       (np.eye(2, 3), "1 1 5 1")])
def test_empty_full_and_corner_pixels(mask, rle):
    assert rle_encode_numpy(mask, "C") == rle
    np.testing.assert_array_equal(rle_decode_numpy(rle, mask.shape, "C"), mask)


def test_last_pixel_set():
    mask = np.zeros((3, 4), np.uint8)
    mask[-1, -1] = 1
    assert rle_encode_numpy(mask) == "12 1"


@pytest.mark.parametrize("rle, problem", [("1", "odd"), ("0 2", "below 1"), ("1 0", "not positive"),
                                          ("5 3", "ends past"), ("3 1 1 1", "unsorted"), ("a b", "integer")])
def test_malformed(rle, problem):
    with pytest.raises(ValueError, match=problem):
        rle_decode_numpy(rle, (2, 3))


# ---- Numba kernels ------------------------------------------------------------------------------
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from pipeline.ops.rle import rle_decode, rle_encode, rle_encode_probs  # noqa: E402


@pytest.mark.parametrize("order, rle", [("C", "2 3 6 1"), ("F", "2 2 5 2")])
def test_kernel_truth_table_2x3(order, rle):
    assert rle_encode(MASK, order) == rle
    np.testing.assert_array_equal(rle_decode(rle, MASK.shape, order), MASK)


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("mask, rle", [
    (np.zeros((2, 3)), ""),
    (np.ones((2, 3)), "1 6"),
    (np.array([[1, 0, 0], [0, 0, 1]]), "1 1 6 1"),  # first and last pixel set (same in both orders)
])
def test_kernel_empty_full_corners(order, mask, rle):
    assert rle_encode(mask, order) == rle
    np.testing.assert_array_equal(rle_decode(rle, mask.shape, order), mask)


def test_words_of_eight_pixels_with_one_gap():
    # a run crossing 8-pixel words with a single zero at a word boundary (the fast path must stop there)
    mask = np.ones((1, 40), np.uint8)
    mask[0, 24] = 0
    assert rle_encode(mask) == "1 24 26 15"


masks = st.tuples(st.integers(1, 37), st.integers(1, 37), st.integers(0, 2**31 - 1), st.floats(0, 1))


@given(masks, st.sampled_from(["C", "F"]))
@settings(max_examples=120, deadline=None)
def test_round_trip_and_reference_on_random_nonsquare_masks(params, order):
    h, w, seed, density = params
    mask = (np.random.default_rng(seed).random((h, w)) < density).astype(np.uint8)
    rle = rle_encode(mask, order)
    assert rle == rle_encode_numpy(mask, order)
    np.testing.assert_array_equal(rle_decode(rle, (h, w), order), mask)
    np.testing.assert_array_equal(rle_decode(rle, (h, w), order), rle_decode_numpy(rle, (h, w), order))


@given(masks, st.sampled_from(["C", "F"]), st.floats(0, 1))
@settings(max_examples=80, deadline=None)
def test_encoder_from_probabilities_equals_threshold_then_encode(params, order, threshold):
    h, w, seed, _ = params
    probs = np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)
    assert rle_encode_probs(probs, threshold, order) == rle_encode_numpy(probs > threshold * 255, order)


def test_kernel_rejects_malformed():
    with pytest.raises(ValueError, match="overlaps"):
        rle_decode("1 3 2 1", (2, 3))
    with pytest.raises(ValueError, match="order"):
        rle_encode(MASK, "X")
