"""Datasets for training and validation, backed by an on-disk cache of uint8 arrays.

Each image is decoded and resized once per resolution (``ArrayCache``); epochs then read small
``.npy`` files. Augmentation is seeded per (seed, epoch, index), so an epoch is reproducible no
matter which worker loads which item, and a resumed run replays exactly the same batches.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset

from pipeline.data import Dataset, Sample, imageio
from pipeline.fsio import atomic_open
from pipeline.model.augment import Geometry, build_transform, resize_image, resize_mask

if TYPE_CHECKING:
    from pipeline.config import Config


def _stamp(path: Path | None) -> str:
    if path is None:
        return "-"
    st = path.stat()
    return f"{path}:{st.st_size}:{st.st_mtime_ns}"


class ArrayCache:
    """Fitted (resized, unpadded) image + mask per sample;
    ``folder=None`` disables the disk cache."""

    def __init__(self, dataset: Dataset, geometry: Geometry, folder: Path | None):
        self.dataset, self.geometry, self.folder = dataset, geometry, folder

    def _key(self, sample: Sample, what: str) -> str:
        text = f"{_stamp(sample.image_path)}|{_stamp(sample.mask_path)}|{self.geometry}|{what}"
        return hashlib.sha1(text.encode()).hexdigest()[:16]

    def _cached(self, sample: Sample, what: str, make) -> np.ndarray:
        if self.folder is None:
            return make()
        path = self.folder / f"{sample.image_id}.{what}.{self._key(sample, what)}.npy"
        if path.is_file():
            return np.load(path)
        array = make()
        with atomic_open(path, "wb") as fh:
            np.save(fh, array)
        return array

    def fitted_size(self, sample: Sample) -> tuple[int, int]:
        return self.geometry.fitted(*self.dataset.image_size(sample))

    def image(self, sample: Sample) -> np.ndarray:
        return self._cached(
            sample,
            "img",
            lambda: resize_image(self.dataset.read_image(sample), self.fitted_size(sample)),
        )

    def mask(self, sample: Sample, soft: bool = False) -> np.ndarray:
        """Fitted mask: class ids (nearest-neighbour resize),
        or 0..255 probabilities if ``soft``."""
        if soft:  # soft pseudo-labels: raw probability PNG, resized linearly
            return self._cached(
                sample,
                "soft",
                lambda: resize_image(
                    imageio.read_label(sample.mask_path), self.fitted_size(sample)
                ),
            )
        return self._cached(
            sample,
            "mask",
            lambda: resize_mask(self.dataset.read_mask(sample), self.fitted_size(sample)),
        )

    def original_mask(self, sample: Sample) -> np.ndarray:
        """The mask at the image's original size (for metrics at original resolution)."""
        return self._cached(sample, "orig", lambda: self.dataset.read_mask(sample))


def item_seed(seed: int, epoch: int, index: int) -> int:
    return (seed * 1_000_003 + epoch * 10_007 + index) % (2**31 - 1)


class SegmentationSet(TorchDataset):
    """Items: ``image`` uint8 (3, H, W), ``mask`` uint8 (H, W), ``valid`` uint8 (H, W), ``index``,
    ``soft`` (mask holds probabilities) and ``weight`` (loss weight of the image). With ``crop``
    (h, w) every item is a random crop of that size of the padded input.

    ``valid`` is 0 on padding; the loss and metrics ignore those pixels. ``soft``/``weights`` name
    pseudo-labelled images by id.
    """

    def __init__(
        self,
        samples: list[Sample],
        cache: ArrayCache,
        preset: str,
        seed: int,
        soft: set[str] | None = None,
        weights: dict[str, float] | None = None,
        crop: tuple[int, int] | None = None,
    ):
        self.samples, self.cache, self.seed, self.epoch = samples, cache, seed, 0
        self.soft, self.weights = soft or set(), weights or {}
        self.transform = build_transform(preset, cache.geometry, seed, crop)

    def __len__(self) -> int:
        return len(self.samples)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, index: int) -> dict:
        sample = self.samples[index]
        soft = sample.image_id in self.soft
        image, mask = self.cache.image(sample), self.cache.mask(sample, soft)
        valid = np.ones(mask.shape, np.uint8)
        self.transform.set_random_seed(item_seed(self.seed, self.epoch, index))
        out = self.transform(image=image, mask=mask, valid=valid)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(out["image"].transpose(2, 0, 1))),
            "mask": torch.from_numpy(np.ascontiguousarray(out["mask"])),
            "valid": torch.from_numpy(np.ascontiguousarray(out["valid"])),
            "index": index,
            "soft": soft,
            "weight": float(self.weights.get(sample.image_id, 1.0)),
        }


def array_cache(cfg: Config, folder: Path, dataset, geometry: Geometry) -> ArrayCache:
    """The on-disk uint8 cache of fitted images/masks for this geometry
    (none if train.cache is off) in ``folder``, the layout's for this dataset
    and geometry (``Layout.cache_dir``)."""
    return ArrayCache(dataset, geometry, folder if cfg.train.cache else None)
