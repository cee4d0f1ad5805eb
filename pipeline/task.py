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

    def target(self, mask: torch.Tensor, valid: torch.Tensor, soft: torch.Tensor | None = None,
               weight: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
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


def make_task(num_classes: int, ignore_index: int | None, threshold: float):
    if num_classes == 2:
        return BinaryTask(ignore_index, threshold)
    raise NotImplementedError("multi-class training arrives with the multi-class issue")
