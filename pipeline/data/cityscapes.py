"""Cityscapes reader: ``leftImg8bit/<split>/<city>/<id>_leftImg8bit.png`` with
``gtFine/<split>/<city>/<id>_gtFine_labelIds.png``; label ids mapped to the 19 trainIds (ignore
255), the 8 categories, or through a CSV label map. Group = city + sequence (``aachen_000000``).
"""

from __future__ import annotations

from pathlib import Path

from pipeline.config.schema import CityscapesData
from pipeline.data.base import Dataset, Sample
from pipeline.data.labelmaps import cityscapes_map, csv_id_map
from pipeline.errors import PipelineError

_IMAGE_SUFFIX = "_leftImg8bit.png"
_LABEL_SUFFIX = "_gtFine_labelIds.png"


class CityscapesDataset(Dataset):
    def __init__(self, cfg: CityscapesData):
        if cfg.label_map in ("trainids", "categories"):
            id_map = cityscapes_map(cfg.label_map)
        else:
            if not cfg.classes:
                raise PipelineError(f"dataset '{cfg.name}': a CSV label_map needs dataset.classes")
            id_map = csv_id_map(Path(cfg.label_map), cfg.classes, cfg.ignore_index)
        super().__init__(cfg.name, Path(cfg.root), id_map.classes, id_map.ignore_index)
        self.id_map = id_map
        self.train = [s for split in cfg.train_splits for s in self._scan(split, labelled=True)]
        self.test = self._scan(cfg.test_split, labelled=False) if cfg.test_split else []

    def _scan(self, split: str, labelled: bool) -> list[Sample]:
        folder = self.root / "leftImg8bit" / split
        if not folder.is_dir():
            if labelled:
                raise PipelineError(
                    f"{folder}: split folder not found; fix dataset.train_splits or dataset.root"
                )
            return []
        samples = []
        for image in sorted(folder.glob(f"*/*{_IMAGE_SUFFIX}")):
            image_id = image.name[: -len(_IMAGE_SUFFIX)]
            parts = image_id.split("_")
            if len(parts) < 3:
                raise PipelineError(f"{image}: expected <city>_<seq>_<frame>{_IMAGE_SUFFIX}")
            mask = self.root / "gtFine" / split / image.parent.name / f"{image_id}{_LABEL_SUFFIX}"
            if labelled and not mask.is_file():
                raise PipelineError(f"{image}: image without mask (expected {mask})")
            samples.append(
                Sample(image_id, image, f"{parts[0]}_{parts[1]}", mask if labelled else None)
            )
        if labelled:
            labels = {
                p.name[: -len(_LABEL_SUFFIX)]
                for p in (self.root / "gtFine" / split).glob(f"*/*{_LABEL_SUFFIX}")
            }
            orphans = sorted(labels - {s.image_id for s in samples})
            if orphans:
                raise PipelineError(
                    f"gtFine/{split}: mask without image '{orphans[0]}{_LABEL_SUFFIX}' "
                    f"(+{len(orphans) - 1} more); add the image or remove the mask"
                )
        return samples

    def decode_mask(self, sample: Sample):
        return self.id_map.apply(super().decode_mask(sample), str(sample.mask_path))
