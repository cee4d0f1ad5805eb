"""Segmentation metrics on masks (numpy).

Dice follows the Kaggle Carvana rule: a prediction and a ground truth that are both empty
score 1 (Dice = 2|A∩B| / (|A|+|B|), defined as 1 when |A|+|B| = 0).
"""
from __future__ import annotations

import numpy as np


def dice_score(pred: np.ndarray, target: np.ndarray) -> float:
    """Dice of two binary masks of the same shape (nonzero = foreground); empty vs empty = 1."""
    if pred.shape != target.shape:
        raise ValueError(f"pred shape {pred.shape} != target shape {target.shape}")
    p, t = pred != 0, target != 0
    total = int(np.count_nonzero(p)) + int(np.count_nonzero(t))
    if total == 0:
        return 1.0
    return 2.0 * int(np.count_nonzero(p & t)) / total


def mean_dice(preds: list[np.ndarray], targets: list[np.ndarray]) -> float:
    """Mean per-image Dice (the Carvana leaderboard metric)."""
    if len(preds) != len(targets) or not preds:
        raise ValueError("need the same, nonzero number of predictions and targets")
    return float(np.mean([dice_score(p, t) for p, t in zip(preds, targets, strict=True)]))
