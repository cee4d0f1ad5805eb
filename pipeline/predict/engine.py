"""Fold-model ensembles with TTA: uint8 images in, probabilities at the original size out."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset

from pipeline.data import Sample
from pipeline.model.augment import Geometry, restore_size
from pipeline.model.precision import resolve_precision
from pipeline.predict.tta import tta_predict, tta_transforms
from pipeline.train.data import ArrayCache


class PredictSet(TorchDataset):
    """Items: ``image`` uint8 (3, H, W) fitted and padded, ``fitted`` (h, w), ``original`` (h0, w0),
    ``index``."""

    def __init__(self, samples: list[Sample], cache: ArrayCache):
        self.samples, self.cache = samples, cache
        self.pad = cache.geometry.pad()

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        sample = self.samples[index]
        image = self.cache.image(sample)
        original = self.cache.dataset.image_size(sample)
        padded = self.pad(image=image)["image"]
        return {
            "image": torch.from_numpy(np.ascontiguousarray(padded.transpose(2, 0, 1))),
            "fitted": torch.tensor(image.shape[:2]),
            "original": torch.tensor(original),
            "index": index,
        }


class Predictor:
    """Mean of ``models`` (fold models of one run) under TTA, in probability space.

    ``max_forward`` caps the images of one forward pass; None: every TTA copy of a batch in one
    pass on CUDA, and ``batch_size`` images per pass on CPU, where larger batches measured slower
    (ResNet34 at 256x384: one pass of 16 took 3.6 s, two of 8 took 3.2-3.5 s).
    """

    def __init__(
        self,
        models: list[torch.nn.Module],
        task,
        tta: str,
        device: torch.device,
        max_forward: int | None = None,
        batch_size: int = 8,
        precision: str = "fp32",
    ):
        # NHWC: EfficientNet's depthwise convolutions run about 2x faster on CPU too
        # (as in training)
        self.models = [m.to(device).eval().to(memory_format=torch.channels_last) for m in models]
        self.task, self.device = task, device
        self.precision = resolve_precision(precision, device, "predict.precision")
        self.transformers = tta_transforms(tta)
        if max_forward is None:
            max_forward = (
                batch_size * len(self.transformers) if device.type == "cuda" else batch_size
            )
        self.max_forward = max_forward

    def _probs(self, images: torch.Tensor) -> torch.Tensor:
        total = None
        for model in self.models:
            with self.precision.autocast():  # the forward pass only; probabilities in fp32
                logits = model(images)
            probs = self.task.probs(logits.float())
            total = probs if total is None else total + probs
        return total / len(self.models)

    @torch.no_grad()
    def __call__(
        self, batch: dict, with_plain: bool = False, restore: bool = True
    ) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """Per image: (merged, plain) float32 probabilities (C, h0, w0) at the original size.

        ``plain`` (the identity copy alone, i.e. no TTA) is restored only when asked for.
        ``restore=False``: ``merged`` stays at the network's resolution with the padding cropped
        (C, h, w) (what the store keeps); ``plain`` is still at the original size.
        """
        images = (
            batch["image"].to(self.device).float().contiguous(memory_format=torch.channels_last)
        )
        merged, plain = tta_predict(self._probs, images, self.transformers, self.max_forward)
        merged, plain = merged.cpu().numpy(), plain.cpu().numpy() if with_plain else None
        out = []
        for j in range(images.shape[0]):
            fitted, original = (
                tuple(batch["fitted"][j].tolist()),
                tuple(batch["original"][j].tolist()),
            )
            kept = restore_size(merged[j], fitted, original if restore else fitted)
            if with_plain:
                same = len(self.transformers) == 1 and restore
                out.append((kept, kept if same else restore_size(plain[j], fitted, original)))
            else:
                out.append((kept, None))
        return out


def make_geometry(meta: dict) -> Geometry:
    """The geometry a checkpoint was trained with."""
    height, width = meta["resolution"]
    return Geometry(height, width, meta["geometry"])
