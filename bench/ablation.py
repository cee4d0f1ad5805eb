"""The OOF gain of each trick of a binary run, fold by fold, with the fold-to-fold noise.

Reads only what ``pipeline run`` (or train + predict + tune) left in ``artifacts/runs/<run>/``:

- **weight averaging**: the kept average (EMA / SWA) against the raw weights, both scored on the
  fold's validation images after the last epoch (``fold<k>/summary.json``, ``averages``);
- **TTA**: OOF Dice at threshold 0.5 with and without the flips (``predict_report.json``);
- **tuned threshold**: the decision's threshold against 0.5, clean-up and min area off;
- **clean-up / min area**: the full decision against the same threshold without them.

Each row: the gain per fold, its mean and standard deviation over folds (the noise), and how many
folds it wins. The full-data refit and pseudo-label rounds cannot be scored on OOF (the refit has
seen every image): they are listed as such.

    .venv/bin/python bench/ablation.py carvana-unet-lite0-crop-bce-dice_320x480
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import replace

import numpy as np

from pipeline.decide.decision import Decision
from pipeline.decide.store import ProbStore
from pipeline.fsio import read_json
from pipeline.ops.metrics import dice_score
from pipeline.paths import Layout
from pipeline.predict.runmodel import load_decision


def fold_dice(store, truth: dict, folds: dict, decision: Decision) -> dict[int, float]:
    """Mean per-image Dice of each fold's OOF images under ``decision``."""
    scores: dict[int, list[float]] = {}
    for image_id, fold in folds.items():
        mask = decision.mask(store.read(image_id)[0])
        scores.setdefault(fold, []).append(dice_score(mask > 0, truth[image_id]))
    return {k: float(np.mean(v)) for k, v in sorted(scores.items())}


def averaging_gains(layout: Layout, run: str, folds: list[int]) -> tuple[str, dict] | None:
    kept, gains = None, {}
    for k in folds:
        summary = read_json(layout.run(run).fold(k).summary(), optional=True)
        scores = summary.get("averages") if summary else None
        if not scores:
            return None
        kept = next(
            (n for n in ("swa", "ema") if n in scores and summary["best_score"] == scores[n]), None
        )
        if kept is None:
            return None
        gains[k] = scores[kept] - scores["none"]
    return kept, gains


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument(
        "--config", default=None, help="the run's config (default: its config.yaml)"
    )
    args = parser.parse_args()
    from pipeline.config import load_config
    from pipeline.data import open_dataset
    from pipeline.data.splits import rows_from_csv

    layout = Layout()
    folder = layout.run(args.run)
    cfg = load_config(args.config or folder.path / "config.yaml")
    dataset = open_dataset(cfg.dataset)
    table = layout.folds_csv(cfg.dataset.name)
    rows = rows_from_csv(table.read_text(encoding="utf-8"), str(table))
    folds = {r.image_id: r.fold for r in rows if r.fold >= 0}
    truth = {s.image_id: dataset.read_mask(s) > 0 for s in dataset.train if s.image_id in folds}
    store = ProbStore.open(folder.store("oof"))
    decision, source = load_decision(folder, multiclass=False)
    plain = Decision(0.5)
    at_half = fold_dice(store, truth, folds, plain)
    thresholded = fold_dice(store, truth, folds, replace(decision, min_area=0, cleanup=False))
    decided = fold_dice(store, truth, folds, decision)
    report = read_json(folder.predict_report())["folds"]
    gains = {
        f"TTA ({read_json(folder.predict_report())['tta']})": {
            int(k): v["score"] - v["score_plain"] for k, v in report.items()
        },
        f"threshold {decision.threshold:.3f} vs 0.5": {
            k: thresholded[k] - at_half[k] for k in at_half
        },
        f"clean-up {decision.cleanup} + min area {decision.min_area:g}": {
            k: decided[k] - thresholded[k] for k in at_half
        },
    }
    averaged = averaging_gains(layout, args.run, sorted(at_half))
    if averaged:
        gains[f"weight averaging ({averaged[0]} vs raw)"] = averaged[1]
    print(f"bench/ablation: {args.run}, decision from {source}; OOF Dice gain per fold")
    ks = sorted(at_half)
    print(f"{'trick':44s}" + "".join(f"  fold {k:<4d}" for k in ks) + "     mean      sd  wins")
    for name, per_fold in gains.items():
        values = [per_fold[k] for k in ks]
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        wins = sum(v > 0 for v in values)
        print(
            f"{name:44s}"
            + "".join(f"  {v:+.5f}" for v in values)
            + f"  {np.mean(values):+.5f} {sd:.5f}  {wins}/{len(values)}"
        )
    print(
        f"{'OOF Dice under the decision':44s}"
        + "".join(f"  {decided[k]:.5f} " for k in ks)
        + f"  {np.mean(list(decided.values())):.5f}"
    )
    print("full-data refit, pseudo-label rounds: not measurable on OOF (they see every image)")


if __name__ == "__main__":
    main()
