"""COCO run-length encoding (the ``segmentation`` of crowd annotations), decoded without pycocotools.

Conventions, from cocoapi ``common/maskApi.c`` (``rleEncode``, ``rleToString``, ``rleFrString``):

- pixels are numbered **column-major** (Fortran order: top to bottom, then left to right), unlike
  the Kaggle row-major RLE of ``ops.rle``;
- ``counts`` alternates run lengths of 0s and 1s and **starts with a run of zeros** (0 when the
  first pixel is set), so ``sum(counts) == H * W``;
- ``size`` is ``[H, W]``;
- the compressed form stores ``counts`` as a string, LEB128-like with 6 bits per char: each char
  ``c`` carries ``c - 48``, 5 data bits (least significant group first) plus a continuation bit
  0x20; bit 0x10 of a group's last char is the sign. From the 4th count on (index ``i > 2`` in the
  C code) the value stored is the difference to ``counts[i - 2]``.
"""
from __future__ import annotations

import numpy as np

_MAX_CHARS = 12  # 60 bits: far above any 32-bit count, and still safe to shift in int64


def mask_to_counts(mask: np.ndarray) -> np.ndarray:
    """Column-major run lengths of a ``(H, W)`` mask (nonzero = 1), starting with a zero run (int64)."""
    flat = np.asarray(mask).ravel(order="F") != 0
    if flat.size == 0:
        return np.zeros(0, np.int64)
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate([[0], edges, [flat.size]])).astype(np.int64)
    return np.concatenate([[0], runs]) if flat[0] else runs


def check_counts(counts, height: int, width: int) -> np.ndarray:
    """Validate COCO run lengths for an ``(H, W)`` image; return them as int64.

    Raises:
        ValueError: a count that is not a non-negative integer, or counts not summing to ``H * W``.
    """
    runs = np.asarray(counts)
    if runs.size == 0:
        runs = runs.astype(np.int64)
    if runs.ndim != 1 or runs.dtype.kind not in "iu":
        raise ValueError("RLE counts must be a flat list of integers")
    if (runs < 0).any():
        raise ValueError(f"RLE count {int(runs[runs < 0][0])} is negative")
    total = int(runs.sum())
    if total != height * width:
        raise ValueError(f"RLE counts cover {total} pixels but the image has {height}x{width} = {height * width}")
    return runs.astype(np.int64)


def counts_to_mask(counts, height: int, width: int) -> np.ndarray:
    """``(H, W)`` uint8 {0,1} mask from COCO run lengths (column-major, zeros first).

    Raises:
        ValueError: see ``check_counts``.
    """
    runs = check_counts(counts, height, width)
    flat = np.repeat((np.arange(runs.size) % 2).astype(np.uint8), runs)
    return np.ascontiguousarray(flat.reshape(width, height).T)


def counts_to_string(counts) -> str:
    """Compress run lengths into the COCO string form (a transcription of ``rleToString``)."""
    runs = [int(c) for c in counts]
    chars = []
    for i, count in enumerate(runs):
        x = count - runs[i - 2] if i > 2 else count
        more = True
        while more:
            c = x & 0x1F
            x >>= 5  # arithmetic shift, like C's on a signed long
            more = x != -1 if c & 0x10 else x != 0
            chars.append(chr((c | 0x20 if more else c) + 48))
    return "".join(chars)


def string_to_counts(text: str | bytes) -> np.ndarray:
    """Run lengths (int64) from the COCO string form (vectorised ``rleFrString``).

    Raises:
        ValueError: a char outside ``'0'..'o'`` (48..111) or a string that ends mid-number.
    """
    try:
        raw = text.encode("ascii") if isinstance(text, str) else bytes(text)
    except UnicodeEncodeError:
        raise ValueError("compressed RLE holds a non-ASCII char; allowed chars are '0'..'o'") from None
    v = np.frombuffer(raw, np.uint8).astype(np.int64) - 48
    if v.size == 0:
        return np.zeros(0, np.int64)
    if ((v < 0) | (v > 63)).any():
        bad = raw[int(np.argmax((v < 0) | (v > 63)))]
        raise ValueError(f"compressed RLE holds {chr(bad)!r}, outside the allowed chars '0'..'o'")
    last = (v & 0x20) == 0  # no continuation bit: the char ends its number
    if not last[-1]:
        raise ValueError("compressed RLE string ends in the middle of a number (truncated?)")
    ends = np.flatnonzero(last)
    starts = np.concatenate([[0], ends[:-1] + 1])
    lengths = ends - starts + 1
    if lengths.max() > _MAX_CHARS:
        raise ValueError(f"compressed RLE holds a {int(lengths.max())}-char number; counts fit in 7 chars")
    shift = 5 * (np.arange(v.size) - np.repeat(starts, lengths))
    values = np.add.reduceat((v & 0x1F) << shift, starts)
    values -= ((v[ends] & 0x10) != 0).astype(np.int64) << (5 * lengths)  # sign-extend: x |= -1 << 5k
    # Undo the delta coding: counts[i] = values[i] + counts[i - 2] for i > 2; indices 0, 1 and 2 are
    # stored as is, so each parity is a cumulative sum (odd ones from 1, even ones from 2).
    counts = values.copy()
    counts[1::2] = np.cumsum(values[1::2])
    counts[2::2] = np.cumsum(values[2::2])
    return counts


def rle_counts(rle: dict, height: int, width: int) -> np.ndarray:
    """Validated int64 run lengths of a COCO RLE object for an ``(H, W)`` image (no mask is built).

    Raises:
        ValueError: malformed RLE or a ``size`` different from ``(height, width)``.
    """
    if not isinstance(rle, dict) or "counts" not in rle or "size" not in rle:
        raise ValueError("RLE must be an object with 'size' [H, W] and 'counts'")
    size = rle["size"]
    if not isinstance(size, (list, tuple)) or list(size) != [height, width]:
        raise ValueError(f"RLE size {size} differs from the image size [{height}, {width}] (H, W)")
    counts = rle["counts"]
    if isinstance(counts, (str, bytes)):
        counts = string_to_counts(counts)
    elif not isinstance(counts, (list, tuple)):
        raise ValueError(f"RLE counts must be a list of integers or a string, got {type(counts).__name__}")
    return check_counts(counts, height, width)


def coco_rle_decode(rle: dict, height: int, width: int) -> np.ndarray:
    """Decode a COCO RLE ``{"size": [H, W], "counts": list[int] | str}`` into ``(H, W)`` uint8 {0,1}.

    ``counts`` as a list is the uncompressed form (crowd annotations in COCO JSON files), as a
    ``str``/``bytes`` the compressed form (pycocotools ``encode`` output, LVIS, many exporters).

    Raises:
        ValueError: malformed RLE or a ``size`` different from ``(height, width)``.
    """
    return counts_to_mask(rle_counts(rle, height, width), height, width)


def coco_rle_encode_uncompressed(mask: np.ndarray) -> dict:
    """``{"size": [H, W], "counts": [int, ...]}`` of a ``(H, W)`` mask (nonzero = foreground)."""
    mask = np.asarray(mask)
    return {"size": list(mask.shape), "counts": mask_to_counts(mask).tolist()}


def coco_rle_encode_compressed(mask: np.ndarray) -> dict:
    """``{"size": [H, W], "counts": str}``: the string pycocotools ``encode`` gives (as ``str``, not bytes)."""
    mask = np.asarray(mask)
    return {"size": list(mask.shape), "counts": counts_to_string(mask_to_counts(mask))}
