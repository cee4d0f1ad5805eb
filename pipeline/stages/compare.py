"""Stage: fold-by-fold OOF scores of two runs (e.g. without and with pseudo-labels),
read from artifacts."""

from __future__ import annotations

import numpy as np

from pipeline.errors import PipelineError
from pipeline.fsio import read_json
from pipeline.paths import Layout
from pipeline.review.results import training_scores


def fold_scores(layout: Layout, run: str) -> tuple[dict[int, float], str]:
    """Per-fold OOF Dice: from predict_report.json (TTA) when present,
    else training's best val Dice."""
    report = read_json(layout.run(run).predict_report(), optional=True)
    if report.get("folds"):
        return {int(k): v["score"] for k, v in report["folds"].items()}, "predict reports"
    return training_scores(layout.run(run)), "training summaries"


def compare_runs(layout: Layout, baseline: str, candidate: str) -> dict:
    base, source_a = fold_scores(layout, baseline)
    cand, source_b = fold_scores(layout, candidate)
    common = sorted(set(base) & set(cand))
    if not common:
        raise PipelineError(
            f"runs '{baseline}' and '{candidate}' share no scored fold; train/predict both first"
        )
    diffs = [cand[k] - base[k] for k in common]
    return {
        "folds": [
            {"fold": k, "baseline": base[k], "candidate": cand[k], "difference": d}
            for k, d in zip(common, diffs, strict=True)
        ],
        "mean": float(np.mean(diffs)),
        "std": float(np.std(diffs)),
        "better": int(sum(d > 0 for d in diffs)),
        "source": source_a if source_a == source_b else f"{source_a} / {source_b}",
    }
