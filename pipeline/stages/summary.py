"""Stage: one table of what the artifacts say about runs and an ensemble (read-only)."""
from __future__ import annotations

from pathlib import Path

from pipeline.fsio import read_json
from pipeline.paths import Layout


def _json(path: Path) -> dict:
    return read_json(path, optional=True)


def run_summary(layout: Layout, run: str) -> dict:
    """Fold Dice (training), OOF Dice with/without TTA, tuned threshold and OOF Dice of one run."""
    folds = {}
    for fold_dir in sorted(layout.run_dir(run).glob("fold*")):
        info = _json(fold_dir / "summary.json")
        if info:
            folds[info["fold"]] = info.get("best_score") or info["best_dice"]
    report, tuned = _json(layout.run_dir(run) / "predict_report.json"), _json(layout.run_dir(run) / "thresholds.json")
    oof = report.get("oof", {})
    return {"run": run, "fold_dice": folds, "oof_dice_plain": oof.get("score_plain"), "oof_dice_tta": oof.get("score"),
            "threshold": tuned.get("threshold"), "oof_dice_tuned": tuned.get("oof_dice_final")}


def ensemble_summary(layout: Layout, name: str) -> dict:
    tuned = _json(layout.ensemble_dir(name) / "thresholds.json")
    return {"ensemble": name, "threshold": tuned.get("threshold"), "min_area": tuned.get("min_area"),
            "cleanup": tuned.get("cleanup"), "oof_dice": tuned.get("oof_dice_final")}
