"""The reader interface: a dataset is a list of labelled and unlabelled samples plus decoders."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from pipeline.data import imageio
from pipeline.errors import PipelineError


@dataclass(frozen=True)
class Sample:
    """One image. ``mask_path`` is None for test images or masks decoded from an RLE table."""

    image_id: str
    image_path: Path
    group: str
    mask_path: Optional[Path] = None


def check_unique_ids(files: Iterable[tuple[str, Path]]) -> None:
    """Refuse two files with one image id (``a.png`` and ``a.jpg`` both become ``a``): one would be
    dropped from the folds, or overwrite the other's prediction. ``files``:
    (image id, path) pairs."""
    seen: dict[str, Path] = {}
    for image_id, path in files:
        other = seen.setdefault(image_id, path)
        if other != path:
            first, second = sorted((str(other), str(path)))
            raise PipelineError(
                f"{first}: same image id '{image_id}' as {second} (an id is the file "
                "name without its extension); rename or remove one of them"
            )


class Dataset:
    """Base reader. Subclasses fill ``train`` (labelled) and ``test`` (unlabelled) sample lists.

    Masks come back as ``(H, W)`` uint8 class ids: {0, 1} for binary datasets, ``0..C-1`` for
    multi-class ones, with ``ignore_index`` (if any) marking pixels excluded from loss and metrics.
    Readers whose mask files are black/white images set ``binary_masks``: those are read by what
    they look like (:func:`imageio.read_binary_mask`), and ``greyed`` counts, per image id, the
    pixels that were neither black nor white.
    """

    binary_masks = False

    def __init__(self, name: str, root: Path, classes: list[str], ignore_index: int | None = None):
        self.name = name
        self.root = Path(root)
        self.classes = list(classes)
        self.ignore_index = ignore_index
        if not self.root.is_dir():
            raise PipelineError(
                f"dataset '{name}': root folder {self.root} not found; fix dataset.root"
            )
        self.train: list[Sample] = []
        self.test: list[Sample] = []
        self.greyed: dict[str, int] = {}

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def binary(self) -> bool:
        return self.num_classes == 2

    def sample(self, image_id: str) -> Sample:
        """The labelled or test sample with this id."""
        index = getattr(self, "_index", None)
        if index is None:
            index = self._index = {s.image_id: s for s in (*self.train, *self.test)}
        try:
            return index[image_id]
        except KeyError:
            raise PipelineError(f"dataset '{self.name}': no image with id '{image_id}'") from None

    def read_image(self, sample: Sample) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB."""
        return imageio.read_rgb(sample.image_path)

    def image_size(self, sample: Sample) -> tuple[int, int]:
        """``(H, W)`` from the image header."""
        return imageio.image_size(sample.image_path)

    def decode_mask(self, sample: Sample) -> np.ndarray:
        """Raw label values of the sample's mask (subclasses may override, e.g. RLE tables)."""
        if sample.mask_path is None:
            raise PipelineError(f"{sample.image_path}: image has no mask (it is a test image)")
        if not (self.binary_masks and self.binary and self.ignore_index is None):
            return imageio.read_label(sample.mask_path)
        mask, greys = imageio.read_binary_mask(sample.mask_path)
        if greys:
            self.greyed[sample.image_id] = greys
        return mask

    def allowed_values(self) -> set[int]:
        allowed = set(range(self.num_classes))
        if self.ignore_index is not None:
            allowed.add(self.ignore_index)
        return allowed

    def read_mask(self, sample: Sample) -> np.ndarray:
        """``(H, W)`` uint8 class ids, validated against the allowed value set and image size."""
        mask = self.to_class_ids(self.decode_mask(sample), sample)
        height, width = self.image_size(sample)
        if mask.shape != (height, width):
            where = sample.mask_path or sample.image_path
            raise PipelineError(
                f"{where}: mask is {mask.shape[1]}x{mask.shape[0]} "
                f"but image {sample.image_path.name} is {width}x{height} (WxH); "
                "masks must match their image size"
            )
        return mask

    def to_class_ids(self, raw: np.ndarray, sample: Sample) -> np.ndarray:
        """Check raw values; binary masks may be stored as {0,1} or {0,255}."""
        values = set(np.unique(raw).tolist())
        if self.binary and self.ignore_index is None and values <= {0, 255} and 255 in values:
            return (raw > 0).astype(np.uint8)
        bad = values - self.allowed_values()
        if bad:
            where = sample.mask_path or sample.image_path
            allowed = "{0,1} or {0,255}" if self.binary else f"0..{self.num_classes - 1}"
            if self.ignore_index is not None:
                allowed += f" or ignore value {self.ignore_index}"
            raise PipelineError(
                f"{where}: mask values {sorted(bad)[:8]} are outside the allowed set {allowed}; "
                "fix the mask or dataset.classes/ignore_index"
            )
        return raw
