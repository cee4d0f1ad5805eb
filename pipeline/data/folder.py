"""Generic folder reader: ``<root>/<image_dir>/<glob>`` + ``<root>/<mask_dir>/<mask_name>``.

Masks are binary (0/1 or 0/255) or class-index images; the mask file name comes from a template
on the image stem (``{stem}.png``, ``{stem}_mask.gif``, ...), the group from a regex on the stem.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from pipeline.config.schema import FolderData
from pipeline.data import imageio
from pipeline.data.base import Dataset, Sample, check_unique_ids
from pipeline.data.carvana import _mismatch
from pipeline.data.labelmaps import csv_color_map, csv_id_map
from pipeline.data.palette import Palette
from pipeline.errors import PipelineError


class FolderDataset(Dataset):
    """Pairs every image with exactly one mask; an unpaired file on either side is an error."""

    def __init__(self, cfg: FolderData):
        super().__init__(cfg.name, Path(cfg.root), cfg.classes, cfg.ignore_index)
        self.cfg = cfg
        self.id_map = None
        self.palette: Palette | None = None
        self.palette_classes: np.ndarray | None = None
        self.snap = getattr(cfg, "snap_to_palette", False)
        self.binary_masks = cfg.mask_mode == "binary" and not getattr(cfg, "label_map", None)
        self.snapped: dict[
            str, int
        ] = {}  # image id -> pixels mapped to their nearest palette colour
        label_map = getattr(cfg, "label_map", None)
        if cfg.mask_mode == "colour":
            self.palette, self.palette_classes = csv_color_map(
                Path(label_map), self.classes, self.ignore_index
            )
        elif label_map:
            self.id_map = csv_id_map(Path(label_map), self.classes, self.ignore_index)
        try:
            self._group_re = re.compile(cfg.group_pattern) if cfg.group_pattern else None
        except re.error as err:
            raise PipelineError(
                f"dataset.group_pattern {cfg.group_pattern!r} is not a valid regex ({err})"
            ) from None
        self.train = self._scan_train()
        self.test = self._scan_test()

    def decode_mask(self, sample: Sample):
        """Class ids of a mask: colours through the palette, or label ids through the label map."""
        if self.palette is not None:
            rgb = imageio.read_rgb(sample.mask_path)
            ids, snapped = self.palette.decode(rgb, str(sample.mask_path), self.snap)
            if snapped:
                self.snapped[sample.image_id] = snapped
            return self.palette_classes[ids]
        raw = super().decode_mask(sample)
        return self.id_map.apply(raw, str(sample.mask_path)) if self.id_map is not None else raw

    def _group(self, path: Path) -> str:
        if self._group_re is None:
            return path.stem
        match = self._group_re.search(path.stem)
        if not match:
            raise PipelineError(
                f"{path}: dataset.group_pattern {self._group_re.pattern!r} does not match "
                f"'{path.stem}'; fix the pattern or the file name"
            )
        return match.group(1) if match.groups() else match.group(0)

    def _images(self, folder: Path) -> list[Path]:
        if not folder.is_dir():
            raise PipelineError(f"{folder}: folder not found; fix dataset.root/image_dir/test_dir")
        found = folder.glob(self.cfg.image_glob)
        images = sorted(p for p in found if p.is_file() and not p.name.startswith("."))
        check_unique_ids((p.stem, p) for p in images)  # before pairing: a.png + a.jpg share a mask
        return images

    def _scan_train(self) -> list[Sample]:
        image_dir, mask_dir = self.root / self.cfg.image_dir, self.root / self.cfg.mask_dir
        images = self._images(image_dir)
        if not images:
            raise PipelineError(
                f"{image_dir}: no images match '{self.cfg.image_glob}'; fix dataset.image_glob"
            )
        if not mask_dir.is_dir():
            raise PipelineError(f"{mask_dir}: mask folder not found; fix dataset.mask_dir")
        expected = {self.cfg.mask_name.format(stem=img.stem): img for img in images}
        suffix = Path(self.cfg.mask_name).suffix
        masks = {
            p.name for p in mask_dir.iterdir() if p.suffix == suffix and not p.name.startswith(".")
        }
        orphan_images = sorted(str(img) for name, img in expected.items() if name not in masks)
        if orphan_images:
            raise _mismatch("image without mask", orphan_images, f"add its mask to {mask_dir}")
        orphan_masks = sorted(str(mask_dir / m) for m in masks - set(expected))
        if orphan_masks:
            raise _mismatch(
                "mask without image",
                orphan_masks,
                f"add the image to {image_dir} or remove the mask",
            )
        return [
            Sample(img.stem, img, self._group(img), mask_dir / name)
            for name, img in expected.items()
        ]

    def _scan_test(self) -> list[Sample]:
        # A configured test folder that is not there means no test images (as Carvana's test/): the
        # same recipe runs on a labelled-only copy,
        # and predict/ensemble say that nothing was tested.
        if not self.cfg.test_dir or not (self.root / self.cfg.test_dir).is_dir():
            return []
        return [
            Sample(img.stem, img, self._group(img))
            for img in self._images(self.root / self.cfg.test_dir)
        ]
