import numpy as np
import pytest

from pipeline.ops.rle import rle_decode_numpy, rle_encode_numpy

MASK = np.array([[0, 1, 1], [1, 0, 1]], dtype=np.uint8)


@pytest.mark.parametrize("order, rle", [("C", "2 3 6 1"), ("F", "2 2 5 2")])
def test_truth_table_2x3(order, rle):
    assert rle_encode_numpy(MASK, order) == rle
    np.testing.assert_array_equal(rle_decode_numpy(rle, MASK.shape, order), MASK)


@pytest.mark.parametrize(
    "mask, rle", [(np.zeros((2, 3)), ""), (np.ones((2, 3)), "1 6"), (np.eye(2, 3), "1 1 5 1")]
)
def test_empty_full_and_corner_pixels(mask, rle):
    assert rle_encode_numpy(mask, "C") == rle
    np.testing.assert_array_equal(rle_decode_numpy(rle, mask.shape, "C"), mask)


def test_last_pixel_set():
    mask = np.zeros((3, 4), np.uint8)
    mask[-1, -1] = 1
    assert rle_encode_numpy(mask) == "12 1"


@pytest.mark.parametrize(
    "rle, problem",
    [
        ("1", "odd"),
        ("0 2", "below 1"),
        ("1 0", "not positive"),
        ("5 3", "ends past"),
        ("3 1 1 1", "unsorted"),
        ("a b", "integer"),
    ],
)
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
@pytest.mark.parametrize(
    "mask, rle",
    [
        (np.zeros((2, 3)), ""),
        (np.ones((2, 3)), "1 6"),
        (
            np.array([[1, 0, 0], [0, 0, 1]]),
            "1 1 6 1",
        ),  # first and last pixel set (same in both orders)
    ],
)
def test_kernel_empty_full_corners(order, mask, rle):
    assert rle_encode(mask, order) == rle
    np.testing.assert_array_equal(rle_decode(rle, mask.shape, order), mask)


def test_words_of_eight_pixels_with_one_gap():
    # a run crossing 8-pixel words with a single zero at a word boundary
    # (the fast path must stop there)
    mask = np.ones((1, 40), np.uint8)
    mask[0, 24] = 0
    assert rle_encode(mask) == "1 24 26 15"


masks = st.tuples(
    st.integers(1, 37), st.integers(1, 37), st.integers(0, 2**31 - 1), st.floats(0, 1)
)


@given(masks, st.sampled_from(["C", "F"]))
@settings(max_examples=120, deadline=None)
def test_round_trip_and_reference_on_random_nonsquare_masks(params, order):
    h, w, seed, density = params
    mask = (np.random.default_rng(seed).random((h, w)) < density).astype(np.uint8)
    rle = rle_encode(mask, order)
    assert rle == rle_encode_numpy(mask, order)
    np.testing.assert_array_equal(rle_decode(rle, (h, w), order), mask)
    np.testing.assert_array_equal(
        rle_decode(rle, (h, w), order), rle_decode_numpy(rle, (h, w), order)
    )


@given(masks, st.sampled_from(["C", "F"]), st.floats(0, 1))
@settings(max_examples=80, deadline=None)
def test_encoder_from_probabilities_equals_threshold_then_encode(params, order, threshold):
    h, w, seed, _ = params
    probs = np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)
    assert rle_encode_probs(probs, threshold, order) == rle_encode_numpy(
        probs > threshold * 255, order
    )


def test_kernel_rejects_malformed():
    with pytest.raises(ValueError, match="overlaps"):
        rle_decode("1 3 2 1", (2, 3))
    with pytest.raises(ValueError, match="order"):
        rle_encode(MASK, "X")


# ---- the word-at-a-time kernel against the numpy reference --------------------------------------
def _runs_mask(size: int, rng: np.random.Generator) -> np.ndarray:
    """Runs of random lengths (1..20 pixels),
    so transitions land anywhere in and across 8-pixel words."""
    flat = np.zeros(size, np.uint8)
    pos, on = int(rng.integers(0, 12)), True
    while pos < size:
        length = int(rng.integers(1, 21))
        flat[pos : pos + length] = on
        pos, on = pos + length, not on
    return flat


@pytest.mark.parametrize("level", [0, 1, 126, 127, 128, 129, 200, 254])
def test_kernel_levels_at_the_byte_boundaries(level):
    # values just below, at and above the level (the SWAR tests' edge cases),
    # both halves of the byte range
    values = np.array(
        [0, 1, 126, 127, 128, 129, 254, 255, max(level - 1, 0), level, min(level + 1, 255)],
        np.uint8,
    )
    rng = np.random.default_rng(level)
    probs = rng.choice(values, size=(7, 37)).astype(np.uint8)
    threshold = (level + 0.5) / 255
    assert rle_encode_probs(probs, threshold) == rle_encode_numpy(probs > level)


@pytest.mark.parametrize("pixel", list(range(0, 17)) + [61, 62, 63])
def test_kernel_single_pixel_at_every_word_position(pixel):
    mask = np.zeros((1, 64), np.uint8)
    mask[0, pixel] = 1
    assert rle_encode(mask) == f"{pixel + 1} 1"
    mask[:] = 1
    mask[0, pixel] = 0
    assert rle_encode(mask) == rle_encode_numpy(mask)


@pytest.mark.parametrize(
    "height, width", [(1, 1), (1, 7), (1, 8), (1, 9), (3, 5), (5, 13), (4, 16), (17, 33), (64, 63)]
)
def test_kernel_empty_full_and_runs_on_odd_sizes(height, width):
    for fill in (0, 1):
        mask = np.full((height, width), fill, np.uint8)
        assert rle_encode(mask) == ("" if fill == 0 else f"1 {height * width}")
    rng = np.random.default_rng(height * 100 + width)
    for _ in range(5):
        mask = _runs_mask(height * width, rng).reshape(height, width)
        for order in ("C", "F"):
            assert rle_encode(mask, order) == rle_encode_numpy(mask, order)


@given(
    st.integers(1, 700), st.integers(0, 2**31 - 1), st.integers(0, 254), st.sampled_from(["C", "F"])
)
@settings(max_examples=150, deadline=None)
def test_kernel_equals_reference_on_random_runs_and_levels(size, seed, level, order):
    rng = np.random.default_rng(seed)
    width = int(rng.integers(1, size + 1))
    height = max(1, size // width)
    mask = _runs_mask(height * width, rng).reshape(height, width)
    # probabilities on both sides of the level (everything but the level itself is allowed to occur)
    above = rng.integers(level + 1, 256, mask.shape)
    below = rng.integers(0, level + 1, mask.shape)
    probs = np.where(mask == 1, above, below).astype(np.uint8)
    assert rle_encode_probs(probs, (level + 0.5) / 255, order) == rle_encode_numpy(mask, order)


def test_kernel_long_output_grows_its_buffer():
    mask = np.zeros((300, 301), np.uint8)
    mask.reshape(-1)[::2] = 1  # 45,150 runs: many times the kernel's first output buffer
    assert rle_encode(mask) == rle_encode_numpy(mask)
