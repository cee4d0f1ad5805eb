"""Threshold (+ min area, + clean-up) tuning on out-of-fold probabilities.

Computation over per-image histograms (``pipeline.ops.threshold``), fed one image at a time, so
memory stays at one image plus (N, C, 256) counters; ``write_search`` records the result beside a
run or an ensemble (``thresholds.json``, ``threshold_curve.png``, ``decision.json``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.data.splits import load_folds
from pipeline.decide.curve import threshold_curve
from pipeline.decide.decision import AnyDecision, Decision, Fixed, write_decision
from pipeline.decide.fingerprint import store_fingerprint
from pipeline.decide.folders import ResultFolder
from pipeline.decide.store import ProbStore
from pipeline.errors import PipelineError
from pipeline.fsio import atomic_write_bytes, atomic_write_text
from pipeline.ops.metrics import dice_score
from pipeline.ops.threshold import (
    LEVELS,
    areas_from_histograms,
    dice_table,
    histograms,
    level_of,
    search,
)

HALF = 127  # p > 0.5  <=>  probs_u8 > 127.5  <=>  probs_u8 > 127


def channel_targets(mask: np.ndarray, channels: int, ignore_index: int | None):
    """(C, H, W) bool targets and (H, W) valid pixels from a class-id mask."""
    valid = np.ones(mask.shape, bool) if ignore_index is None else mask != ignore_index
    if channels == 1:
        return (mask == 1)[None], valid
    return np.stack([mask == c for c in range(channels)]), valid


def min_area_grid(image_pixels: int, steps: int = 24) -> list[float]:
    """0 plus a geometric grid from 16 px to 2% of the image."""
    top = max(32.0, 0.02 * image_pixels)
    return [0.0, *np.unique(np.round(np.geomspace(16, top, steps))).tolist()]


@dataclass
class Collector:
    """Accumulates per-image histograms (and folds) as images stream by."""

    channels: int
    hist_all: list = field(default_factory=list)
    hist_pos: list = field(default_factory=list)
    folds: list = field(default_factory=list)
    pixels: list = field(default_factory=list)

    def add(self, probs_u8: np.ndarray, target: np.ndarray, valid: np.ndarray, fold: int) -> None:
        a, p = histograms(probs_u8, target, valid)
        self.hist_all.append(a)
        self.hist_pos.append(p)
        self.folds.append(fold)
        self.pixels.append(probs_u8[0].size)

    def arrays(self):
        """pred, tp: (N, C, 256); gt: (N, C); folds: (N,)."""
        pred, tp, gt = areas_from_histograms(np.stack(self.hist_all), np.stack(self.hist_pos))
        return pred, tp, gt, np.asarray(self.folds)


@dataclass
class ChannelResult:
    name: str
    level: int
    min_area: float
    dice_half: float
    dice_tuned: float
    curve: list  # mean Dice per level at the chosen min_area
    per_fold: list  # dicts: fold, images, best_threshold, dice_half, dice_tuned
    given: float | None = None  # the threshold, when given in advance (``level`` is its level)

    @property
    def threshold(self) -> float:
        return self.level / 255.0 if self.given is None else self.given


def tune_channel(
    name: str, pred, tp, gt, folds, min_areas, threshold: float | None = None
) -> ChannelResult:
    """Exact search for one channel: pred/tp (N, 256), gt (N,), folds (N,); ``threshold``: given in
    advance (only min area is searched, over ``min_areas``: one value when that is given too)."""
    levels = None if threshold is None else [level_of(threshold)]
    level, area, score, curve = search(pred, tp, gt, min_areas, levels)
    half = float(dice_table(pred, tp, gt, 0)[:, HALF].mean())
    per_fold = []
    for k in sorted(set(folds.tolist())):
        sel = folds == k
        fold_level, _, _, _ = search(pred[sel], tp[sel], gt[sel], [area])
        table = dice_table(pred[sel], tp[sel], gt[sel], area)
        per_fold.append(
            {
                "fold": int(k),
                "images": int(sel.sum()),
                "best_threshold": fold_level / 255.0,
                "dice_half": float(dice_table(pred[sel], tp[sel], gt[sel], 0)[:, HALF].mean()),
                "dice_tuned": float(table[:, level].mean()),
            }
        )
    return ChannelResult(name, level, area, half, score, curve.tolist(), per_fold, threshold)


def stability(result: ChannelResult) -> dict:
    """Spread of the per-fold best thresholds and whether the gain stands out of fold noise."""
    gains = np.array([f["dice_tuned"] - f["dice_half"] for f in result.per_fold])
    spread = float(np.std([f["best_threshold"] for f in result.per_fold]))
    noise = float(np.std([f["dice_half"] for f in result.per_fold]) / np.sqrt(max(len(gains), 1)))
    gain = result.dice_tuned - result.dice_half
    warning = None
    if len(gains) > 1 and gain < noise:
        warning = (
            f"tuned gain {gain:+.5f} is smaller than the fold-to-fold noise ({noise:.5f}, std "
            "of fold Dice / sqrt(K)); the tuned threshold may not beat 0.5 on unseen data"
        )
    return {"threshold_spread": spread, "gain": gain, "fold_noise": noise, "warning": warning}


__all__ = [
    "Collector",
    "ChannelResult",
    "tune_channel",
    "stability",
    "min_area_grid",
    "channel_targets",
    "LEVELS",
]


# Clean-up changes which threshold is best (a high threshold can be a poor man's clean-up that only
# suppresses one image's false blob), so it is judged jointly with these candidate levels.
CLEANUP_LEVELS = (76, 102, 127, 153, 178)  # thresholds 0.3, 0.4, 0.5, 0.6, 0.7


def cleanup_table(
    store, dataset, by_id, levels: list[int], min_area: float
) -> dict[int, tuple[float, float]]:
    """Per level: mean OOF Dice of the decision (level, ``min_area``) without and with clean-up
    (largest component + hole filling), each mask made by ``Decision.mask``, the submission's own
    rule (clean-up first, then min area on what is left). Ignored pixels are left out of the Dice.

    One pass over the store: each image and mask is read once for every level.
    """
    raw, cleaned = {lv: [] for lv in levels}, {lv: [] for lv in levels}
    for image_id in store.ids():
        labels = dataset.read_mask(by_id[image_id])
        target, valid = channel_targets(labels, 1, dataset.ignore_index)
        probs = store.read(image_id)[0]
        for lv in levels:
            for cleanup, scores in ((False, raw), (True, cleaned)):
                mask = Decision(lv / 255.0, min_area, cleanup).mask(probs)
                scores[lv].append(dice_score(mask[valid], target[0][valid]))
    return {lv: (float(np.mean(raw[lv])), float(np.mean(cleaned[lv]))) for lv in levels}


def choose_cleanup(
    table: dict[int, tuple[float, float]], tuned_level: int, cleanup: bool | None = None
) -> tuple[int, bool, float]:
    """The (level, clean-up, OOF Dice) with the best OOF Dice; ties keep the tuned level, then no
    clean-up. ``cleanup``: True/False when given in advance (only those options), None: either."""
    allowed = (False, True) if cleanup is None else (cleanup,)
    options = [
        (score, lv == tuned_level, not cleaned, lv, cleaned)
        for lv, (raw, clean) in table.items()
        for cleaned, score in ((False, raw), (True, clean))
        if cleaned in allowed
    ]
    score, _, _, level, cleaned = max(options)
    return level, cleaned, score


def search_oof(
    store, dataset, fold_of: dict[str, int], fixed: Fixed | None = None, progress=None
) -> tuple[dict, list]:
    """The exact threshold (+ min area, + clean-up for binary stores) search over an OOF store,
    with what ``fixed`` gives held fixed (None: everything searched).

    Returns what ``thresholds.json`` records (per class, per fold, the clean-up table) and the
    curves for ``threshold_curve.png``. ``fold_of`` maps every scored image to its fold. Binary:
    ``oof_dice_final`` is the OOF Dice of the decision the result names (threshold, min area,
    clean-up), the one ``applied_decision`` makes of it.
    """
    fixed = fixed or Fixed()
    by_id = {s.image_id: s for s in dataset.train}
    collector = Collector(store.channels)
    for image_id in store.ids():
        target, valid = channel_targets(
            dataset.read_mask(by_id[image_id]), store.channels, dataset.ignore_index
        )
        collector.add(store.read(image_id), target, valid, fold_of[image_id])
        if progress:
            progress(1)
    pred, tp, gt, folds = collector.arrays()
    grid = min_area_grid(int(np.median(collector.pixels)))
    areas = grid if fixed.min_area is None else [fixed.min_area]
    names = dataset.classes[1:] if store.channels == 1 else dataset.classes
    results = [
        tune_channel(names[c], pred[:, c], tp[:, c], gt[:, c], folds, areas, fixed.threshold)
        for c in range(store.channels)
    ]
    out = {
        "images": len(folds),
        "min_area_grid": grid,
        "fixed": {k: getattr(fixed, k) for k in ("threshold", "min_area", "cleanup")},
        "channels": [
            {
                "class": r.name,
                "threshold": r.threshold,
                "level": r.level,
                "min_area": r.min_area,
                "oof_dice_at_0.5": r.dice_half,
                "oof_dice_tuned": r.dice_tuned,
                "per_fold": r.per_fold,
                **stability(r),
            }
            for r in results
        ],
    }
    if store.channels == 1:
        out.update(_binary_decision(out["channels"][0], store, dataset, by_id, fixed))
    return out, [(r.name, r.curve, r.level, r.min_area) for r in results]


def _binary_decision(best: dict, store, dataset, by_id, fixed: Fixed) -> dict:
    """Threshold, min area and clean-up of a binary store, clean-up judged jointly with the
    threshold (unless either is given), and the OOF Dice of exactly that decision."""
    keys = ("threshold", "level", "min_area", "oof_dice_at_0.5", "oof_dice_tuned")
    out = {k: best[k] for k in keys}
    out["cleanup"], out["oof_dice_final"] = False, best["oof_dice_tuned"]
    if fixed.cleanup is False:
        return out
    levels = sorted({best["level"], *CLEANUP_LEVELS})
    if fixed.threshold is not None:
        levels = [best["level"]]
    table = cleanup_table(store, dataset, by_id, levels, best["min_area"])
    level, cleaned, score = choose_cleanup(table, best["level"], fixed.cleanup)
    out["cleanup_table"] = {str(lv): {"raw": r, "cleanup": c} for lv, (r, c) in table.items()}
    out["oof_dice_cleanup"] = table[level][1]
    threshold = level / 255.0 if fixed.threshold is None else fixed.threshold
    out.update(cleanup=cleaned, oof_dice_final=score, level=level, threshold=threshold)
    return out


def oof_folds(folds_csv: Path, store: ProbStore, dataset) -> dict[str, int]:
    """Each labelled image's fold (the folds table of ``cfg``),
    with the store checked against the dataset."""
    by_id = {s.image_id: s for s in dataset.train}
    fold_of = {r.image_id: r.fold for r in load_folds(folds_csv) if r.fold >= 0}
    missing = [i for i in fold_of if i not in by_id]
    if missing:
        raise PipelineError(
            f"folds table lists '{missing[0]}' which the dataset lacks; rerun 'pipeline folds'"
        )
    store.check_against({i: dataset.image_size(by_id[i]) for i in fold_of})
    return fold_of


def write_search(
    folder: ResultFolder,
    out: dict,
    curves: list,
    decision: AnyDecision,
    store: ProbStore,
    made_by: str = "tune",
    inputs: dict | None = None,
    **extra,
) -> dict:
    """``thresholds.json`` (the whole search), ``threshold_curve.png`` and ``decision.json`` of a
    folder; returns ``out`` with ``source`` and the three paths."""
    out = {"source": str(folder.path), **out}
    atomic_write_text(folder.thresholds(), json.dumps(out, indent=2))
    atomic_write_bytes(folder.threshold_curve(), threshold_curve(curves, folder.name))
    write_decision(
        folder, decision, made_by, {"oof": store_fingerprint(store), **(inputs or {})}, **extra
    )
    return {
        **out,
        "thresholds": str(folder.thresholds()),
        "decision": str(folder.decision()),
        "curve": str(folder.threshold_curve()),
    }
