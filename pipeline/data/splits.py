"""Leak-free K-fold assignment.

All images of one group (a car's 16 views, a drive's frames) land in the same fold; folds are
stratified by the group's binned mean mask area (scikit-learn's StratifiedGroupKFold). The result
depends only on the inputs and the seed: rows are sorted by ``image_id`` before splitting.

Fold values: ``0..K-1`` validate in that fold and train in the others; ``-1`` rows train in
every fold and never validate (fixed-holdout training rows, pseudo-labels).
"""

from __future__ import annotations

import fnmatch
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from pipeline.errors import PipelineError

TRAIN_ONLY = -1


@dataclass(frozen=True)
class FoldRow:
    image_id: str
    group: str
    fold: int
    area: float
    area_bin: int


def area_bins(group_area: np.ndarray, n_bins: int) -> np.ndarray:
    """Quantile bin (0..n_bins-1) of each group's mean mask area; ties share a bin."""
    if n_bins <= 1 or len(group_area) == 0:
        return np.zeros(len(group_area), dtype=np.int64)
    edges = np.quantile(group_area, np.linspace(0, 1, n_bins + 1)[1:-1])
    return np.searchsorted(edges, group_area, side="right").astype(np.int64)


def kfold_assign(
    image_ids: list[str], groups: list[str], areas: list[float], k: int, seed: int, n_bins: int = 4
) -> list[FoldRow]:
    """Assign each image a fold in ``0..k-1``; groups never span folds.

    Args:
        image_ids: unique ids. groups: group of each image. areas: mask area fraction in [0, 1].
        k: number of folds (at most the number of groups). seed: shuffling seed.
        n_bins: area strata, reduced so each stratum can hold about one group per fold.
    """
    order = np.argsort(np.asarray(image_ids, dtype=object), kind="stable")
    ids = [image_ids[i] for i in order]
    grp = np.asarray([groups[i] for i in order], dtype=object)
    area = np.asarray([areas[i] for i in order], dtype=np.float64)
    if len(set(ids)) != len(ids):
        raise PipelineError("folds: image ids are not unique; every image needs its own id")
    uniq, inverse = np.unique(grp.astype(str), return_inverse=True)
    if len(uniq) < k:
        raise PipelineError(
            f"folds: k={k} but only {len(uniq)} groups exist; set folds.k <= {len(uniq)}"
        )
    group_area = np.bincount(inverse, weights=area) / np.bincount(inverse)
    bins_used = max(1, min(n_bins, len(uniq) // k))
    y = area_bins(group_area, bins_used)[inverse]
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    fold = np.full(len(ids), -1, dtype=np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "least populated class" with few groups
        for f, (_, val) in enumerate(splitter.split(np.zeros(len(ids)), y, inverse)):
            fold[val] = f
    return [
        FoldRow(ids[i], str(grp[i]), int(fold[i]), float(area[i]), int(y[i]))
        for i in range(len(ids))
    ]


def holdout_assign(
    image_ids: list[str], file_names: list[str], groups: list[str], areas: list[float], pattern: str
) -> list[FoldRow]:
    """Fixed holdout: names matching ``pattern`` (fnmatch) are fold 0, the rest train-only (-1).

    comma10k's convention is ``*9.png``. A group must not straddle the split (that would leak).
    """
    rows = []
    for image_id, name, group, area in sorted(
        zip(image_ids, file_names, groups, areas, strict=True)
    ):
        rows.append(
            FoldRow(image_id, group, 0 if fnmatch.fnmatch(name, pattern) else TRAIN_ONLY, area, 0)
        )
    if not any(r.fold == 0 for r in rows):
        raise PipelineError(
            f"folds.holdout_pattern {pattern!r} matches no image name; fix the pattern"
        )
    if all(r.fold == 0 for r in rows):
        raise PipelineError(
            f"folds.holdout_pattern {pattern!r} matches every image; nothing is left to train"
        )
    split = {}
    for r in rows:
        if split.setdefault(r.group, r.fold) != r.fold:
            raise PipelineError(
                f"folds: group '{r.group}' has images on both sides of holdout_pattern "
                f"{pattern!r}; that leaks — change the pattern or the group rule"
            )
    return rows


def fold_ids(rows: list[FoldRow]) -> list[int]:
    """The validation folds present (non-negative fold values), sorted."""
    return sorted({r.fold for r in rows if r.fold >= 0})


FOLD_COLUMNS = ("image_id", "group", "fold", "area", "area_bin")


def rows_to_csv(rows: list[FoldRow]) -> str:
    """The folds table as CSV text (fixed float format, ``\\n`` endings: byte-identical reruns)."""
    lines = [",".join(FOLD_COLUMNS)]
    for r in rows:
        lines.append(f"{r.image_id},{r.group},{r.fold},{r.area:.6f},{r.area_bin}")
    return "\n".join(lines) + "\n"


def rows_from_csv(text: str, source: str) -> list[FoldRow]:
    """Parse a folds table written by :func:`rows_to_csv` (or by the pseudo stage)."""
    lines = text.splitlines()
    if not lines or tuple(lines[0].split(",")) != FOLD_COLUMNS:
        raise PipelineError(
            f"{source}: header must be {','.join(FOLD_COLUMNS)}; regenerate with 'pipeline folds'"
        )
    rows = []
    for n, line in enumerate(lines[1:], start=2):
        parts = line.split(",")
        try:
            rows.append(FoldRow(parts[0], parts[1], int(parts[2]), float(parts[3]), int(parts[4])))
        except (IndexError, ValueError):
            raise PipelineError(f"{source} line {n}: malformed row {line!r}") from None
    return rows


def load_folds(path: Path) -> list[FoldRow]:
    """Read the folds table at ``path`` (a dataset's ``Layout.folds_csv``); a missing table says how
    to make it."""
    if not path.is_file():
        raise PipelineError(f"{path}: folds table not found; run 'pipeline folds CONFIG' first")
    return rows_from_csv(path.read_text(encoding="utf-8"), str(path))


def select_folds(available: list[int], fold: str) -> list[int]:
    if fold == "all":
        return available
    try:
        wanted = int(fold)
    except ValueError:
        raise PipelineError(f"--fold {fold!r}: give a fold number, 'all' or 'full'") from None
    if wanted not in available:
        raise PipelineError(f"--fold {wanted}: the folds table has folds {available}")
    return [wanted]
