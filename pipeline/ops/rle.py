"""Run-length encoding in the Kaggle convention: 1-indexed ``start length`` pairs, sorted.

Pixel order is explicit: ``"C"`` numbers pixels row-major (left to right, then top to bottom;
Carvana, verified against the official train_masks.csv), ``"F"`` column-major (top to bottom
first; Severstal, TGS Salt, Airbus). An empty mask encodes to the empty string.
"""

from __future__ import annotations

import numpy as np

ORDERS = ("C", "F")
# No image has 2**48 pixels (281 T); below it, starts + lengths never overflow int64 either.
MAX_VALUE = 2**48


def _check_order(order: str) -> None:
    if order not in ORDERS:
        raise ValueError(f"order must be 'C' (row-major) or 'F' (column-major), got {order!r}")


def rle_encode_numpy(mask: np.ndarray, order: str = "C") -> str:
    """Reference encoder. ``mask``: 2-D array, nonzero = foreground.

    Pads the flattened mask with a 0 on each side, so a set first or last pixel is encoded
    correctly (the widely copied Kaggle snippet zeroes both and corrupts such masks).
    """
    _check_order(order)
    flat = np.asarray(mask).ravel(order=order) != 0
    padded = np.concatenate([[False], flat, [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    starts, ends = edges[0::2], edges[1::2]
    pairs = np.empty(2 * len(starts), dtype=np.int64)
    pairs[0::2] = starts + 1
    pairs[1::2] = ends - starts
    return " ".join(map(str, pairs.tolist()))


def parse_rle(rle: str) -> tuple[np.ndarray, np.ndarray]:
    """Split an RLE string into 0-based ``starts`` and ``lengths`` (int64). Raises ValueError."""
    tokens = rle.split()
    if len(tokens) % 2:
        raise ValueError(f"odd number of values ({len(tokens)}); RLE needs 'start length' pairs")
    try:
        numbers = [int(t) for t in tokens]
    except ValueError:
        raise ValueError("RLE holds a value that is not an integer") from None
    too_big = next((n for n in numbers if abs(n) >= MAX_VALUE), None)
    if too_big is not None:
        raise ValueError(
            f"value {too_big} is larger than any image (RLE numbers are pixel positions and counts)"
        )
    values = np.array(numbers, dtype=np.int64)
    return values[0::2] - 1, values[1::2]


def check_runs(starts: np.ndarray, lengths: np.ndarray, size: int) -> str | None:
    """Why the 0-based runs are malformed for ``size`` pixels, or None when they are fine."""
    if len(starts) == 0:
        return None
    if (starts < 0).any():
        return f"start {int(starts[starts < 0][0]) + 1} is below 1 (starts are 1-based)"
    if (lengths <= 0).any():
        return f"length {int(lengths[lengths <= 0][0])} is not positive"
    ends = starts + lengths
    if (ends > size).any():
        i = int(np.argmax(ends > size))
        return f"run {int(starts[i]) + 1} {int(lengths[i])} ends past the last pixel ({size})"
    if (starts[1:] < ends[:-1]).any():
        i = int(np.argmax(starts[1:] < ends[:-1])) + 1
        return f"run starting at {int(starts[i]) + 1} is unsorted or overlaps the previous run"
    return None


def checked_runs(rle: str, shape: tuple[int, int], order: str) -> tuple[np.ndarray, np.ndarray]:
    """0-based starts and lengths of a well-formed RLE for ``shape``; ValueError otherwise."""
    _check_order(order)
    starts, lengths = parse_rle(rle)
    problem = check_runs(starts, lengths, shape[0] * shape[1])
    if problem:
        raise ValueError(problem)
    return starts, lengths


def rle_decode_numpy(rle: str, shape: tuple[int, int], order: str = "C") -> np.ndarray:
    """Reference decoder: ``(H, W)`` uint8 {0,1}. Raises ValueError on malformed RLE."""
    starts, lengths = checked_runs(rle, shape, order)
    flat = np.zeros(shape[0] * shape[1] + 1, dtype=np.int8)
    np.add.at(flat, starts, 1)
    np.add.at(flat, starts + lengths, -1)
    mask = np.cumsum(flat[:-1], dtype=np.int8).astype(np.uint8)
    return mask.reshape(shape, order=order)


import numba  # noqa: E402  (below the numpy reference on purpose: reference first, kernels second)

from pipeline.ops.rle_kernel import encode_runs  # noqa: E402


def _encode(values: np.ndarray, level: int, order: str) -> str:
    _check_order(order)
    if values.ndim != 2:
        raise ValueError(f"expected a 2-D (H, W) array, got shape {values.shape}")
    flat = np.ascontiguousarray(values if order == "C" else values.T).reshape(-1)
    if not np.little_endian:  # the word kernel reads pixels as little-endian uint64
        return rle_encode_numpy((flat > level)[None, :])
    words = flat[: flat.size - flat.size % 8].view(np.uint64)
    return encode_runs(flat, words, level).tobytes().decode("ascii")


def rle_encode(mask: np.ndarray, order: str = "C") -> str:
    """Kaggle RLE of a (H, W) mask (nonzero = foreground): 1-based sorted 'start length' pairs.

    ``order="C"`` numbers pixels row-major (Carvana), ``"F"`` column-major (Severstal, TGS, Airbus).
    An empty mask gives ``""``; a set first or last pixel is encoded correctly.
    """
    mask = np.asarray(mask)
    if mask.dtype == np.bool_:
        mask = mask.view(np.uint8)
    elif mask.dtype != np.uint8:
        mask = (mask != 0).astype(np.uint8)
    return _encode(mask, 0, order)  # uint8: "> 0" is "nonzero", no conversion pass needed


def rle_encode_probs(probs_u8: np.ndarray, threshold: float, order: str = "C") -> str:
    """RLE of ``probs_u8 > threshold * 255`` straight from uint8 probabilities (no mask array).

    Uses the project's binarisation rule: pixel positive when p > threshold (see ``ops.threshold``).
    """
    if probs_u8.dtype != np.uint8:
        raise ValueError(f"probs_u8 must be uint8, got {probs_u8.dtype}")
    level = int(np.floor(threshold * 255.0))  # v > t*255  <=>  v > floor(t*255) for integer v
    if level < 0:
        return _encode(np.ones_like(probs_u8), 0, order)
    if level >= 255:
        return ""
    return _encode(probs_u8, level, order)


@numba.njit(cache=True, nogil=True)
def _fill(flat: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> None:
    for r in range(starts.size):
        flat[starts[r] : starts[r] + lengths[r]] = 1


def rle_decode(rle: str, shape: tuple[int, int], order: str = "C") -> np.ndarray:
    """(H, W) uint8 {0,1} mask from a Kaggle RLE string. Raises ValueError on malformed RLE."""
    starts, lengths = checked_runs(rle, shape, order)
    height, width = shape
    flat = np.zeros(height * width, np.uint8)
    _fill(flat, starts, lengths)
    return flat.reshape(shape) if order == "C" else flat.reshape((width, height)).T.copy()
