"""Albumentations presets (``AUGMENTS``) and the input geometry of a run.

Geometry ``resize``: every image is resized to the run's (H, W). Geometry ``pad``: the image is
scaled to fit (H, W) keeping its aspect ratio, then padded at the bottom/right up to (H, W), so
the padding is removed again by cropping ``[:h, :w]`` (1918x1280 at 1920x1280: scale 1, pad 2 px).
"""

from __future__ import annotations

from dataclasses import dataclass

import albumentations as A
import cv2
import numpy as np

from pipeline.config import names
from pipeline.errors import PipelineError


def _carvana() -> list:
    # The Carvana seed solution: hue ±50, saturation ±5, value ±15; shift ±0.0625, scale ±0.1,
    # no rotation; horizontal flip; each applied with probability 0.5.
    return [
        A.HueSaturationValue(hue_shift_limit=50, sat_shift_limit=5, val_shift_limit=15, p=0.5),
        A.Affine(
            translate_percent=(-0.0625, 0.0625),
            scale=(0.9, 1.1),
            rotate=0,
            border_mode=cv2.BORDER_CONSTANT,
            fill=0,
            fill_mask=0,
            p=0.5,
        ),
        A.HorizontalFlip(p=0.5),
    ]


def _light() -> list:
    return [A.HorizontalFlip(p=0.5), A.RandomBrightnessContrast(0.1, 0.1, p=0.5)]


def _driving() -> list:
    return [
        A.HorizontalFlip(p=0.5),
        A.RandomBrightnessContrast(0.2, 0.2, p=0.5),
        A.Affine(
            scale=(0.85, 1.2),
            translate_percent=(-0.05, 0.05),
            rotate=(-3, 3),
            border_mode=cv2.BORDER_CONSTANT,
            fill=0,
            fill_mask=0,
            p=0.5,
        ),
    ]


AUGMENTS = {"none": list, "carvana": _carvana, "light": _light, "driving": _driving}
assert tuple(AUGMENTS) == names.AUGMENT_PRESETS


@dataclass(frozen=True)
class Geometry:
    """Network input size (multiples of 32) and how images get there."""

    height: int
    width: int
    mode: str = "resize"  # "resize" | "pad"

    def fitted(self, height: int, width: int) -> tuple[int, int]:
        """Size an (height, width) image is resized to before any padding."""
        if self.mode == "resize":
            return self.height, self.width
        scale = min(self.height / height, self.width / width)
        return min(self.height, max(1, round(height * scale))), min(
            self.width, max(1, round(width * scale))
        )

    def pad(self) -> A.PadIfNeeded:
        return A.PadIfNeeded(
            self.height,
            self.width,
            position="top_left",
            border_mode=cv2.BORDER_CONSTANT,
            fill=0,
            fill_mask=0,
        )


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize ``(H, W, 3)`` uint8 to ``size`` = (h, w): area filter down, linear up."""
    h, w = size
    if image.shape[:2] == (h, w):
        return image
    shrink = h < image.shape[0] and w < image.shape[1]
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a class-id mask with nearest neighbour."""
    h, w = size
    if mask.shape[:2] == (h, w):
        return mask
    return cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)


def build_transform(
    preset: str, geometry: Geometry, seed: int | None = None, crop: tuple[int, int] | None = None
) -> A.Compose:
    """Augmentations of ``preset``, padding to the geometry, then an optional random ``crop`` (h, w)
    of the padded input; also transforms a ``valid`` mask (0 on padding)."""
    if preset not in AUGMENTS:
        raise PipelineError(
            f"augment.preset '{preset}' is unknown; choose one of {sorted(AUGMENTS)}"
        )
    steps = [*AUGMENTS[preset](), geometry.pad()]
    if crop is not None:
        steps.append(A.RandomCrop(*crop))
    return A.Compose(steps, additional_targets={"valid": "mask"}, seed=seed)


def restore_size(
    probs: np.ndarray, fitted: tuple[int, int], original: tuple[int, int]
) -> np.ndarray:
    """(C, H, W) network-size probabilities -> (C, h0, w0): crop the padding, resize linearly."""
    h, w = fitted
    crop = probs[:, :h, :w]
    if (h, w) == tuple(original):
        return np.ascontiguousarray(crop)
    hwc = np.ascontiguousarray(crop.transpose(1, 2, 0))
    out = cv2.resize(hwc, (original[1], original[0]), interpolation=cv2.INTER_LINEAR)
    return out.reshape(original[0], original[1], -1).transpose(2, 0, 1)
