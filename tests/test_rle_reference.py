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
