"""comma10k reader: ``imgs/*.png`` + colour-coded ``masks/*.png`` through the comma10k palette.

A mask pixel of any other colour is an error naming the file, the colour and its pixel count;
``snap_to_palette: true`` maps such pixels to the nearest class colour and the dataset records
how many it changed per image (``dataset.snapped``). Masks may be RGB or RGBA (alpha ignored).
comma10k's own validation rule, names ending in ``9.png``, is ``folds.holdout_pattern: "*9.png"``.
"""

from __future__ import annotations

import numpy as np

from pipeline.config.schema import Comma10kData, FolderData
from pipeline.data.folder import FolderDataset
from pipeline.data.palette import COMMA10K_COLORS, COMMA10K_PALETTE
from pipeline.errors import PipelineError


class Comma10kDataset(FolderDataset):
    def __init__(self, cfg: Comma10kData):
        if len(cfg.classes) != len(COMMA10K_COLORS):
            raise PipelineError(
                f"dataset '{cfg.name}': comma10k has {len(COMMA10K_COLORS)} colours "
                f"({', '.join(COMMA10K_COLORS)}); give that many class names, or use the folder "
                "layout with a label_map CSV to merge classes"
            )
        folder = FolderData(
            name=cfg.name,
            root=cfg.root,
            image_dir=cfg.image_dir,
            mask_dir=cfg.mask_dir,
            image_glob="*.png",
            mask_name="{stem}.png",
            test_dir=cfg.test_dir,
            group_pattern=cfg.group_pattern,
            mask_mode="index",
            classes=cfg.classes,
            snap_to_palette=cfg.snap_to_palette,
        )
        super().__init__(folder)
        self.palette = COMMA10K_PALETTE
        self.palette_classes = np.arange(len(COMMA10K_COLORS), dtype=np.uint8)
