"""An ensemble's decision: the one writer of its ``decision.json`` (``pipeline ensemble`` and
``pipeline tune --ensemble`` both call ``decide_ensemble``).

The search holds what ``ensemble.yaml`` fixes fixed and searches the rest on the fused OOF store,
and the OOF score recorded is the score of the decision applied, always: also when the config fixes
all of it (the search then scores that one decision).
"""
from __future__ import annotations

import numpy as np

from pipeline.decide.decision import AnyDecision, Fixed, MulticlassDecision, applied_decision
from pipeline.decide.search import search_oof, write_search
from pipeline.decide.store import ProbStore
from pipeline.paths import EnsembleDir


def argmax_scores(store: ProbStore, dataset, task) -> dict:
    """Metrics of the argmax of a multi-class OOF store (``task``: the dataset's ``make_task``)."""
    by_id, acc = {s.image_id: s for s in dataset.train}, task.accumulator()
    for image_id in store.ids():
        acc.add(store.read(image_id).astype(np.float32) / 255.0, dataset.read_mask(by_id[image_id]))
    result = acc.result(acc.state, dataset.classes)
    return {"oof_score": result["miou"], "metric": "miou", **result}


def member_inputs(store: ProbStore) -> dict:
    """The member OOF stores a fused store was made from (their fingerprints, from its header)."""
    members = store.manifest.get("checkpoints") or {}
    return {run: {"oof": info.get("store")} for run, info in members.items() if isinstance(info, dict)}


def decide_ensemble(folder: EnsembleDir, store: ProbStore, dataset, fold_of: dict[str, int], fixed: Fixed,
                    task, made_by: str, progress=None) -> tuple[AnyDecision, dict]:
    """Search the fused OOF ``store`` with ``fixed`` held fixed, apply, and write ``thresholds.json``,
    ``threshold_curve.png`` and ``decision.json`` (with the applied decision's OOF score and metric).

    Multi-class ``decision: auto|argmax``: the argmax, scored by mIoU (the per-class search is
    recorded in ``thresholds.json`` only). Returns the decision and the search's record.
    """
    multiclass = dataset.num_classes > 2
    tuned, curves = search_oof(store, dataset, fold_of, fixed, progress)
    decision = applied_decision(tuned, multiclass, fixed)
    if isinstance(decision, MulticlassDecision) and decision.mode == "argmax":
        scores = argmax_scores(store, dataset, task)
        tuned.update(oof_score=scores["oof_score"], metric="miou", miou=scores["miou"])
    elif multiclass:
        tuned.update(oof_score=float(np.mean([c["oof_dice_tuned"] for c in tuned["channels"][1:]])),
                     metric="mean class Dice")
    else:
        tuned.update(oof_score=tuned["oof_dice_final"], metric="dice")
    out = write_search(folder, tuned, curves, decision, store, made_by, {"members": member_inputs(store)},
                       oof_score=tuned["oof_score"], metric=tuned["metric"])
    return decision, out
