"""Overlay panels and grids of segmentation results (pure: arrays in, RGB arrays or PNG bytes out).

A labelled row is ``image | truth | prediction | errors``; an unlabelled (test) row is
``image | prediction | uncertainty``. Conventions:

- images are ``(H, W, 3)`` uint8 RGB; labels are ``(H, W)`` uint8 class ids (binary: {0, 1});
  ids at or above the number of colours (an ``ignore_index`` such as 255) are never painted;
- overlays blend a class colour over the image: ``round((1 - alpha) * image + alpha * colour)``;
- the error panel is the image dimmed to ``DIM`` with wrong pixels painted in solid colours:
  ``FN_COLOUR`` (blue) where the truth is a foreground class and the prediction is background
  (missed), ``FP_COLOUR`` (red) for every other wrong pixel (predicted where there is nothing, or
  the wrong class); correct and ignored pixels show the dimmed image.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image

FP_COLOUR = (255, 0, 0)  # predicted, but wrong: false positive or wrong class
FN_COLOUR = (0, 0, 255)  # truth foreground predicted as background: false negative
DISAGREE_COLOUR = (255, 0, 255)  # ensemble members do not all agree
BINARY_COLOUR = (0, 255, 0)  # the foreground of binary tasks
ALPHA = 0.5
DIM = 0.4
GAP = 4  # pixels between panels and rows (after scaling)
CAPTION_HEIGHT = 22
_BACKDROP = (32, 32, 32)


def class_colours(num_classes: int, lut: np.ndarray | None = None) -> np.ndarray:
    """``(C, 3)`` uint8 colours: binary tasks get ``BINARY_COLOUR`` for class 1,
    others the ``lut`` rows."""
    if num_classes == 2:
        return np.array([(0, 0, 0), BINARY_COLOUR], np.uint8)
    if lut is None or len(lut) < num_classes:
        raise ValueError(f"need a (C, 3) colour table for {num_classes} classes")
    return np.asarray(lut[:num_classes], np.uint8)


def _check(image: np.ndarray, *labels: np.ndarray) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got {image.dtype} {image.shape}")
    for label in labels:
        if label.shape != image.shape[:2]:
            raise ValueError(f"label shape {label.shape} != image shape {image.shape[:2]}")


def dim(image: np.ndarray, factor: float = DIM) -> np.ndarray:
    """The image darkened to ``factor`` of its brightness (uint8, rounded)."""
    return np.rint(image.astype(np.float32) * factor).astype(np.uint8)


def overlay(
    image: np.ndarray,
    label: np.ndarray,
    colours: np.ndarray,
    skip: int | None = None,
    alpha: float = ALPHA,
) -> np.ndarray:
    """Blend each pixel's class colour over the image.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        label: ``(H, W)`` uint8 class ids; ids ``>= len(colours)`` (ignore values) keep the image.
        colours: ``(C, 3)`` uint8 class colours.
        skip: a class left unpainted (the background of binary tasks), or None to paint every class.
        alpha: weight of the colour.
    """
    _check(image, label)
    paint = label < len(colours)
    if skip is not None:
        paint &= label != skip
    out = image.copy()
    colour = colours[label[paint]].astype(np.float32)
    out[paint] = np.rint((1 - alpha) * image[paint].astype(np.float32) + alpha * colour).astype(
        np.uint8
    )
    return out


def error_map(
    image: np.ndarray,
    pred: np.ndarray,
    truth: np.ndarray,
    background: int = 0,
    ignore_index: int | None = None,
) -> np.ndarray:
    """Dimmed image with missed pixels in ``FN_COLOUR`` and other wrong pixels in ``FP_COLOUR``."""
    _check(image, pred, truth)
    wrong = pred != truth
    if ignore_index is not None:
        wrong &= truth != ignore_index
    missed = wrong & (pred == background)
    out = dim(image)
    out[wrong & ~missed] = FP_COLOUR
    out[missed] = FN_COLOUR
    return out


def uncertainty(probs_u8: np.ndarray) -> np.ndarray:
    """``(h, w)`` uint8, 0 = certain, 255 = a coin toss, from ``(C, h, w)`` uint8 probabilities.

    Binary (C = 1): ``255 - |2p - 255|``. Softmax (C > 1): ``(255 - max_c p) * C / (C - 1)``.
    """
    if probs_u8.ndim != 3 or probs_u8.dtype != np.uint8:
        raise ValueError(
            f"probabilities must be (C, h, w) uint8, got {probs_u8.dtype} {probs_u8.shape}"
        )
    channels = probs_u8.shape[0]
    if channels == 1:
        return (255 - np.abs(2 * probs_u8[0].astype(np.int16) - 255)).astype(np.uint8)
    spread = (255 - probs_u8.max(0).astype(np.float32)) * channels / (channels - 1)
    return np.clip(np.rint(spread), 0, 255).astype(np.uint8)


def heat_map(probs_u8: np.ndarray) -> np.ndarray:
    """``(h, w, 3)`` RGB heat map of ``uncertainty`` (inferno: dark = certain, bright = unsure)."""
    return cv2.applyColorMap(uncertainty(probs_u8), cv2.COLORMAP_INFERNO)[..., ::-1].copy()


def disagreement_map(image: np.ndarray, labels: list[np.ndarray]) -> np.ndarray:
    """Dimmed image with ``DISAGREE_COLOUR`` where the members' labels are not all equal."""
    _check(image, *labels)
    differ = np.zeros(image.shape[:2], bool)
    for label in labels[1:]:
        differ |= label != labels[0]
    out = dim(image)
    out[differ] = DISAGREE_COLOUR
    return out


# ---- layout --------------------------------------------------------------------------------------
def _scaled(picture: np.ndarray, width: int) -> np.ndarray:
    """Resize to ``width`` keeping the aspect ratio; upscaling keeps pixels crisp
    (exact colours)."""
    height = max(1, round(picture.shape[0] * width / picture.shape[1]))
    method = cv2.INTER_NEAREST if width >= picture.shape[1] else cv2.INTER_AREA
    return cv2.resize(picture, (width, height), interpolation=method)


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii")


def caption(text: str, width: int, height: int = CAPTION_HEIGHT) -> np.ndarray:
    """A dark ``(height, width, 3)`` strip with white text (OpenCV Hershey font, ASCII)."""
    strip = np.full((height, width, 3), _BACKDROP, np.uint8)
    cv2.putText(
        strip,
        _ascii(text),
        (6, height - 7),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.45,
        (255, 255, 255),
        1,
        cv2.LINE_AA,
    )
    return strip


def header(titles: list[str], width: int, height: int = CAPTION_HEIGHT) -> np.ndarray:
    """Panel titles, each over its share of the row width."""
    strip = np.full((height, width, 3), _BACKDROP, np.uint8)
    for i, title in enumerate(titles):
        x = int(i * width / len(titles)) + 6
        cv2.putText(
            strip,
            _ascii(title),
            (x, height - 7),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.45,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
    return strip


def hstack(panels: list[np.ndarray], gap: int = GAP) -> np.ndarray:
    """Panels of one height side by side with ``gap`` dark pixels between them."""
    heights = {p.shape[0] for p in panels}
    if len(heights) != 1:
        raise ValueError(f"panels differ in height: {sorted(heights)}")
    spacer = np.full((panels[0].shape[0], gap, 3), _BACKDROP, np.uint8)
    parts = [part for panel in panels for part in (panel, spacer)][:-1]
    return np.concatenate(parts, axis=1)


def compose_row(panels: list[np.ndarray], text: str, width: int) -> np.ndarray:
    """Caption strip over the panels side by side, scaled to ``width`` pixels."""
    return np.concatenate([caption(text, width), _scaled(hstack(panels), width)], axis=0)


def grid(rows: list[np.ndarray], titles: list[str] | None = None, gap: int = GAP) -> np.ndarray:
    """Rows of one width stacked top to bottom (optional title strip on top)."""
    widths = {r.shape[1] for r in rows}
    if len(widths) != 1:
        raise ValueError(f"rows differ in width: {sorted(widths)}")
    width = rows[0].shape[1]
    spacer = np.full((gap, width, 3), _BACKDROP, np.uint8)
    parts = [header(titles, width)] if titles else []
    for row in rows:
        parts += [row, spacer]
    return np.concatenate(parts[:-1], axis=0)


def labelled_row(
    image: np.ndarray,
    truth: np.ndarray,
    pred: np.ndarray,
    colours: np.ndarray,
    text: str,
    width: int,
    skip: int | None = 0,
    background: int = 0,
    ignore_index: int | None = None,
) -> np.ndarray:
    """``image | truth overlay | prediction overlay | errors`` of a labelled image,
    scaled to ``width``."""
    panels = [
        image,
        overlay(image, truth, colours, skip),
        overlay(image, pred, colours, skip),
        error_map(image, pred, truth, background, ignore_index),
    ]
    return compose_row(panels, text, width)


def unlabelled_row(
    image: np.ndarray,
    pred: np.ndarray,
    probs_u8: np.ndarray,
    colours: np.ndarray,
    text: str,
    width: int,
    skip: int | None = 0,
    extra: list[np.ndarray] = (),
) -> np.ndarray:
    """``image | prediction overlay | uncertainty heat map [| extra panels]``
    of an unlabelled image."""
    panels = [image, overlay(image, pred, colours, skip), heat_map(probs_u8), *extra]
    return compose_row(panels, text, width)


LABELLED_TITLES = ["image", "ground truth", "prediction", "errors: red = false pos., blue = missed"]
UNLABELLED_TITLES = ["image", "prediction", "uncertainty (bright = unsure)"]


def png_bytes(rgb: np.ndarray) -> bytes:
    """PNG encoding of an ``(H, W, 3)`` uint8 RGB array."""
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", optimize=False)
    return buf.getvalue()
