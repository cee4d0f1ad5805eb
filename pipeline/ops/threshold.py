"""Exact threshold search from per-image 256-bin histograms of uint8 probabilities.

For one image and channel, ``hist_all[v]`` counts pixels with probability level ``v`` and
``hist_pos[v]`` those of them whose ground truth is positive. A pixel is predicted positive at
threshold level ``k`` (0..255) when its level is *above* k, i.e. ``probs_u8 > k`` (p > k/255).
Reverse cumulative sums then give, for all 256 thresholds at once, the predicted area and the true
positives, so each image's Dice at every threshold costs O(256) after one scan of its pixels.
Dice follows the Kaggle rule: empty prediction vs empty truth = 1.
"""

from __future__ import annotations

import numba
import numpy as np

LEVELS = 256


@numba.njit(cache=True, nogil=True)
def _histograms(
    probs: np.ndarray, target: np.ndarray, valid: np.ndarray, hist_all, hist_pos
) -> None:
    channels, size = probs.shape
    for c in range(channels):
        for i in range(size):
            if valid[i]:
                v = probs[c, i]
                hist_all[c, v] += 1
                if target[c, i]:
                    hist_pos[c, v] += 1


def histograms(probs_u8: np.ndarray, target: np.ndarray, valid: np.ndarray | None = None):
    """Per-channel histograms of one image (Numba, one pass over the pixels).

    Args:
        probs_u8: (C, H, W) uint8 probabilities.
        target: (C, H, W) bool/uint8 ground truth per channel (nonzero = positive).
        valid: optional (H, W) bool; False pixels (ignore label) are left out.
    Returns:
        ``(hist_all, hist_pos)``, each (C, 256) int64.
    """
    if probs_u8.dtype != np.uint8 or probs_u8.ndim != 3:
        raise ValueError(f"probs_u8 must be (C, H, W) uint8, got {probs_u8.dtype} {probs_u8.shape}")
    if target.shape != probs_u8.shape:
        raise ValueError(f"target shape {target.shape} != probs shape {probs_u8.shape}")
    channels = probs_u8.shape[0]
    flat_valid = (
        np.ones(probs_u8[0].size, np.bool_)
        if valid is None
        else np.ascontiguousarray(valid).ravel()
    )
    hist_all = np.zeros((channels, LEVELS), np.int64)
    hist_pos = np.zeros((channels, LEVELS), np.int64)
    _histograms(
        np.ascontiguousarray(probs_u8).reshape(channels, -1),
        np.ascontiguousarray(target).reshape(channels, -1).view(np.uint8)
        if target.dtype == np.bool_
        else np.ascontiguousarray(target).reshape(channels, -1),
        flat_valid.view(np.uint8) if flat_valid.dtype == np.bool_ else flat_valid,
        hist_all,
        hist_pos,
    )
    return hist_all, hist_pos


def histograms_numpy(probs_u8: np.ndarray, target: np.ndarray, valid: np.ndarray | None = None):
    """Plain-numpy reference of :func:`histograms`."""
    channels = probs_u8.shape[0]
    keep = np.ones(probs_u8[0].shape, bool) if valid is None else valid.astype(bool)
    hist_all = np.zeros((channels, LEVELS), np.int64)
    hist_pos = np.zeros((channels, LEVELS), np.int64)
    for c in range(channels):
        values = probs_u8[c][keep]
        hist_all[c] = np.bincount(values, minlength=LEVELS)
        hist_pos[c] = np.bincount(values[target[c][keep] != 0], minlength=LEVELS)
    return hist_all, hist_pos


def areas_from_histograms(hist_all: np.ndarray, hist_pos: np.ndarray):
    """For histograms (..., 256): predicted area, true positives (..., 256) per threshold level k
    (pixels with level > k) and the ground-truth area (...)."""
    above_all = np.cumsum(hist_all[..., ::-1], axis=-1)[..., ::-1]
    above_pos = np.cumsum(hist_pos[..., ::-1], axis=-1)[..., ::-1]
    pred = np.concatenate([above_all[..., 1:], np.zeros_like(above_all[..., :1])], axis=-1)
    tp = np.concatenate([above_pos[..., 1:], np.zeros_like(above_pos[..., :1])], axis=-1)
    return pred, tp, hist_pos.sum(axis=-1)


def dice_table(pred: np.ndarray, tp: np.ndarray, gt: np.ndarray, min_area: float = 0) -> np.ndarray:
    """Dice (..., 256) per threshold level; masks smaller than ``min_area`` pixels are emptied.

    ``pred``/``tp``: (..., 256) from :func:`areas_from_histograms`; ``gt``: (...).
    """
    gt = np.asarray(gt)[..., None].astype(np.float64)
    emptied = pred < min_area
    pred = np.where(emptied, 0, pred).astype(np.float64)
    tp = np.where(emptied, 0, tp).astype(np.float64)
    denom = pred + gt
    with np.errstate(invalid="ignore", divide="ignore"):
        dice = np.where(denom > 0, 2.0 * tp / denom, 1.0)
    return dice


def level_to_threshold(level: int) -> float:
    """Threshold level k as a probability: predicted positive when p > k/255."""
    return level / 255.0


def threshold_to_level(threshold: float) -> float:
    """``probs_u8 > threshold * 255`` is the same test as ``probs_u8 > level`` for this level."""
    return threshold * 255.0


def level_of(threshold: float) -> int:
    """The integer level k with ``probs_u8 > k`` <=> ``probs_u8 > threshold * 255`` for every uint8
    value (the decision's own test, same float arithmetic): floor(threshold * 255), in 0..255."""
    return int(np.clip(np.floor(threshold * 255), 0, LEVELS - 1))


def search(
    pred: np.ndarray, tp: np.ndarray, gt: np.ndarray, min_areas=(0,), levels=None
) -> tuple[int, float, float, np.ndarray]:
    """Best (level, min_area, mean Dice, curve) over images for one channel.

    ``pred``/``tp``: (N, 256); ``gt``: (N,). ``levels``: the candidate levels (None: all 256; a
    threshold given in advance is its one level). Ties go to the smallest min_area, then the level
    closest to 127.5 (p = 0.5), so a flat optimum does not drift to an extreme. ``curve`` is the
    mean Dice at every level (candidates or not) at the chosen min_area.
    """
    allowed = np.ones(LEVELS, bool)
    if levels is not None:
        allowed[:] = False
        allowed[np.asarray(list(levels), np.int64)] = True
    best = (-1.0, 0, 0.0, None)
    center = np.abs(np.arange(LEVELS) - 127.5)
    for area in sorted(min_areas):
        curve = dice_table(pred, tp, gt, area).mean(axis=0)
        top = curve[allowed].max()
        near = allowed & (curve >= top - 1e-12)
        level = int(np.flatnonzero(near)[np.argmin(center[near])])
        if top > best[0] + 1e-12:
            best = (float(top), level, float(area), curve)
    score, level, area, curve = best
    return level, area, score, curve
