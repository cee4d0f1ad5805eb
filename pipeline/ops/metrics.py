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


def confusion_matrix(
    pred: np.ndarray, target: np.ndarray, num_classes: int, ignore_index: int | None = None
) -> np.ndarray:
    """(C, C) int64 counts, rows = truth, columns = prediction; ignored truth pixels left out."""
    if pred.shape != target.shape:
        raise ValueError(f"pred shape {pred.shape} != target shape {target.shape}")
    t = target.ravel().astype(np.int64)
    p = pred.ravel().astype(np.int64)
    keep = t < num_classes if ignore_index is None else (t != ignore_index) & (t < num_classes)
    return np.bincount(t[keep] * num_classes + p[keep], minlength=num_classes**2).reshape(
        num_classes, num_classes
    )


def iou_per_class(cm: np.ndarray) -> np.ndarray:
    """IoU of each class from a confusion matrix;
    NaN for a class absent from truth and prediction."""
    tp = np.diag(cm).astype(np.float64)
    union = cm.sum(0) + cm.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def dice_per_class(cm: np.ndarray) -> np.ndarray:
    tp = np.diag(cm).astype(np.float64)
    denom = cm.sum(0) + cm.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, 2 * tp / denom, np.nan)


def mean_iou(cm: np.ndarray) -> float:
    """Mean IoU over the classes present (in truth or prediction), the usual mIoU."""
    iou = iou_per_class(cm)
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else 1.0


def pixel_accuracy(cm: np.ndarray) -> float:
    total = cm.sum()
    return float(np.trace(cm) / total) if total else 1.0


def cross_entropy_sum(
    probs: np.ndarray, target: np.ndarray, ignore_index: int | None = None, eps: float = 1e-7
) -> tuple[float, int]:
    """Sum of -log p(true class) over valid pixels, and their count. ``probs`` (C, H, W) float."""
    num_classes = probs.shape[0]
    t = target.astype(np.int64)
    keep = t < num_classes if ignore_index is None else (t != ignore_index) & (t < num_classes)
    rows, cols = np.nonzero(keep)
    p = probs[t[rows, cols], rows, cols]
    return float(-np.log(np.clip(p, eps, 1.0)).sum()), int(rows.size)
