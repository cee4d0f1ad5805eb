"""Fold-model ensembles with TTA: uint8 images in, probabilities at the original size out."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset

from pipeline.augment import Geometry, restore_size
from pipeline.data import Sample
from pipeline.predict.tta import tta_predict, tta_transforms
from pipeline.train.data import ArrayCache


class PredictSet(TorchDataset):
    """Items: ``image`` uint8 (3, H, W) fitted and padded, ``fitted`` (h, w), ``original`` (h0, w0), ``index``."""

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
        return {"image": torch.from_numpy(np.ascontiguousarray(padded.transpose(2, 0, 1))),
                "fitted": torch.tensor(image.shape[:2]), "original": torch.tensor(original), "index": index}


class Predictor:
    """Mean of ``models`` (fold models of one run) under TTA, in probability space."""

    def __init__(self, models: list[torch.nn.Module], task, tta: str, device: torch.device, max_forward: int = 32):
        self.models = [m.to(device).eval() for m in models]
        self.task, self.device, self.max_forward = task, device, max_forward
        self.transformers = tta_transforms(tta)

    def _probs(self, images: torch.Tensor) -> torch.Tensor:
        total = None
        for model in self.models:
            probs = self.task.probs(model(images))
            total = probs if total is None else total + probs
        return total / len(self.models)

    @torch.no_grad()
    def __call__(self, batch: dict) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per image: (merged, plain) float32 probabilities (C, h0, w0) at the original size."""
        images = batch["image"].to(self.device).float()
        merged, plain = tta_predict(self._probs, images, self.transformers, self.max_forward)
        merged, plain = merged.cpu().numpy(), plain.cpu().numpy()
        out = []
        for j in range(images.shape[0]):
            fitted, original = tuple(batch["fitted"][j].tolist()), tuple(batch["original"][j].tolist())
            out.append((restore_size(merged[j], fitted, original), restore_size(plain[j], fitted, original)))
        return out


def make_geometry(meta: dict) -> Geometry:
    """The geometry a checkpoint was trained with."""
    height, width = meta["resolution"]
    return Geometry(height, width, meta["geometry"])
