"""Stage: tune threshold, min area and clean-up on a run's (or an ensemble's) OOF store.

Writes ``thresholds.json`` and ``threshold_curve.png`` beside the store's run/ensemble folder.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pipeline.config import Config, load_config
from pipeline.data import open_dataset
from pipeline.data.splits import load_folds
from pipeline.decide.postprocess import clean
from pipeline.decide.search import Collector, channel_targets, min_area_grid, stability, tune_channel
from pipeline.decide.store import ProbStore
from pipeline.errors import PipelineError
from pipeline.fsio import atomic_write_bytes, atomic_write_text
from pipeline.ops.metrics import dice_score
from pipeline.paths import Layout
from pipeline.review.plots import threshold_curve


def oof_inputs(cfg: Config, layout: Layout, folder: Path):
    """The OOF store (checked against the dataset), the dataset and each id's fold."""
    store = ProbStore.open(folder / "oof")
    dataset = open_dataset(cfg.dataset)
    by_id = {s.image_id: s for s in dataset.train}
    fold_of = {r.image_id: r.fold for r in load_folds(cfg, layout) if r.fold >= 0}
    missing = [i for i in fold_of if i not in by_id]
    if missing:
        raise PipelineError(f"folds table lists '{missing[0]}' which the dataset lacks; rerun 'pipeline folds'")
    store.check_against({i: dataset.image_size(by_id[i]) for i in fold_of})
    return store, dataset, by_id, fold_of


# Clean-up changes which threshold is best (a high threshold can be a poor man's clean-up that only
# suppresses one image's false blob), so it is judged jointly with these candidate levels.
CLEANUP_LEVELS = (76, 102, 127, 153, 178)  # thresholds 0.3, 0.4, 0.5, 0.6, 0.7


def cleanup_table(store, dataset, by_id, levels: list[int], min_area: float) -> dict[int, tuple[float, float]]:
    """Per level: mean OOF Dice at (level, min_area) without and with largest-component + hole filling.

    One pass over the store: each image and mask is read once for every level.
    """
    raw, cleaned = {lv: [] for lv in levels}, {lv: [] for lv in levels}
    for image_id in store.ids():
        mask = dataset.read_mask(by_id[image_id]) == 1
        probs = store.read(image_id)[0]
        for lv in levels:
            pred = (probs > lv).astype(np.uint8)
            if pred.sum() < min_area:
                pred[:] = 0
            raw[lv].append(dice_score(pred, mask))
            cleaned[lv].append(dice_score(clean(pred), mask))
    return {lv: (float(np.mean(raw[lv])), float(np.mean(cleaned[lv]))) for lv in levels}


def choose_cleanup(table: dict[int, tuple[float, float]], tuned_level: int) -> tuple[int, bool, float]:
    """The (level, clean-up, OOF Dice) with the best OOF Dice; ties keep the tuned level, then no clean-up."""
    options = [(score, lv == tuned_level, not cleaned, lv, cleaned)
               for lv, pair in table.items() for cleaned, score in ((False, pair[0]), (True, pair[1]))]
    score, _, _, level, cleaned = max(options)
    return level, cleaned, score


def run_tune(layout: Layout, run: str | None = None, ensemble: str | None = None, cleanup: bool = True,
             progress=None) -> dict:
    folder = layout.source_dir(run, ensemble)
    cfg = load_config(folder / "config.yaml")
    store, dataset, by_id, fold_of = oof_inputs(cfg, layout, folder)
    collector = Collector(store.channels)
    for image_id in store.ids():
        target, valid = channel_targets(dataset.read_mask(by_id[image_id]), store.channels, dataset.ignore_index)
        collector.add(store.read(image_id), target, valid, fold_of[image_id])
        if progress:
            progress(1)
    pred, tp, gt, folds = collector.arrays()
    grid = min_area_grid(int(np.median(collector.pixels)))
    names = dataset.classes[1:] if store.channels == 1 else dataset.classes
    results = [tune_channel(names[c], pred[:, c], tp[:, c], gt[:, c], folds, grid) for c in range(store.channels)]
    out = {"source": str(folder), "images": len(folds), "min_area_grid": grid,
           "channels": [{"class": r.name, "threshold": r.threshold, "level": r.level, "min_area": r.min_area,
                         "oof_dice_at_0.5": r.dice_half, "oof_dice_tuned": r.dice_tuned, "per_fold": r.per_fold,
                         **stability(r)} for r in results]}
    if store.channels == 1:
        best = out["channels"][0]
        out.update({k: best[k] for k in ("threshold", "level", "min_area", "oof_dice_at_0.5", "oof_dice_tuned")})
        out["cleanup"], out["oof_dice_final"] = False, best["oof_dice_tuned"]
        if cleanup:
            levels = sorted({best["level"], *CLEANUP_LEVELS})
            table = cleanup_table(store, dataset, by_id, levels, best["min_area"])
            level, cleaned, score = choose_cleanup(table, best["level"])
            out["cleanup_table"] = {str(lv): {"raw": r, "cleanup": c} for lv, (r, c) in table.items()}
            out["oof_dice_cleanup"] = table[level][1]
            out.update({"cleanup": cleaned, "oof_dice_final": score, "level": level, "threshold": level / 255.0})
    atomic_write_text(folder / "thresholds.json", json.dumps(out, indent=2))
    curves = [(r.name, r.curve, r.level, r.min_area) for r in results]
    atomic_write_bytes(folder / "threshold_curve.png", threshold_curve(curves, folder.name))
    return out
