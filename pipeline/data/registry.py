"""``READERS``: dataset layout name -> reader class."""
from __future__ import annotations

from pipeline.data.base import Dataset
from pipeline.data.carvana import CarvanaDataset
from pipeline.data.cityscapes import CityscapesDataset
from pipeline.data.comma10k import Comma10kDataset
from pipeline.data.folder import FolderDataset
from pipeline.errors import PipelineError

READERS: dict[str, type[Dataset]] = {"carvana": CarvanaDataset, "folder": FolderDataset,
                                     "comma10k": Comma10kDataset, "cityscapes": CityscapesDataset}


def open_dataset(cfg) -> Dataset:
    """Build the reader for ``cfg.layout`` (a dataset config section)."""
    try:
        reader = READERS[cfg.layout]
    except KeyError:
        raise PipelineError(f"dataset.layout '{cfg.layout}' is unknown; choose one of {sorted(READERS)}") from None
    return reader(cfg)
