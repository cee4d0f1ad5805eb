"""An ensemble's decision: the one writer of its ``decision.json`` (``pipeline ensemble`` and
``pipeline tune --ensemble`` both call ``decide_ensemble``).

The search holds what ``ensemble.yaml`` fixes fixed and searches the rest on the fused OOF store,
and the OOF score recorded is the score of the decision applied, always: also when the config fixes
all of it (the search then scores that one decision).
"""

from __future__ import annotations

import numpy as np

from pipeline.decide.class_weights import ClassWeights, tune_class_weights
from pipeline.decide.decision import AnyDecision, Fixed, MulticlassDecision, applied_decision
from pipeline.decide.folders import ResultFolder
from pipeline.decide.search import search_oof, write_search
from pipeline.decide.store import ProbStore


def argmax_scores(store: ProbStore, dataset, task, weights: tuple[float, ...] = ()) -> dict:
    """Metrics of the (weighted) argmax of a multi-class OOF store (``task``: the dataset's task).

    IoU, mIoU and accuracy are those of the decision (``weights`` applied before the argmax); the
    cross-entropy is that of the probabilities themselves."""
    by_id, acc, plain = (
        {s.image_id: s for s in dataset.train},
        task.accumulator(),
        task.accumulator(),
    )
    w = np.asarray(weights or [1.0] * len(dataset.classes), np.float32)[:, None, None]
    for image_id in store.ids():
        probs = store.read(image_id).astype(np.float32) / 255.0
        mask = dataset.read_mask(by_id[image_id])
        weighted = probs * w
        acc.add(weighted / np.maximum(weighted.sum(0, keepdims=True), 1e-12), mask)
        if weights:
            plain.add(probs, mask)
    result = acc.result(acc.state, dataset.classes)
    if weights:
        result["ce"] = plain.result(plain.state, dataset.classes)["ce"]
    return {"oof_score": result["miou"], "metric": "miou", **result}


def tuned_class_weights(store: ProbStore, dataset) -> ClassWeights:
    """Per-class argmax weights searched on the fused OOF ``store`` (decide/class_weights.py)."""
    by_id = {s.image_id: s for s in dataset.train}
    pairs = [(store.read(i), dataset.read_mask(by_id[i])) for i in store.ids()]
    return tune_class_weights(pairs, len(dataset.classes), dataset.ignore_index)


def member_inputs(store: ProbStore) -> dict:
    """The member OOF stores a fused store was made from (their fingerprints, from its header)."""
    members = store.manifest.get("checkpoints") or {}
    return {
        run: {"oof": info.get("store")} for run, info in members.items() if isinstance(info, dict)
    }


def decide_ensemble(
    folder: ResultFolder,
    store: ProbStore,
    dataset,
    fold_of: dict[str, int],
    fixed: Fixed,
    task,
    made_by: str,
    progress=None,
) -> tuple[AnyDecision, dict]:
    """Search the fused OOF ``store`` with ``fixed`` held fixed, apply, and write
    ``thresholds.json``, ``threshold_curve.png`` and ``decision.json`` (with the applied
    decision's OOF score and metric).

    Multi-class ``decision: auto|argmax``: the argmax, scored by mIoU (the per-class search is
    recorded in ``thresholds.json`` only). Returns the decision and the search's record.
    """
    multiclass = dataset.num_classes > 2
    tuned, curves = search_oof(store, dataset, fold_of, fixed, progress)
    decision = applied_decision(tuned, multiclass, fixed)
    if isinstance(decision, MulticlassDecision) and decision.mode == "argmax":
        if fixed.class_weights == "tune":
            found = tuned_class_weights(store, dataset)
            decision = MulticlassDecision("argmax", weights=found.weights)
            tuned.update(
                class_weights=dict(zip(dataset.classes, found.weights, strict=True)),
                miou_plain_argmax=found.miou_plain,
            )
        scores = argmax_scores(store, dataset, task, decision.weights)
        tuned.update(
            oof_score=scores["oof_score"],
            metric="miou",
            miou=scores["miou"],
            iou=scores["iou"],
            ce=scores["ce"],
        )
    elif multiclass:
        dice = [c["oof_dice_tuned"] for c in tuned["channels"][1:]]
        tuned.update(oof_score=float(np.mean(dice)), metric="mean class Dice")
    else:
        tuned.update(oof_score=tuned["oof_dice_final"], metric="dice")
    inputs = {"members": member_inputs(store)}
    per_class = {"per_class_iou": tuned["iou"], "oof_ce": tuned["ce"]} if "iou" in tuned else {}
    out = write_search(
        folder,
        tuned,
        curves,
        decision,
        store,
        made_by,
        inputs,
        oof_score=tuned["oof_score"],
        metric=tuned["metric"],
        **per_class,
    )
    return decision, out
