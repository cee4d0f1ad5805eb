"""Per-class weights of the argmax decision, tuned on out-of-fold mIoU.

For exclusive classes the per-class threshold of a multi-label task has an equivalent: a weight
``w_c`` on each class's probability before the argmax (a bias ``log w_c`` on its log-probability).
Models trained with cross-entropy under-predict thin and rare classes (pole, sign, pedestrian,
bicyclist): their probability rarely wins the argmax even where they are the most likely *relative
to their frequency*; raising their weight trades a few pixels of the big classes (road, building,
sky) for whole objects of the small ones, and mIoU weighs every class the same.

The search is a coordinate ascent over a log-spaced grid, one class at a time, scored on a pixel
subsample (a random 1/``stride``² of the pixels) of every OOF image; the result is then scored on
all pixels and kept only when it beats the plain argmax there, so the tuned decision never lowers
the OOF mIoU it reports.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from pipeline.ops.metrics import confusion_matrix, mean_iou

GRID = tuple(float(2.0**e) for e in np.arange(-2.0, 3.01, 0.25))  # 0.25 .. 8, 21 values


def weighted_argmax(probs_u8: np.ndarray, weights: np.ndarray | tuple | None) -> np.ndarray:
    """(h, w) uint8 class ids: argmax over C of ``probs_u8 (C, h, w) * weights (C,)``."""
    if weights is None or len(weights) == 0:
        return probs_u8.argmax(0).astype(np.uint8)
    w = np.asarray(weights, np.float32).reshape(-1, *([1] * (probs_u8.ndim - 1)))
    return (probs_u8.astype(np.float32) * w).argmax(0).astype(np.uint8)


@dataclass(frozen=True)
class ClassWeights:
    weights: tuple[float, ...]
    miou_plain: float  # OOF mIoU of the plain argmax, all pixels
    miou: float  # OOF mIoU of the chosen weights, all pixels (== miou_plain when none helped)


def _sample(
    pairs: Iterable[tuple[np.ndarray, np.ndarray]],
    classes: int,
    ignore_index: int | None,
    stride: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(C, N) float32 probabilities and (N,) int64 truth of the valid subsampled pixels."""
    probs, truth = [], []
    rng = np.random.default_rng(0)  # a random pixel subset, not a grid: a grid can miss 1-px poles
    for p, t in pairs:
        p, t = p.reshape(classes, -1), t.ravel().astype(np.int64)
        keep = (t < classes) if ignore_index is None else (t != ignore_index) & (t < classes)
        keep &= rng.random(t.size) < 1.0 / stride**2
        probs.append(p[:, keep].astype(np.float32))
        truth.append(t[keep])
    return np.concatenate(probs, axis=1), np.concatenate(truth)


def _miou(probs: np.ndarray, truth: np.ndarray, weights: np.ndarray) -> float:
    pred = (probs * weights[:, None]).argmax(0)
    classes = len(weights)
    cm = np.bincount(truth * classes + pred, minlength=classes * classes).reshape(classes, classes)
    return mean_iou(cm)


def full_miou(
    pairs: Iterable[tuple[np.ndarray, np.ndarray]],
    classes: int,
    ignore_index: int | None,
    weights: tuple[float, ...] | None,
) -> float:
    """mIoU over every pixel of ``pairs`` (probs_u8 (C, H, W), truth (H, W)) under ``weights``."""
    cm = np.zeros((classes, classes), np.int64)
    for p, t in pairs:
        cm += confusion_matrix(weighted_argmax(p, weights), t, classes, ignore_index)
    return mean_iou(cm)


def tune_class_weights(
    pairs: list[tuple[np.ndarray, np.ndarray]],
    classes: int,
    ignore_index: int | None,
    rounds: int = 3,
    stride: int = 2,
    grid: tuple[float, ...] = GRID,
) -> ClassWeights:
    """Weights (C,) maximising OOF mIoU of ``weighted_argmax``; all ones when nothing beats it.

    Args:
        pairs: (probs_u8 (C, H, W) uint8, truth (H, W) class ids) of every OOF image.
        classes: C. ignore_index: truth value left out of the score (void), or None.
    """
    probs, truth = _sample(pairs, classes, ignore_index, stride)
    weights = np.ones(classes, np.float32)
    best = _miou(probs, truth, weights)
    for _ in range(rounds):
        improved = False
        for c in range(classes):
            for value in grid:
                trial = weights.copy()
                trial[c] = value
                score = _miou(probs, truth, trial)
                if score > best + 1e-9:
                    best, weights, improved = score, trial, True
        if not improved:
            break
    plain = full_miou(pairs, classes, ignore_index, None)
    tuned = tuple(float(w) for w in weights)
    score = full_miou(pairs, classes, ignore_index, tuned)
    if score <= plain:
        return ClassWeights(tuple(1.0 for _ in range(classes)), plain, plain)
    return ClassWeights(tuned, plain, score)
