"""``READERS``: dataset layout name -> reader class."""

from __future__ import annotations

from pipeline.data.base import Dataset, check_unique_ids
from pipeline.data.carvana import CarvanaDataset
from pipeline.data.cityscapes import CityscapesDataset
from pipeline.data.comma10k import Comma10kDataset
from pipeline.data.folder import FolderDataset
from pipeline.errors import PipelineError

READERS: dict[str, type[Dataset]] = {
    "carvana": CarvanaDataset,
    "folder": FolderDataset,
    "comma10k": Comma10kDataset,
    "cityscapes": CityscapesDataset,
}


def open_dataset(cfg) -> Dataset:
    """Build the reader for ``cfg.layout`` (a dataset config section); every reader's ids are unique
    within its labelled and within its test images
    (two files of one id are an error naming both)."""
    try:
        reader = READERS[cfg.layout]
    except KeyError:
        raise PipelineError(
            f"dataset.layout '{cfg.layout}' is unknown; choose one of {sorted(READERS)}"
        ) from None
    dataset = reader(cfg)
    for samples in (dataset.train, dataset.test):
        check_unique_ids((s.image_id, s.image_path) for s in samples)
    return dataset
