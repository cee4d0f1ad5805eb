"""Probability store entries: bytes <-> uint8 probabilities, per store format version.

Version 3 (``segfuse-store-3``, ``<image_id>.u8zst``)::

    b"U8S3", C, h, w, H, W   (little-endian uint32), a 16-byte source key, then as version 2

The source key says what made the entry (a digest of the model checkpoint, TTA, precision and the
input image file's size and mtime; zero bytes when the writer gave none): ``ProbStore`` reuses an
entry only while the key of what would make it now is the same. ``entry_key`` reads it from the
header alone.

Version 2 (``segfuse-store-2``, ``<image_id>.u8zst``), still read::

    b"U8S2", C, h, w, H, W   (little-endian uint32)   then the (C, h, w) uint8 array, zstd level 1

``(h, w)`` is the size the probabilities are stored at (the model's own resolution, padding
cropped), ``(H, W)`` the image's original size; readers resize once, bilinearly (OpenCV
``INTER_LINEAR`` on uint8, the interpolation ``predict`` always used), when they need the
original size. Measured on the real 1918x1280 Carvana maps of a 256x384 run (``bench/store.py``):
about 8 KB and 0.05 ms to decode per map at model resolution, against 135 KB and 2.5 ms for
version 1's full-size zlib entries; zstd decodes 2.5x faster than zlib at either size.

Version 1 (``segfuse-store-1``, ``<image_id>.u8z``), still read::

    b"U8Z1", C, H, W         (little-endian uint32)   then the (C, H, W) array, zlib level 1
"""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import zstandard

SUFFIXES = {1: ".u8z", 2: ".u8zst", 3: ".u8zst"}
KEY_BYTES = 16
_V1 = struct.Struct("<4sIII")
_V2 = struct.Struct("<4sIIIII")
_V3 = struct.Struct(f"<4sIIIII{KEY_BYTES}s")
_MAGIC = {1: b"U8Z1", 2: b"U8S2", 3: b"U8S3"}
_LEVEL = 1  # zstd level: level 3 saves ~1% at model resolution for 7x the encoding time
HEAD_BYTES = _V3.size  # what ``entry_key`` needs of a file


def encode(probs_u8: np.ndarray, original: tuple[int, int], key: bytes = b"") -> bytes:
    """A version-3 entry of ``(C, h, w)`` uint8 probabilities of an image of size ``original``,
    made by the source ``key`` (at most ``KEY_BYTES`` bytes; empty: unknown)."""
    if len(key) > KEY_BYTES:
        raise ValueError(f"source key longer than {KEY_BYTES} bytes")
    head = _V3.pack(_MAGIC[3], *probs_u8.shape, *original, key.ljust(KEY_BYTES, b"\0"))
    return head + zstandard.ZstdCompressor(level=_LEVEL).compress(
        np.ascontiguousarray(probs_u8).data
    )


def entry_key(head: bytes, version: int) -> bytes | None:
    """The source key in an entry's first ``HEAD_BYTES`` bytes (None: an older format, a corrupt
    head, or none recorded)."""
    if version < 3 or len(head) < _V3.size or head[:4] != _MAGIC[3]:
        return None
    key = _V3.unpack_from(head)[-1].rstrip(b"\0")
    return key or None


def decode(data: bytes, version: int) -> tuple[np.ndarray, tuple[int, int]]:
    """``(C, h, w)`` uint8 as stored, and the original ``(H, W)``. ValueError when corrupt."""
    try:
        if version == 1:
            magic, channels, height, width = _V1.unpack_from(data)
            original, payload = (height, width), zlib.decompress(data[_V1.size :])
        else:
            head = _V2 if version == 2 else _V3
            magic, channels, height, width, orig_h, orig_w = head.unpack_from(data)[:6]
            payload = zstandard.ZstdDecompressor().decompress(data[head.size :])
            original = (orig_h, orig_w)
        if magic != _MAGIC[version]:
            raise ValueError("bad magic")
        return np.frombuffer(payload, np.uint8).reshape(channels, height, width), original
    except (struct.error, zlib.error, zstandard.ZstdError) as err:
        raise ValueError(str(err)) from None


def resize(probs_u8: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(C, h, w)`` uint8 -> ``(C, H, W)`` uint8, bilinear (identity when the size matches)."""
    if probs_u8.shape[1:] == tuple(size):
        return probs_u8
    height, width = size
    if probs_u8.shape[0] == 1:
        return cv2.resize(probs_u8[0], (width, height), interpolation=cv2.INTER_LINEAR)[None]
    hwc = np.ascontiguousarray(probs_u8.transpose(1, 2, 0))
    out = cv2.resize(hwc, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(out.reshape(height, width, -1).transpose(2, 0, 1))
