"""Threshold (+ min area, + clean-up) tuning on out-of-fold probabilities.

Pure computation over per-image histograms (``pipeline.ops.threshold``); the stage feeds it
images one at a time, so memory stays at one image plus (N, C, 256) counters.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.ops.threshold import LEVELS, areas_from_histograms, dice_table, histograms, search

HALF = 127  # p > 0.5  <=>  probs_u8 > 127.5  <=>  probs_u8 > 127


def channel_targets(mask: np.ndarray, channels: int, ignore_index: int | None):
    """(C, H, W) bool targets and (H, W) valid pixels from a class-id mask."""
    valid = np.ones(mask.shape, bool) if ignore_index is None else mask != ignore_index
    if channels == 1:
        return (mask == 1)[None], valid
    return np.stack([mask == c for c in range(channels)]), valid


def min_area_grid(image_pixels: int, steps: int = 24) -> list[float]:
    """0 plus a geometric grid from 16 px to 2% of the image."""
    top = max(32.0, 0.02 * image_pixels)
    return [0.0, *np.unique(np.round(np.geomspace(16, top, steps))).tolist()]


@dataclass
class Collector:
    """Accumulates per-image histograms (and folds) as images stream by."""

    channels: int
    hist_all: list = field(default_factory=list)
    hist_pos: list = field(default_factory=list)
    folds: list = field(default_factory=list)
    pixels: list = field(default_factory=list)

    def add(self, probs_u8: np.ndarray, target: np.ndarray, valid: np.ndarray, fold: int) -> None:
        a, p = histograms(probs_u8, target, valid)
        self.hist_all.append(a)
        self.hist_pos.append(p)
        self.folds.append(fold)
        self.pixels.append(probs_u8[0].size)

    def arrays(self):
        """pred, tp: (N, C, 256); gt: (N, C); folds: (N,)."""
        pred, tp, gt = areas_from_histograms(np.stack(self.hist_all), np.stack(self.hist_pos))
        return pred, tp, gt, np.asarray(self.folds)


@dataclass
class ChannelResult:
    name: str
    level: int
    min_area: float
    dice_half: float
    dice_tuned: float
    curve: list  # mean Dice per level at the chosen min_area
    per_fold: list  # dicts: fold, images, best_threshold, dice_half, dice_tuned

    @property
    def threshold(self) -> float:
        return self.level / 255.0


def tune_channel(name: str, pred, tp, gt, folds, min_areas) -> ChannelResult:
    """Exact search for one channel: pred/tp (N, 256), gt (N,), folds (N,)."""
    level, area, score, curve = search(pred, tp, gt, min_areas)
    half = float(dice_table(pred, tp, gt, 0)[:, HALF].mean())
    per_fold = []
    for k in sorted(set(folds.tolist())):
        sel = folds == k
        fold_level, _, _, _ = search(pred[sel], tp[sel], gt[sel], [area])
        table = dice_table(pred[sel], tp[sel], gt[sel], area)
        per_fold.append({"fold": int(k), "images": int(sel.sum()), "best_threshold": fold_level / 255.0,
                         "dice_half": float(dice_table(pred[sel], tp[sel], gt[sel], 0)[:, HALF].mean()),
                         "dice_tuned": float(table[:, level].mean())})
    return ChannelResult(name, level, area, half, score, curve.tolist(), per_fold)


def stability(result: ChannelResult) -> dict:
    """Spread of the per-fold best thresholds and whether the gain stands out of fold noise."""
    gains = np.array([f["dice_tuned"] - f["dice_half"] for f in result.per_fold])
    spread = float(np.std([f["best_threshold"] for f in result.per_fold]))
    noise = float(np.std([f["dice_half"] for f in result.per_fold]) / np.sqrt(max(len(gains), 1)))
    gain = result.dice_tuned - result.dice_half
    warning = None
    if len(gains) > 1 and gain < noise:
        warning = (f"tuned gain {gain:+.5f} is smaller than the fold-to-fold noise ({noise:.5f}, std of fold "
                   "Dice / sqrt(K)); the tuned threshold may not beat 0.5 on unseen data")
    return {"threshold_spread": spread, "gain": gain, "fold_noise": noise, "warning": warning}


__all__ = ["Collector", "ChannelResult", "tune_channel", "stability", "min_area_grid", "channel_targets", "LEVELS"]
