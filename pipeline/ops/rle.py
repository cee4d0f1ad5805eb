"""Run-length encoding in the Kaggle convention: 1-indexed ``start length`` pairs, sorted.

Pixel order is explicit: ``"C"`` numbers pixels row-major (left to right, then top to bottom;
Carvana, verified against the official train_masks.csv), ``"F"`` column-major (top to bottom
first; Severstal, TGS Salt, Airbus). An empty mask encodes to the empty string.
"""
from __future__ import annotations

import numpy as np

ORDERS = ("C", "F")


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
        values = np.array([int(t) for t in tokens], dtype=np.int64)
    except ValueError:
        raise ValueError("RLE holds a value that is not an integer") from None
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


def rle_decode_numpy(rle: str, shape: tuple[int, int], order: str = "C") -> np.ndarray:
    """Reference decoder: ``(H, W)`` uint8 {0,1}. Raises ValueError on malformed RLE."""
    _check_order(order)
    height, width = shape
    starts, lengths = parse_rle(rle)
    problem = check_runs(starts, lengths, height * width)
    if problem:
        raise ValueError(problem)
    flat = np.zeros(height * width + 1, dtype=np.int8)
    np.add.at(flat, starts, 1)
    np.add.at(flat, starts + lengths, -1)
    mask = np.cumsum(flat[:-1], dtype=np.int8).astype(np.uint8)
    return mask.reshape(shape, order=order)
