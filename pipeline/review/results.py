"""What a run's and an ensemble's artifacts say, read-only: training scores, OOF scores,
the decision.

Shared by ``summary``, ``compare`` and ``report``;
every value comes from the one file that holds it.
"""

from __future__ import annotations

from pipeline.decide.decision import read_record
from pipeline.decide.folders import ResultFolder, RunFolder
from pipeline.fsio import read_json


def training_scores(run: RunFolder) -> dict[int, float]:
    """Each finished fold's best validation score during training (``fold<k>/summary.json``)."""
    folds = {}
    for summary in run.fold_summaries():
        info = read_json(summary, optional=True)
        if info:
            folds[int(info["fold"])] = info.get("best_score") or info["best_dice"]
    return folds


def averaging_scores(run: RunFolder) -> dict[int, dict[str, float]]:
    """Each finished fold's validation score of every weight candidate after its last epoch
    (``{fold: {"none": raw, "ema": ..., "swa": ...}}``; folds that kept one set
    of weights: none)."""
    folds = {}
    for summary in run.fold_summaries():
        info = read_json(summary, optional=True)
        if info and info.get("averages"):
            folds[int(info["fold"])] = info["averages"]
    return folds


def decision_fields(folder: ResultFolder) -> dict:
    """threshold / min_area / cleanup of the folder's ``decision.json`` (None where it has none),
    and the OOF score it recorded with its metric."""
    record = read_record(folder)
    decision = record.get("decision", {})
    if decision.get("kind") == "multiclass":
        fields = {
            "threshold": decision.get("thresholds") or None,
            "min_area": decision.get("min_areas") or None,
            "cleanup": False,
            "decision": decision.get("mode"),
        }
    else:
        fields = {k: decision.get(k) for k in ("threshold", "min_area", "cleanup")}
    return {
        **fields,
        "oof_score": record.get("oof_score"),
        "metric": record.get("metric"),
        "per_class_iou": record.get("per_class_iou"),
        "oof_ce": record.get("oof_ce"),
    }
