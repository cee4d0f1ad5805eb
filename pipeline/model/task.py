"""What differs between binary and multi-class segmentation: targets, probabilities, metrics.

``BinaryTask``: one sigmoid channel; metric = mean per-image Dice at a threshold
(empty vs empty = 1). ``MulticlassTask``: one softmax channel per class, argmax; metrics from a
dataset-wide confusion matrix (per-class IoU, mIoU, pixel accuracy, mean class Dice) and the mean
categorical cross-entropy over valid pixels (comma10k's published number),
padding and ignore pixels excluded.

Metrics accumulate as flat sums (``state``) so distributed ranks can add them up.
"""

from __future__ import annotations

import numpy as np
import torch

from pipeline.ops.metrics import (
    confusion_matrix,
    cross_entropy_sum,
    dice_per_class,
    dice_score,
    iou_per_class,
    mean_iou,
    pixel_accuracy,
)

IGNORE = -100  # torch's cross-entropy ignore_index for multi-class targets


class DiceMean:
    """Mean per-image Dice."""

    def __init__(self, task: BinaryTask):
        self.task, self.state = task, [0.0, 0.0]

    def add(self, probs: np.ndarray, mask: np.ndarray) -> None:
        self.state[0] += self.task.scores(probs, mask)["dice"]
        self.state[1] += 1

    @staticmethod
    def result(state: list[float], classes: list[str] | None = None) -> dict:
        return {"dice": state[0] / state[1] if state[1] else 1.0}


class BinaryTask:
    """Mask values {0, 1} (+ optional ignore value); one output channel."""

    outputs = 1
    primary = "dice"
    multiclass = False

    def __init__(self, ignore_index: int | None = None, threshold: float = 0.5):
        self.ignore_index, self.threshold = ignore_index, threshold

    def target(
        self,
        mask: torch.Tensor,
        valid: torch.Tensor,
        soft: torch.Tensor | None = None,
        weight: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``mask``/``valid`` (N, H, W) uint8 -> float target and pixel weights, both (N, 1, H, W).

        ``soft`` (N,) bool marks masks holding probabilities 0..255 (soft pseudo-labels);
        ``weight`` (N,) float scales each image's pixels in the loss.
        """
        keep = valid.bool()
        if self.ignore_index is not None:
            keep &= mask != self.ignore_index
        target = (mask == 1).float()
        if soft is not None and soft.any():
            target = torch.where(soft.view(-1, 1, 1), mask.float() / 255.0, target)
        pixel_weight = keep.float()
        if weight is not None:
            pixel_weight = pixel_weight * weight.float().view(-1, 1, 1)
        return target.unsqueeze(1), pixel_weight.unsqueeze(1)

    def probs(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits.float())

    def scores(self, probs: np.ndarray, mask: np.ndarray) -> dict[str, float]:
        """``probs`` (1, H, W) float at the original size, ``mask`` (H, W) -> {"dice": ...}."""
        pred = probs[0] > self.threshold
        target = mask == 1
        if self.ignore_index is not None:
            keep = mask != self.ignore_index
            pred, target = pred & keep, target & keep
        return {"dice": dice_score(pred, target)}

    def accumulator(self) -> DiceMean:
        return DiceMean(self)


class ConfusionCE:
    """Confusion matrix + cross-entropy sums over a dataset."""

    def __init__(self, task: MulticlassTask):
        self.task = task
        c = task.outputs
        self.state = [0.0] * (c * c + 2)

    def add(self, probs: np.ndarray, mask: np.ndarray) -> None:
        c = self.task.outputs
        cm = confusion_matrix(probs.argmax(0), mask, c, self.task.ignore_index)
        ce, count = cross_entropy_sum(probs, mask, self.task.ignore_index)
        for i, v in enumerate(cm.ravel().tolist()):
            self.state[i] += v
        self.state[-2] += ce
        self.state[-1] += count

    @staticmethod
    def result(state: list[float], classes: list[str]) -> dict:
        c = len(classes)
        cm = np.array(state[: c * c]).reshape(c, c)
        iou, dice = iou_per_class(cm), dice_per_class(cm)
        return {
            "miou": mean_iou(cm),
            "acc": pixel_accuracy(cm),
            "ce": state[-2] / state[-1] if state[-1] else 0.0,
            "dice": float(np.nanmean(dice)) if np.isfinite(dice).any() else 1.0,
            "iou": {
                name: (None if np.isnan(v) else float(v))
                for name, v in zip(classes, iou, strict=True)
            },
        }


class MulticlassTask:
    """Exclusive classes 0..C-1 (+ optional ignore value); softmax over C channels."""

    primary = "miou"
    multiclass = True

    def __init__(self, classes: list[str], ignore_index: int | None = None):
        self.classes, self.outputs, self.ignore_index = list(classes), len(classes), ignore_index

    def target(
        self,
        mask: torch.Tensor,
        valid: torch.Tensor,
        soft: torch.Tensor | None = None,
        weight: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """-> class-index target (N, H, W) long with ``IGNORE`` on padding/ignore, and pixel weights
        (N, H, W)."""
        keep = valid.bool()
        if self.ignore_index is not None:
            keep &= mask != self.ignore_index
        target = torch.where(keep, mask.long(), torch.full_like(mask, 0, dtype=torch.long) + IGNORE)
        pixel_weight = keep.float()
        if weight is not None:
            pixel_weight = pixel_weight * weight.float().view(-1, 1, 1)
        return target, pixel_weight

    def probs(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits.float(), dim=1)

    def scores(self, probs: np.ndarray, mask: np.ndarray) -> dict:
        acc = self.accumulator()
        acc.add(probs, mask)
        return acc.result(acc.state, self.classes)

    def accumulator(self) -> ConfusionCE:
        return ConfusionCE(self)


def make_task(classes: list[str], ignore_index: int | None, threshold: float = 0.5):
    """Binary for two classes (one sigmoid channel), multi-class softmax otherwise."""
    if len(classes) == 2:
        return BinaryTask(ignore_index, threshold)
    return MulticlassTask(classes, ignore_index)
