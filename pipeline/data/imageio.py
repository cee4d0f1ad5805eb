"""Decode images and masks from disk; every failure is a PipelineError naming the file."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from pipeline.errors import PipelineError

_DECODE_ERRORS = (OSError, ValueError, SyntaxError, UnidentifiedImageError, Image.DecompressionBombError)


def _open(path: Path) -> Image.Image:
    if not path.is_file():
        raise PipelineError(f"{path}: file not found")
    try:
        return Image.open(path)
    except _DECODE_ERRORS as err:
        raise PipelineError(f"{path}: unreadable or not an image ({err}); re-export or remove the file") from None


def image_size(path: Path) -> tuple[int, int]:
    """``(height, width)`` read from the file header only (no pixel decode)."""
    with _open(path) as img:
        width, height = img.size
    return height, width


def read_rgb(path: Path) -> np.ndarray:
    """Decode an image as ``(H, W, 3)`` uint8 RGB. Truncated/corrupt files raise PipelineError."""
    try:
        with _open(path) as img, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return np.asarray(img.convert("RGB"))
    except _DECODE_ERRORS as err:
        raise PipelineError(f"{path}: corrupt image ({err}); re-export or remove the file") from None


def read_label(path: Path) -> np.ndarray:
    """Decode a single-channel label image (palette/L/1/I) as ``(H, W)`` uint8 values.

    Palette images (GIF, indexed PNG) give their palette *indices*, which is how Carvana's GIF
    masks and CamVid's label PNGs store class ids.
    """
    try:
        with _open(path) as img:
            if img.mode in ("P", "L"):
                arr = np.asarray(img)
            elif img.mode == "1":
                arr = np.asarray(img, dtype=np.uint8)
            elif img.mode in ("I", "I;16", "I;16B"):
                arr = np.asarray(img)
                if arr.max(initial=0) > 255:
                    raise PipelineError(f"{path}: label values go up to {arr.max()}, above 255")
                arr = arr.astype(np.uint8)
            else:
                raise PipelineError(
                    f"{path}: mask has mode {img.mode} (colour); expected a single-channel label image "
                    "(palette, L or 1). Convert colour masks with a palette mapping"
                )
    except _DECODE_ERRORS as err:
        raise PipelineError(f"{path}: corrupt mask ({err}); re-export or remove the file") from None
    return np.ascontiguousarray(arr, dtype=np.uint8)
