"""Test-time augmentation with ttach transforms, merged in probability space.

ttach's own wrapper averages whatever the model returns (logits), and its gmean/tsharpen merges
break on negative logits; we apply the activation first and average probabilities. The augmented
copies of a batch run as one forward pass (copies of equal shape are concatenated; d4's 90-degree
rotations of a non-square batch form a second group), chunked to ``max_batch`` images.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import ttach

from pipeline.config import names
from pipeline.errors import PipelineError

TTA: dict[str, Callable[[], ttach.Compose]] = {
    "none": lambda: ttach.Compose([]),
    "hflip": ttach.aliases.hflip_transform,
    "flip": ttach.aliases.flip_transform,
    "d4": ttach.aliases.d4_transform,
}


assert tuple(TTA) == names.TTA_MODES


def tta_transforms(name: str) -> list:
    """The ttach transformers of a TTA mode; the first one is always the identity."""
    if name not in TTA:
        raise PipelineError(f"--tta {name!r} is unknown; choose one of {sorted(TTA)}")
    return list(TTA[name]())


def _chunked(
    fn: Callable[[torch.Tensor], torch.Tensor], batch: torch.Tensor, max_batch: int
) -> torch.Tensor:
    return torch.cat([fn(part) for part in batch.split(max(1, max_batch))])


def tta_predict(
    prob_fn: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    transformers: list,
    max_batch: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Merged and plain (identity-only) probabilities of ``images`` (N, 3, H, W).

    ``prob_fn`` maps images to probabilities (N, C, H, W) with the same H, W.
    """
    n = images.shape[0]
    augmented = [t.augment_image(images) for t in transformers]
    groups: dict[tuple, list[int]] = {}
    for i, aug in enumerate(augmented):
        groups.setdefault(tuple(aug.shape), []).append(i)
    outputs: list[torch.Tensor | None] = [None] * len(transformers)
    for members in groups.values():
        probs = _chunked(prob_fn, torch.cat([augmented[i] for i in members]), max_batch)
        for j, i in enumerate(members):
            outputs[i] = probs[j * n : (j + 1) * n]
    restored = [t.deaugment_mask(out) for t, out in zip(transformers, outputs, strict=True)]
    merged = restored[0] if len(restored) == 1 else torch.stack(restored).mean(0)
    return merged, restored[0]
