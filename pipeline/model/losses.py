"""Loss registries: ``LOSSES`` (binary) and ``MULTICLASS_LOSSES``.

Binary losses take ``logits`` (N, 1, H, W), ``target`` (N, 1, H, W) float in [0, 1] and optional
pixel weights ``valid`` (N, 1, H, W) that zero padding out. Multi-class losses take ``logits``
(N, C, H, W), ``target`` (N, H, W) long with ``IGNORE`` (-100) on padding and void pixels, and
optional pixel weights (N, H, W).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from segmentation_models_pytorch.losses import DiceLoss, FocalLoss, LovaszLoss

from pipeline.config import names
from pipeline.errors import PipelineError


def border_weights(target: torch.Tensor, kernel: int = 41, factor: float = 2.0) -> torch.Tensor:
    """Weight map that is ``1 + factor`` near mask boundaries, 1 elsewhere,
    rescaled to keep the sum.

    As in the 1st-place Carvana solution: average-pool the target with a ``kernel`` window; pixels
    whose local mean lies strictly between 0.01 and 0.99 are near a boundary.
    """
    if kernel % 2 == 0:
        raise ValueError("border kernel must be odd")
    local = F.avg_pool2d(
        target, kernel_size=kernel, stride=1, padding=kernel // 2, count_include_pad=False
    )
    near = ((local > 0.01) & (local < 0.99)).float()
    weights = 1.0 + factor * near
    return weights * (weights[0].numel() / weights.flatten(1).sum(1)).view(
        -1, *[1] * (weights.dim() - 1)
    )


def _valid(valid: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    return torch.ones_like(like) if valid is None else valid.expand_as(like).to(like.dtype)


def bce(logits, target, valid=None, weights=None):
    w = _valid(valid, logits) * (1.0 if weights is None else weights)
    loss = F.binary_cross_entropy_with_logits(logits, target, weight=w, reduction="sum")
    return loss / w.sum().clamp_min(1.0)


def soft_dice(logits, target, valid=None, weights=None, eps: float = 1.0):
    """Batch soft Dice in [0, 1] over all pixels
    (weighted by ``weights``² as in the Carvana solution)."""
    w = _valid(valid, logits) * (1.0 if weights is None else weights**2)
    probs = torch.sigmoid(logits)
    inter = (w * probs * target).sum()
    return (2 * inter + eps) / ((w * probs).sum() + (w * target).sum() + eps)


def dice_loss(logits, target, valid=None, weights=None):
    return 1.0 - soft_dice(logits, target, valid, weights)


def bce_dice(logits, target, valid=None, weights=None):
    return bce(logits, target, valid, weights) + dice_loss(logits, target, valid, weights)


def bce_logdice(logits, target, valid=None, weights=None):
    """``bce - log(dice)`` (the Carvana seed's favourite)."""
    return bce(logits, target, valid, weights) - torch.log(
        soft_dice(logits, target, valid, weights)
    )


def lovasz(logits, target, valid=None, weights=None):
    """Lovász hinge (smp); padding pixels are excluded by giving them the ignore label."""
    labels = target.clone()
    if valid is not None:
        labels = torch.where(valid.expand_as(labels) > 0, labels, torch.full_like(labels, -1))
    return LovaszLoss(mode="binary", per_image=False, ignore_index=-1)(logits, labels)


LOSSES: dict[str, Callable] = {
    "bce": bce,
    "dice": dice_loss,
    "bce_dice": bce_dice,
    "bce_logdice": bce_logdice,
    "border_bce_dice": bce_dice,  # with border weights (see make_loss)
    "lovasz": lovasz,
}


IGNORE = -100  # multi-class targets mark padding/void pixels with torch's ignore_index


def ce(logits, target, valid=None):
    """Pixel-weighted cross-entropy; ``target`` (N, H, W) long with IGNORE pixels left out."""
    loss = F.cross_entropy(logits, target, ignore_index=IGNORE, reduction="none")
    w = (target != IGNORE).float() if valid is None else valid * (target != IGNORE).float()
    return (loss * w).sum() / w.sum().clamp_min(1.0)


_MC_DICE = DiceLoss("multiclass", from_logits=True, ignore_index=IGNORE)
_MC_FOCAL = FocalLoss("multiclass", ignore_index=IGNORE)


def mc_dice(logits, target, valid=None):
    return _MC_DICE(logits, target)


def focal(logits, target, valid=None):
    return _MC_FOCAL(logits, target)


def ce_dice(logits, target, valid=None):
    return ce(logits, target, valid) + mc_dice(logits, target, valid)


MULTICLASS_LOSSES: dict[str, Callable] = {
    "ce": ce,
    "dice": mc_dice,
    "focal": focal,
    "ce_dice": ce_dice,
}
assert tuple(LOSSES) == names.BINARY_LOSSES and tuple(MULTICLASS_LOSSES) == names.MULTICLASS_LOSSES


def class_balance_weights(pixels: np.ndarray, image_pixels: np.ndarray, power: float) -> np.ndarray:
    """Per-class loss weights by median frequency balancing (SegNet, Eigen & Fergus), softened:
    ``w_c = (median_f / f_c) ** power`` with ``f_c`` = pixels of class c / pixels of the images
    where c appears. ``power`` 0 gives all ones, 1 the classic weights (CamVid: about 0.15 for
    road to 10 for pole); a class absent from the training images gets weight 1."""
    pixels, image_pixels = np.asarray(pixels, float), np.asarray(image_pixels, float)
    present = (pixels > 0) & (image_pixels > 0)
    weights = np.ones(len(pixels))
    if power == 0 or not present.any():
        return weights
    freq = pixels[present] / image_pixels[present]
    weights[present] = (np.median(freq) / freq) ** power
    return weights


def balanced(loss: Callable, class_weights: torch.Tensor) -> Callable:
    """A multi-class loss whose pixel weights are scaled by the weight of each pixel's class
    (cross-entropy terms become class-weighted; IGNORE pixels keep weight 0)."""

    def weighted(logits, target, valid=None):
        w = class_weights.to(logits.device)[target.clamp_min(0)] * (target != IGNORE)
        return loss(logits, target, w if valid is None else valid * w)

    return weighted


def make_loss(
    name: str,
    border_kernel: int = 41,
    border_factor: float = 2.0,
    multiclass: bool = False,
    class_weights: torch.Tensor | None = None,
) -> Callable:
    """``loss(logits, target, valid=None)`` for a registry name
    (``MULTICLASS_LOSSES`` if ``multiclass``; ``class_weights`` (C,) weight their pixels)."""
    if multiclass:
        if name not in MULTICLASS_LOSSES:
            raise PipelineError(
                f"loss.name '{name}' is not a multi-class loss; choose one of "
                f"{sorted(MULTICLASS_LOSSES)}"
            )
        loss = MULTICLASS_LOSSES[name]
        return loss if class_weights is None else balanced(loss, class_weights)
    if name not in LOSSES:
        raise PipelineError(f"loss.name '{name}' is unknown; choose one of {sorted(LOSSES)}")
    fn = LOSSES[name]
    if name != "border_bce_dice":
        return lambda logits, target, valid=None: fn(logits, target, valid)

    def weighted(logits, target, valid=None):
        return fn(logits, target, valid, border_weights(target, border_kernel, border_factor))

    return weighted
