"""Per-image quality features of a decided prediction, from its probabilities alone
(no truth needed).

Every feature describes one class channel ``p`` (uint8 probabilities) and the mask the decision kept
for that class (threshold, min area, clean-up applied: what the submission holds). "Near" means
within ``RING`` of the image diagonal (at least 3 pixels) of the kept mask's boundary, on either
side: that is where a good prediction's errors are, and where a confident model's probabilities
are already 0 or 1. Uncertain pixels further away (a floor band that clean-up cut off, a blob
under the min area) are counted apart, in ``band_far``.

=============== =================================================================================
``area``        kept mask / image pixels
``band``        near pixels with 0.1 < p < 0.9, per pixel of kept area (the uncertain band)
``band_wide``   the same with 0.02 < p < 0.98 (the band's tail, where confident errors start)
``band_far``    pixels with 0.1 < p < 0.9 that are not near the kept mask, per pixel of kept area
``soft_dice``   Dice of the soft map against its own kept mask, near it and inside it (the whole
                map if the mask is empty): ``2 sum(p m) / (sum(p) + sum(m))``; 1 = all certain
``edge_width``  near uncertain pixels per boundary pixel: the width in pixels of the transition
                from 0 to 1 (boundary sharpness: small = sharp)
``removed``     share of the thresholded area that the decision dropped (clean-up, min area)
``components``  8-connected components of the thresholded mask before clean-up (binary only)
=============== =================================================================================

Kept area 0 counts as 1 pixel in the ratios, so an empty mask with an uncertain blob scores high.
Image-level signals (member disagreement, the area outlier score within the group, empty) are
added by ``pipeline.qa``.
"""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.decide.postprocess import component_count

BAND = (0.1, 0.9)
WIDE = (0.02, 0.98)
RING = 0.01  # near = within 1% of the image diagonal of the kept boundary (16 px at 1918x1280)
MIN_RING = 3
CLASS_FEATURES = ("area", "band", "band_wide", "band_far", "soft_dice", "edge_width")
BINARY_FEATURES = (*CLASS_FEATURES, "removed", "components")


def ring_radius(shape: tuple[int, int]) -> float:
    """Half-width in pixels of the band around a boundary that counts as near it."""
    return max(float(MIN_RING), RING * float(np.hypot(*shape)))


def near_boundary(mask: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixels within ``radius`` of the boundary of ``mask`` (either side), and the boundary pixels.

    ``mask`` (h, w) bool. Distances are Euclidean (OpenCV's 3x3 approximation); the image border is
    not a boundary. An empty or full mask has no boundary and nothing near it.
    """
    fg = mask.astype(np.uint8)
    if not fg.any() or fg.all():
        empty = np.zeros(mask.shape, bool)
        return empty, empty
    inside = cv2.distanceTransform(fg, cv2.DIST_L2, 3)  # distance to the nearest background pixel
    outside = cv2.distanceTransform(
        1 - fg, cv2.DIST_L2, 3
    )  # distance to the nearest foreground pixel
    near = np.where(mask, inside <= radius, outside <= radius)
    return near, mask & (inside <= 1.0)


def channel_features(
    probs_u8: np.ndarray, kept: np.ndarray, raw: np.ndarray | None = None
) -> dict[str, float]:
    """Features (module docstring) of one class: ``probs_u8`` (h, w) uint8, ``kept`` (h, w) mask
    kept by the decision, ``raw`` (h, w) the thresholded mask before clean-up (binary tasks; adds
    ``removed`` and ``components``)."""
    kept = kept.astype(bool)
    near, edge = near_boundary(kept, ring_radius(kept.shape))
    unsure = (probs_u8 > BAND[0] * 255) & (probs_u8 < BAND[1] * 255)
    wide = (probs_u8 > WIDE[0] * 255) & (probs_u8 < WIDE[1] * 255)
    area = int(np.count_nonzero(kept))
    per = float(max(area, 1))
    zone = (
        near | kept if area else np.ones(kept.shape, bool)
    )  # an empty mask answers for the whole map
    soft_sum = float(probs_u8[zone].sum(dtype=np.int64)) / 255.0
    overlap = float(probs_u8[kept].sum(dtype=np.int64)) / 255.0
    out = {
        "area": area / kept.size,
        "band": np.count_nonzero(unsure & near) / per,
        "band_wide": np.count_nonzero(wide & near) / per,
        "band_far": np.count_nonzero(unsure & ~near) / per,
        "soft_dice": 2 * overlap / (soft_sum + area) if soft_sum + area > 0 else 1.0,
        "edge_width": np.count_nonzero(unsure & near) / max(int(np.count_nonzero(edge)), 1),
    }
    if raw is not None:
        raw = raw.astype(bool)
        dropped = np.count_nonzero(raw & ~kept)
        out["removed"] = dropped / max(int(np.count_nonzero(raw)), 1)
        out["components"] = float(component_count(raw))
    return {k: float(v) for k, v in out.items()}


def binary_features(probs_u8: np.ndarray, kept: np.ndarray, threshold: float) -> dict[str, float]:
    """Features of a binary prediction: ``probs_u8`` (1, h, w) uint8, ``kept`` (h, w) the decided
    mask, ``threshold`` the decision's threshold
    (``p > threshold`` before clean-up and min area)."""
    plane = probs_u8[0]
    return channel_features(plane, kept, plane > threshold * 255)


def multiclass_features(
    probs_u8: np.ndarray, label: np.ndarray, classes: list[str]
) -> dict[str, float]:
    """Per-class features ``<feature>:<class>`` of a multi-class prediction: ``probs_u8`` (C, h, w),
    ``label`` (h, w) the decided class ids."""
    out = {}
    for c, name in enumerate(classes):
        for key, value in channel_features(probs_u8[c], label == c).items():
            out[f"{key}:{name}"] = value
    return out
