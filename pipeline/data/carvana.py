"""Kaggle Carvana layout reader.

``train/<car>_<NN>.jpg`` with masks ``train_masks/<car>_<NN>_mask.gif`` or, if that folder is
absent, ``train_masks.csv`` (``img,rle_mask``, row-major 1-based RLE); ``test/*.jpg`` with an
optional ``sample_submission.csv`` that must list exactly the test images. Group = car id.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

from pipeline.config.schema import CarvanaData
from pipeline.data.base import Dataset, Sample
from pipeline.errors import PipelineError
from pipeline.ops.rle import rle_decode_numpy

_VIEW = re.compile(r"^(?P<car>.+)_(?P<view>\d+)$")


def _group(path: Path) -> str:
    match = _VIEW.match(path.stem)
    if not match:
        raise PipelineError(
            f"{path}: name is not '<car>_<NN>.jpg', so its car id (group) is unknown; rename it"
        )
    return match.group("car")


def _mismatch(what: str, names: list[str], fix: str) -> PipelineError:
    more = f" (+{len(names) - 1} more)" if len(names) > 1 else ""
    return PipelineError(f"{names[0]}: {what}{more}; {fix}")


def read_csv_column(path: Path, key: str, value: str | None = None) -> dict[str, str]:
    """Rows of a two-column CSV as ``{row[key]: row[value]}`` (value None: empty string).

    A UTF-8 byte-order mark (Excel's default) is read, not kept as part of the first column name.
    """
    if not path.is_file():
        raise PipelineError(f"{path}: CSV file not found; check the path")
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            missing = {key, value} - set(reader.fieldnames or []) - {None}
            if missing:
                raise PipelineError(
                    f"{path}: header must contain {sorted(missing)}, found {reader.fieldnames}"
                )
            return {row[key]: (row[value] or "") if value else "" for row in reader}
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise PipelineError(f"{path}: cannot read CSV ({err}); save it as a UTF-8 CSV") from None


class CarvanaDataset(Dataset):
    """Reads a Carvana-layout folder; never drops a file silently."""

    binary_masks = True  # GIF masks: read through their palette, whatever its index order

    def __init__(self, cfg: CarvanaData):
        super().__init__(cfg.name, Path(cfg.root), cfg.classes, None)
        if len(cfg.classes) != 2:
            raise PipelineError(
                f"dataset '{cfg.name}': the carvana layout is binary; give 2 classes"
            )
        self.rles: dict[str, str] = {}
        self.train = self._scan_train()
        self.test = self._scan_test()

    def _scan_train(self) -> list[Sample]:
        train_dir, mask_dir = self.root / "train", self.root / "train_masks"
        csv_path = self.root / "train_masks.csv"
        if not train_dir.is_dir():
            raise PipelineError(
                f"{train_dir}: folder not found; a carvana dataset needs train/<car>_<NN>.jpg"
            )
        images = sorted(train_dir.glob("*.jpg"))
        if mask_dir.is_dir():
            return self._pair_gif_masks(images, mask_dir)
        if csv_path.is_file():
            return self._pair_rle_masks(images, csv_path)
        raise PipelineError(
            f"{self.root}: neither train_masks/ nor train_masks.csv found; add one of them"
        )

    def _pair_gif_masks(self, images: list[Path], mask_dir: Path) -> list[Sample]:
        expected = {img.stem + "_mask.gif": img for img in images}
        masks = {p.name for p in mask_dir.iterdir() if not p.name.startswith(".")}
        orphan_images = sorted(str(img) for name, img in expected.items() if name not in masks)
        if orphan_images:
            raise _mismatch(
                "image without mask", orphan_images, f"add its <id>_mask.gif to {mask_dir}"
            )
        orphan_masks = sorted(str(mask_dir / m) for m in masks - set(expected))
        if orphan_masks:
            raise _mismatch(
                "mask without image", orphan_masks, "add the image to train/ or remove the mask"
            )
        return [
            Sample(img.stem, img, _group(img), mask_dir / name) for name, img in expected.items()
        ]

    def _pair_rle_masks(self, images: list[Path], csv_path: Path) -> list[Sample]:
        rles = {Path(k).stem: v for k, v in read_csv_column(csv_path, "img", "rle_mask").items()}
        stems = {img.stem for img in images}
        orphan_images = sorted(str(img) for img in images if img.stem not in rles)
        if orphan_images:
            raise _mismatch("image without mask", orphan_images, f"add its row to {csv_path}")
        orphan_rows = sorted(f"{csv_path} row '{k}.jpg'" for k in set(rles) - stems)
        if orphan_rows:
            raise _mismatch(
                "mask without image", orphan_rows, "add the image to train/ or remove the row"
            )
        self.rles = rles
        return [Sample(img.stem, img, _group(img), None) for img in images]

    def _scan_test(self) -> list[Sample]:
        test_dir = self.root / "test"
        images = sorted(test_dir.glob("*.jpg")) if test_dir.is_dir() else []
        sample_csv = self.root / "sample_submission.csv"
        if sample_csv.is_file():
            listed = {Path(k).stem for k in read_csv_column(sample_csv, "img")}
            stems = {img.stem for img in images}
            if listed - stems:
                missing = sorted(f"{test_dir / n}.jpg" for n in listed - stems)
                raise _mismatch(
                    "listed in sample_submission.csv but missing", missing, "add the test image"
                )
            if stems - listed:
                extra = sorted(f"{test_dir / n}.jpg" for n in stems - listed)
                raise _mismatch(
                    "test image not in sample_submission.csv", extra, "add its row or remove it"
                )
        return [Sample(img.stem, img, _group(img), None) for img in images]

    def decode_mask(self, sample: Sample) -> np.ndarray:
        if sample.mask_path is not None or sample.image_id not in self.rles:
            return super().decode_mask(sample)
        try:
            return rle_decode_numpy(self.rles[sample.image_id], self.image_size(sample), order="C")
        except ValueError as err:
            raise PipelineError(
                f"{self.root / 'train_masks.csv'} row '{sample.image_id}.jpg': {err}"
            ) from None
