"""Stage: one table of what the artifacts say about runs and an ensemble (read-only)."""

from __future__ import annotations

from pipeline.fsio import read_json
from pipeline.paths import Layout
from pipeline.review.results import averaging_scores, decision_fields, training_scores


def run_summary(layout: Layout, run: str) -> dict:
    """Fold scores (training), OOF score with/without TTA,
    the decision and its OOF score of one run.

    ``metric`` names what the scores hold: ``dice`` (binary; OOF at ``train.threshold``, then under
    the tuned decision) or ``miou`` (multi-class, argmax). Multi-class runs add ``per_class_iou``
    ({class: OOF IoU}, TTA) and ``oof_ce`` (mean categorical cross-entropy over valid OOF pixels,
    comma10k's metric).
    """
    folder = layout.run(run)
    report = read_json(folder.predict_report(), optional=True)
    oof = report.get("oof", {})
    decided = decision_fields(folder)
    return {
        "run": run,
        "fold_scores": training_scores(folder),
        "fold_averages": averaging_scores(folder),
        "metric": oof.get("metric", "dice"),
        "oof_score_plain": oof.get("score_plain"),
        "oof_score_tta": oof.get("score"),
        "threshold": decided["threshold"],
        "oof_score_tuned": decided["oof_score"],
        "per_class_iou": oof.get("iou"),
        "oof_ce": oof.get("ce"),
    }


def ensemble_summary(layout: Layout, name: str) -> dict:
    decided = decision_fields(layout.ensemble(name))
    scalar = not isinstance(decided["threshold"], list)  # per-class thresholds: see decision.json
    return {
        "ensemble": name,
        "threshold": decided["threshold"] if scalar else None,
        "min_area": decided["min_area"],
        "cleanup": decided["cleanup"],
        "oof_score": decided["oof_score"],
        "metric": decided["metric"],
        "per_class_iou": decided["per_class_iou"],
        "oof_ce": decided["oof_ce"],
    }
