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


def fold_scores(layout: Layout, run: str) -> tuple[dict[int, float], str]:
    """Per-fold OOF Dice: from predict_report.json (TTA) when present, else training's best val Dice."""
    report = _json(layout.run_dir(run) / "predict_report.json")
    if report.get("folds"):
        return {int(k): v["score"] for k, v in report["folds"].items()}, "predict reports"
    folds = run_summary(layout, run)["fold_dice"]
    return {int(k): v for k, v in folds.items()}, "training summaries"


def compare_runs(layout: Layout, baseline: str, candidate: str) -> dict:
    import numpy as np

    from pipeline.errors import PipelineError

    base, source_a = fold_scores(layout, baseline)
    cand, source_b = fold_scores(layout, candidate)
    common = sorted(set(base) & set(cand))
    if not common:
        raise PipelineError(f"runs '{baseline}' and '{candidate}' share no scored fold; train/predict both first")
    diffs = [cand[k] - base[k] for k in common]
    return {"folds": [{"fold": k, "baseline": base[k], "candidate": cand[k], "difference": d}
                      for k, d in zip(common, diffs, strict=True)],
            "mean": float(np.mean(diffs)), "std": float(np.std(diffs)), "better": int(sum(d > 0 for d in diffs)),
            "source": source_a if source_a == source_b else f"{source_a} / {source_b}"}
