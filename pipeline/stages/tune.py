"""Stage: tune threshold, min area and clean-up on a run's (or an ensemble's) OOF store.

Writes ``thresholds.json`` (the whole search), ``threshold_curve.png`` and ``decision.json`` (what
the folder's masks are made with) beside the store. An ensemble's decision keeps the values its
``ensemble.yaml`` fixes and takes the searched ones where it says ``tune``.
"""
from __future__ import annotations

from pipeline.config import load_config
from pipeline.config.schema import EnsembleConfig
from pipeline.data import open_dataset
from pipeline.decide.decision import applied_decision
from pipeline.decide.search import oof_folds, search_oof, write_search
from pipeline.decide.store import ProbStore
from pipeline.paths import Layout


def run_tune(layout: Layout, run: str | None = None, ensemble: str | None = None, cleanup: bool = True,
             progress=None) -> dict:
    """Search the OOF store of a run or an ensemble; write thresholds.json, threshold_curve.png, decision.json."""
    folder = layout.source(run, ensemble)
    cfg = load_config(folder.config())
    store = ProbStore.open(folder.store("oof"))
    dataset = open_dataset(cfg.dataset)
    fold_of = oof_folds(cfg, layout, store, dataset)
    out, curves = search_oof(store, dataset, fold_of, cleanup, progress)
    fixed = load_config(folder.ensemble_config(), schema=EnsembleConfig) if ensemble else None
    decision = applied_decision(out, dataset.num_classes > 2, fixed)
    binary = store.channels == 1
    return write_search(folder, out, curves, decision, store, oof_score=out.get("oof_dice_final") if binary else None,
                        metric="dice" if binary else None)
