"""Decode images and masks from disk; every failure is a PipelineError naming the file.

Images become ``(H, W, 3)`` uint8 RGB from any mode PIL reads (16-bit and float grey are scaled,
not clipped). Binary masks are read by what they look like (:func:`read_binary_mask`); label
images of multi-class datasets by their values (:func:`read_label`).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from pipeline.errors import PipelineError

_DECODE_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    UnidentifiedImageError,
    Image.DecompressionBombError,
)


def _open(path: Path) -> Image.Image:
    if not path.is_file():
        raise PipelineError(f"{path}: file not found")
    try:
        return Image.open(path)
    except _DECODE_ERRORS as err:
        raise PipelineError(
            f"{path}: unreadable or not an image ({err}); re-export or remove the file"
        ) from None


def image_size(path: Path) -> tuple[int, int]:
    """``(height, width)`` read from the file header only (no pixel decode)."""
    with _open(path) as img:
        width, height = img.size
    return height, width


def _wide_to_u8(arr: np.ndarray, mode: str, source: str) -> np.ndarray:
    """16/32-bit integer grey (0..65535) or float grey (0..1) -> uint8 0..255, rounded."""
    if arr.size == 0:
        return arr.astype(np.uint8)
    low, high = float(arr.min()), float(arr.max())
    if mode == "F":
        if low < 0 or high > 1:
            raise PipelineError(
                f"{source}: float image values span {low:g}..{high:g}, outside 0..1; "
                "re-export it as 8- or 16-bit"
            )
        return np.rint(arr * 255).astype(np.uint8)
    if low < 0 or high > 65535:
        raise PipelineError(
            f"{source}: {mode} image values span {low:g}..{high:g}, outside 16 bits; "
            "re-export it as 8- or 16-bit"
        )
    return ((arr.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def to_rgb8(img: Image.Image, source: str) -> np.ndarray:
    """Any PIL image -> ``(H, W, 3)`` uint8 RGB (PIL's own ``convert`` clips 16-bit grey to 255)."""
    if img.mode == "F" or img.mode.startswith("I"):
        grey = _wide_to_u8(np.asarray(img), img.mode, source)
        return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))
    return np.asarray(img.convert("RGB"))


def read_rgb(path: Path) -> np.ndarray:
    """Decode an image as ``(H, W, 3)`` uint8 RGB. Truncated/corrupt files raise PipelineError."""
    try:
        with _open(path) as img, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return to_rgb8(img, str(path))
    except _DECODE_ERRORS as err:
        raise PipelineError(
            f"{path}: corrupt image ({err}); re-export or remove the file"
        ) from None


def read_label(path: Path) -> np.ndarray:
    """Decode a single-channel label image (palette/L/1/I) as ``(H, W)`` uint8 values.

    Palette images (indexed PNG) give their palette *indices*, which is how CamVid's label PNGs
    store class ids. Binary masks go through :func:`read_binary_mask` instead.
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
                    f"{path}: mask has mode {img.mode} (colour); expected a single-channel label "
                    "image (palette, L or 1). Convert colour masks with a palette mapping"
                )
    except _DECODE_ERRORS as err:
        raise PipelineError(f"{path}: corrupt mask ({err}); re-export or remove the file") from None
    return np.ascontiguousarray(arr, dtype=np.uint8)


def _looks_grey(img: Image.Image, source: str) -> np.ndarray:
    """The grey level each pixel shows: palettes through their colours, 16-bit scaled to 8."""
    if img.mode == "1":
        return np.asarray(img, dtype=np.uint8) * 255
    if img.mode == "F" or img.mode.startswith("I"):
        arr = np.asarray(img)
        return (
            arr.astype(np.uint8)
            if arr.min(initial=0) >= 0 and arr.max(initial=0) <= 255
            else _wide_to_u8(arr, img.mode, source)
        )
    if img.mode in ("L", "LA"):
        return np.asarray(img.convert("L"))
    rgb = np.asarray(img.convert("RGB")).astype(
        np.int16
    )  # P, PA, RGB, RGBA, CMYK, ...: what it shows
    colour = (rgb[..., 0] != rgb[..., 1]) | (rgb[..., 1] != rgb[..., 2])
    if colour.any():
        y, x = np.argwhere(colour)[0]
        raise PipelineError(
            f"{source}: binary mask has colour pixels ({int(colour.sum())}, first "
            f"rgb{tuple(int(v) for v in rgb[y, x])} at x={x}, y={y}); save it as black/white, "
            "or use mask_mode: colour with a label_map"
        )
    return rgb[..., 0].astype(np.uint8)


def binarize_grey(grey: np.ndarray, source: str) -> tuple[np.ndarray, int]:
    """Grey levels -> ``({0,1} mask, pixels that were neither black nor white)``.

    The rule: values in {0,1} are the mask; values in {0,255} are black/white; {0,1,255} is an
    error (ambiguous); other masks with bright pixels (anti-aliased or JPEG edges) are ``> 127``,
    and their grey pixels are counted; anything else (only dark values beyond {0,1}) is an error
    naming the values.
    """
    values = np.unique(grey)
    if set(values.tolist()) <= {0, 1}:
        return grey.astype(np.uint8), 0
    if set(values.tolist()) == {0, 1, 255} or set(values.tolist()) == {1, 255}:
        raise PipelineError(
            f"{source}: binary mask mixes values 1 and 255 (both foreground?); "
            "save it as {0,1} or {0,255}"
        )
    if values[-1] > 127:
        greys = int(np.count_nonzero((grey != 0) & (grey != 255)))
        return (grey > 127).astype(np.uint8), greys
    raise PipelineError(
        f"{source}: binary mask values {values.tolist()[:8]} are outside the allowed set "
        "{0,1}, {0,255} or grey levels with white (> 127 = foreground); fix the mask"
    )


def read_binary_mask(path: Path) -> tuple[np.ndarray, int]:
    """Decode a binary mask by what it looks like: ``((H, W) uint8 {0,1}, grey pixels counted)``.

    A palette image (Carvana's GIFs) is read through its palette, whatever the index order.
    """
    try:
        with _open(path) as img:
            grey = _looks_grey(img, str(path))
    except _DECODE_ERRORS as err:
        raise PipelineError(f"{path}: corrupt mask ({err}); re-export or remove the file") from None
    return binarize_grey(np.ascontiguousarray(grey), str(path))
