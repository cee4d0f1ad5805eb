"""What differs between binary and multi-class segmentation: targets, probabilities, metrics.

``BinaryTask``: one sigmoid channel; metric = per-image Dice at a threshold (empty vs empty = 1).
"""
from __future__ import annotations

import numpy as np
import torch

from pipeline.ops.metrics import dice_score


class BinaryTask:
    """Mask values {0, 1} (+ optional ignore value); one output channel."""

    outputs = 1
    primary = "dice"

    def __init__(self, ignore_index: int | None = None, threshold: float = 0.5):
        self.ignore_index, self.threshold = ignore_index, threshold

    def target(self, mask: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``mask``/``valid`` (N, H, W) uint8 -> float target and valid weights, both (N, 1, H, W)."""
        keep = valid.bool()
        if self.ignore_index is not None:
            keep &= mask != self.ignore_index
        return (mask == 1).float().unsqueeze(1), keep.float().unsqueeze(1)

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


def make_task(num_classes: int, ignore_index: int | None, threshold: float):
    if num_classes == 2:
        return BinaryTask(ignore_index, threshold)
    raise NotImplementedError("multi-class training arrives with the multi-class issue")
