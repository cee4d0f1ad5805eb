"""Stage: pseudo-labels from an ensemble's fused test probabilities.

Scores every test image's confidence, keeps the confident ones (``PseudoRule``), writes their masks
to ``artifacts/pseudo/r<R>/masks/<id>.png`` (hard: {0,1} after the ensemble's threshold, min area
and clean-up; soft: probabilities 0..255), the table ``folds/pseudo_r<R>.csv`` (fold = -1) and its
provenance ``folds/pseudo_r<R>.json`` (ensemble, decision, rule, scores).
"""

from __future__ import annotations

import io
import json
import time

import numpy as np
from PIL import Image

from pipeline.config import load_config
from pipeline.data import open_dataset
from pipeline.decide.decision import read_decision
from pipeline.decide.pseudo_labels import PseudoRow, PseudoRule, check_no_leak, select, table_to_csv
from pipeline.decide.store import ProbStore
from pipeline.errors import PipelineError
from pipeline.fsio import atomic_write_bytes, atomic_write_text
from pipeline.paths import Layout


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def run_pseudo(
    layout: Layout,
    ensemble: str,
    round_: int,
    rule: PseudoRule,
    soft: bool = False,
    force: bool = False,
    progress=None,
) -> dict:
    folder = layout.ensemble(ensemble)
    store = ProbStore.open(folder.store("test"))
    if not store.complete:
        raise PipelineError(
            f"{store.path}: incomplete; rerun 'pipeline ensemble' (save_test_store: true)"
        )
    if store.channels != 1:
        raise PipelineError(
            "pseudo-labels for multi-class stores arrive with the multi-class issue"
        )
    table = layout.pseudo_table(round_)
    if table.exists() and not force:
        raise PipelineError(f"{table} exists; use another --round or pass --force")
    cfg = load_config(folder.config())
    dataset = open_dataset(cfg.dataset)
    decision = read_decision(folder, multiclass=False)  # the decision the submission applied
    scores = {}
    for image_id in store.ids():
        scores[image_id] = rule.score(store.read(image_id))
        if progress:
            progress(1)
    chosen = select(scores, rule)
    mask_dir = layout.pseudo_dir(round_) / "masks"
    rows = []
    for image_id in chosen:
        probs = store.read(image_id)[0]
        mask = decision.mask(probs)
        atomic_write_bytes(mask_dir / f"{image_id}.png", _png(probs if soft else mask))
        rows.append(
            PseudoRow(
                image_id,
                dataset.sample(image_id).group,
                float(mask.mean()),
                str(mask_dir / f"{image_id}.png"),
                soft,
            )
        )
    check_no_leak(rows, {s.image_id for s in dataset.train}, str(table))
    atomic_write_text(table, table_to_csv(rows))
    provenance = {
        "round": round_,
        "ensemble": ensemble,
        "store": str(store.path),
        "members": store.manifest.get("checkpoints"),
        "decision": decision.__dict__,
        "rule": rule.__dict__,
        "soft": soft,
        "candidates": len(scores),
        "selected": len(rows),
        "scores": scores,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "table": str(table),
    }
    atomic_write_text(table.with_suffix(".json"), json.dumps(provenance, indent=2))
    return provenance
