"""Ensemble components: member weights (equal, fixed, fit on OOF) and the binarisation of fused maps."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from pipeline.ops.fusion import fuse
from pipeline.ops.threshold import areas_from_histograms, dice_table, histograms
from pipeline.postprocess import clean


@dataclass(frozen=True)
class Decision:
    """How fused probabilities become masks (binary tasks)."""

    threshold: float = 0.5
    min_area: float = 0
    cleanup: bool = False

    def mask(self, probs_u8: np.ndarray) -> np.ndarray:
        """(h, w) uint8 {0,1} from (h, w) uint8 probabilities: p > threshold, min area, clean-up."""
        mask = (probs_u8 > self.threshold * 255).astype(np.uint8)
        if self.cleanup and mask.any():
            mask = clean(mask)
        if self.min_area and np.count_nonzero(mask) < self.min_area:
            mask[:] = 0
        return mask


def normalized(weights: Iterable[float]) -> np.ndarray:
    w = np.asarray(list(weights), np.float64)
    return w / w.sum()


def best_dice(hist_all: list, hist_pos: list) -> float:
    """Best mean Dice over all thresholds (min_area 0) of one candidate's per-image histograms."""
    pred, tp, gt = areas_from_histograms(np.stack(hist_all), np.stack(hist_pos))
    return float(dice_table(pred[:, 0], tp[:, 0], gt[:, 0]).mean(axis=0).max())


def fit_weights(images: Callable[[], Iterable[tuple[list[np.ndarray], np.ndarray]]], members: int,
                grid: list[float], rounds: int, mode: str = "mean") -> tuple[np.ndarray, float]:
    """Coordinate ascent on member weights maximising the fused OOF Dice (at its best threshold).

    ``images()`` yields (member uint8 maps (1, h, w), target (h, w) bool) for every OOF image; each
    round is one pass that scores every single-weight change on the grid at once.
    """
    weights = np.ones(members) / members
    best = None
    for _ in range(rounds):
        candidates = [weights]
        for m in range(members):
            for value in grid:
                trial = weights.copy()
                trial[m] = value
                if trial.sum() > 0 and not any(np.allclose(normalized(trial), normalized(c)) for c in candidates):
                    candidates.append(trial)
        hists = [([], []) for _ in candidates]
        for member_maps, target in images():
            for (h_all, h_pos), cand in zip(hists, candidates, strict=True):
                a, p = histograms(fuse(member_maps, cand, mode), target[None])
                h_all.append(a)
                h_pos.append(p)
        scores = [best_dice(a, p) for a, p in hists]
        top = int(np.argmax(scores))
        if best is not None and scores[top] <= best + 1e-12:
            break
        weights, best = normalized(candidates[top]), scores[top]
    return normalized(weights), float(best)
