"""Stage: ``folds/<dataset>.csv`` from the dataset's labelled images (reads every mask once)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from pipeline.config import Config, dump_config
from pipeline.data import Dataset, Sample, open_dataset
from pipeline.data.splits import FoldRow, holdout_assign, kfold_assign, rows_to_csv
from pipeline.errors import PipelineError
from pipeline.fsio import atomic_write_text
from pipeline.paths import Layout


def mask_area(dataset: Dataset, sample: Sample, background: int) -> float:
    """Fraction of pixels that are neither background nor ignored (validates the mask)."""
    mask = dataset.read_mask(sample)
    counted = mask != background
    if dataset.ignore_index is not None:
        counted &= mask != dataset.ignore_index
    return float(np.count_nonzero(counted)) / mask.size


def compute_folds(cfg: Config, dataset: Dataset, progress=None, workers: int = 2) -> list[FoldRow]:
    """Read every labelled mask (validating it), then assign folds per ``cfg.folds``."""
    samples = dataset.train
    if not samples:
        raise PipelineError(f"dataset '{dataset.name}': no labelled images under {dataset.root}")

    def area(sample: Sample) -> float:
        value = mask_area(dataset, sample, cfg.folds.background)
        if progress:
            progress(1)
        return value

    with ThreadPoolExecutor(max_workers=workers) as pool:
        areas = list(pool.map(area, samples))
    ids = [s.image_id for s in samples]
    groups = [s.group for s in samples]
    if cfg.folds.holdout_pattern:
        names = [s.image_path.name for s in samples]
        return holdout_assign(ids, names, groups, areas, cfg.folds.holdout_pattern)
    return kfold_assign(ids, groups, areas, cfg.folds.k, cfg.folds.seed, cfg.folds.area_bins)


def run_folds(
    cfg: Config, layout: Layout, progress=None, dataset: Dataset | None = None
) -> tuple[Path, list[FoldRow]]:
    """Write ``folds/<dataset>.csv`` and the resolved config beside it."""
    dataset = dataset or open_dataset(cfg.dataset)
    rows = compute_folds(cfg, dataset, progress)
    path = layout.folds_csv(cfg.dataset.name)
    atomic_write_text(path, rows_to_csv(rows))
    atomic_write_text(layout.folds_config(cfg.dataset.name), dump_config(cfg))
    return path, rows
