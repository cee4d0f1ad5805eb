"""Stage: tune threshold, min area and clean-up on a run's (or an ensemble's) OOF store.

Writes ``thresholds.json`` (the whole search), ``threshold_curve.png`` and ``decision.json`` (what
the folder's masks are made with) beside the store. An ensemble's decision keeps the values its
``ensemble.yaml`` fixes (the search holds them fixed) and takes the searched ones where it says
``tune``; it is written by ``decide_ensemble``, as ``pipeline ensemble`` writes it.
"""

from __future__ import annotations

from pipeline.config import load_config
from pipeline.config.schema import EnsembleConfig
from pipeline.data import open_dataset
from pipeline.decide.decision import Fixed, applied_decision
from pipeline.decide.ensemble_decision import decide_ensemble
from pipeline.decide.search import oof_folds, search_oof, write_search
from pipeline.decide.store import ProbStore
from pipeline.model.task import make_task
from pipeline.paths import Layout


def run_tune(
    layout: Layout,
    run: str | None = None,
    ensemble: str | None = None,
    cleanup: bool = True,
    progress=None,
) -> dict:
    """Search the OOF store of a run or an ensemble; write thresholds.json, threshold_curve.png
    and decision.json.

    ``cleanup=False`` (``--no-cleanup``): no clean-up, where an ensemble's config leaves it to
    the search.
    """
    folder = layout.source(run, ensemble)
    cfg = load_config(folder.config())
    store = ProbStore.open(folder.store("oof"))
    dataset = open_dataset(cfg.dataset)
    fold_of = oof_folds(layout.folds_csv(cfg.dataset.name), store, dataset)
    if ensemble:
        fixed = Fixed.of(load_config(folder.ensemble_config(), schema=EnsembleConfig), cleanup)
        task = make_task(dataset.classes, dataset.ignore_index)
        return decide_ensemble(folder, store, dataset, fold_of, fixed, task, "tune", progress)[1]
    out, curves = search_oof(store, dataset, fold_of, Fixed.of(None, cleanup), progress)
    decision = applied_decision(out, dataset.num_classes > 2)
    binary = store.channels == 1
    return write_search(
        folder,
        out,
        curves,
        decision,
        store,
        oof_score=out.get("oof_dice_final") if binary else None,
        metric="dice" if binary else None,
    )
