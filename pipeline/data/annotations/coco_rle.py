"""COCO run-length encoding (the ``segmentation`` of crowd annotations), through pycocotools.

pycocotools (``pycocotools.mask``, cocoapi's ``maskApi.c``) does the decoding and encoding. Its C
decoder does not check that the run lengths cover the image: counts summing to less than ``H * W``
decode silently (the rest becomes 0), and a malformed compressed string gives only "Invalid RLE mask
representation". So every RLE is validated here first, with messages that say what is wrong.

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
from pycocotools import mask as coco_mask

_MAX_CHARS = 12  # 60 bits: far above any 32-bit count, and still safe to shift in int64


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
        raise ValueError(
            f"RLE counts cover {total} pixels but the image has {height}x{width} = {height * width}"
        )
    return runs.astype(np.int64)


def string_to_counts(text: str | bytes) -> np.ndarray:
    """Run lengths (int64) from the COCO string form (vectorised ``rleFrString``), to validate them.

    Raises:
        ValueError: a char outside ``'0'..'o'`` (48..111) or a string that ends mid-number.
    """
    try:
        raw = text.encode("ascii") if isinstance(text, str) else bytes(text)
    except UnicodeEncodeError:
        raise ValueError(
            "compressed RLE holds a non-ASCII char; allowed chars are '0'..'o'"
        ) from None
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
        raise ValueError(
            f"compressed RLE holds a {int(lengths.max())}-char number; counts fit in 7 chars"
        )
    shift = 5 * (np.arange(v.size) - np.repeat(starts, lengths))
    values = np.add.reduceat((v & 0x1F) << shift, starts)
    values -= ((v[ends] & 0x10) != 0).astype(np.int64) << (
        5 * lengths
    )  # sign-extend: x |= -1 << 5k
    # Undo the delta coding: counts[i] = values[i] + counts[i - 2] for i > 2; indices 0, 1 and 2 are
    # stored as is, so each parity is a cumulative sum (odd ones from 1, even ones from 2).
    counts = values.copy()
    counts[1::2] = np.cumsum(values[1::2])
    counts[2::2] = np.cumsum(values[2::2])
    return counts


def coco_rle(rle: dict, height: int, width: int) -> dict:
    """Validate a COCO RLE object for an ``(H, W)`` image; return it compressed,
    as pycocotools takes it.

    ``counts`` as a list is the uncompressed form (crowd annotations in COCO JSON files), as a
    ``str``/``bytes`` the compressed form (pycocotools ``encode`` output, LVIS, many exporters).
    The result is ``{"size": [H, W], "counts": bytes}``; ``coco_rle_mask`` renders it.

    Raises:
        ValueError: malformed RLE, counts not covering the image,
            or a ``size`` other than ``(height, width)``.
    """
    if not isinstance(rle, dict) or "counts" not in rle or "size" not in rle:
        raise ValueError("RLE must be an object with 'size' [H, W] and 'counts'")
    size = rle["size"]
    if not isinstance(size, (list, tuple)) or list(size) != [height, width]:
        raise ValueError(f"RLE size {size} differs from the image size [{height}, {width}] (H, W)")
    counts = rle["counts"]
    if isinstance(counts, (str, bytes)):
        check_counts(string_to_counts(counts), height, width)
        return {
            "size": [height, width],
            "counts": counts.encode("ascii") if isinstance(counts, str) else counts,
        }
    if not isinstance(counts, (list, tuple)):
        raise ValueError(
            f"RLE counts must be a list of integers or a string, got {type(counts).__name__}"
        )
    runs = check_counts(counts, height, width)
    return coco_mask.frPyObjects({"size": [height, width], "counts": runs.tolist()}, height, width)


def coco_rle_mask(rle: dict) -> np.ndarray:
    """``(H, W)`` uint8 {0,1} C-ordered mask of an RLE that ``coco_rle`` returned."""
    return np.ascontiguousarray(coco_mask.decode(rle), dtype=np.uint8)


def coco_rle_decode(rle: dict, height: int, width: int) -> np.ndarray:
    """Decode a COCO RLE ``{"size": [H, W], "counts": list[int] | str}`` into ``(H, W)``
    uint8 {0,1}.

    Raises:
        ValueError: see ``coco_rle``.
    """
    return coco_rle_mask(coco_rle(rle, height, width))


def coco_rle_encode(mask: np.ndarray) -> dict:
    """``{"size": [H, W], "counts": str}``: pycocotools' compressed RLE of a ``(H, W)`` mask
    (nonzero = 1)."""
    rle = coco_mask.encode(np.asfortranarray(np.asarray(mask) != 0, dtype=np.uint8))
    return {"size": [int(n) for n in rle["size"]], "counts": rle["counts"].decode("ascii")}
