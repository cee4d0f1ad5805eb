"""QA's calibrated estimate on real OOF predictions: does it find the bad images and the score?

For an ensemble (default: the Carvana recipe's, ``carvana-lite0-256``) this measures every OOF
image exactly as ``pipeline qa`` does (quality features under the ensemble's own decision, true
Dice or mIoU against the masks), cross-validates the estimator by group (leave one car out), and
prints the acceptance figures of issue 15: Spearman(estimate, true score), the share of the worst
car's views among the 10% of images the estimate ranks lowest, and the estimated vs true mean.
For comparison in the same run: the same estimator cross-validated by the models' own folds (a
quarter of the cars held out at a time), and the baseline of the issue, the plain uncertainty
signal with no learning: the share of pixels with 0.1 < p < 0.9 per predicted pixel (Spearman
of its negative). Nothing is written (``pipeline qa`` writes the same estimates under ``qa/``).
Last line: ``ratio = Spearman(estimate) / Spearman(-band share)``.

    .venv/bin/python bench/qa_calibration.py --ensemble carvana-lite0-256
        --ensemble carvana-lite0-256-192
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.stats import spearmanr

from pipeline.data.splits import rows_from_csv
from pipeline.paths import Layout
from pipeline.review import estimate as est
from pipeline.review.sources import open_source
from pipeline.review.suspicion import QAConfig, flag
from pipeline.stages.qa import fused_store, load_members, measure_all, view_keys


def worst_group_ranks(
    truth: np.ndarray, estimate: np.ndarray, groups: list[str]
) -> tuple[str, list[int]]:
    """The group with the lowest mean true score and the 1-based ranks of its images by the
    estimate."""
    names = np.array(groups)
    worst = min(set(groups), key=lambda g: truth[names == g].mean())
    rank = np.empty(len(estimate), int)
    rank[np.argsort(estimate, kind="stable")] = np.arange(1, len(estimate) + 1)
    return worst, sorted(rank[names == worst].tolist())


def one_model_ranking(quality: list[dict], truth: np.ndarray, groups: list[str]) -> float:
    """Spearman of ``-w_g . (x - median x)`` with the truth,
    ``w_g`` fitted without the image's group.

    On a test set one fitted model scores every image, so its ranking is by ``w . x`` alone; pooling
    cross-validated estimates adds each held-out model's own intercept (the mean log error of the
    other groups, lower when the held-out group is a bad one), which reorders images across groups.
    This leaves the intercepts out and keeps everything else held out: no truth of the group enters.
    """
    columns = est.usable_columns(quality)
    center = dict(zip(columns, np.median(est.matrix(quality, columns), axis=0), strict=True))
    names, score = np.array(groups), np.zeros(len(truth))
    for g in set(groups):
        train = np.flatnonzero(names != g)
        model = est.fit([quality[i] for i in train], truth[train], [groups[i] for i in train])
        held = np.flatnonzero(names == g)
        z = est.matrix([quality[i] for i in held], model.columns)
        score[held] = -(z - np.array([center[c] for c in model.columns])) @ model.weights
    return float(spearmanr(score, truth)[0])


def feature_signals(
    quality: list[dict], truth: np.ndarray, groups: list[str]
) -> list[tuple[str, float, float]]:
    """Each usable feature on its own: Spearman of its negative with the truth over all images, and
    the mean of that Spearman inside each group (how much each signal knows, before any fitting)."""
    names, out = np.array(groups), []
    for c in est.usable_columns(quality):
        x = -np.array([q[c] for q in quality], np.float64)
        inside = [spearmanr(x[names == g], truth[names == g])[0] for g in set(groups)]
        out.append((c, float(spearmanr(x, truth)[0]), float(np.nanmean(inside))))
    return out


def folds_of(layout: Layout, source, ids: list[str]) -> list[str] | None:
    path = layout.folds_csv(source.cfg.dataset.name)
    if not path.is_file():
        return None
    fold = {r.image_id: r.fold for r in rows_from_csv(path.read_text(encoding="utf-8"), str(path))}
    return [f"fold{fold[i]}" for i in ids] if all(fold.get(i, -1) >= 0 for i in ids) else None


def report(name: str, layout: Layout, workers: int) -> float:
    started = time.perf_counter()
    source = open_source(layout.source(None, name))
    metric = "mIoU" if source.multiclass else "Dice"
    oof_store = fused_store(source, "oof")
    members = load_members(layout, source, fused_store(source, "test"))
    rows, truth = measure_all(source, oof_store, members, "oof", workers=workers)
    flag(rows, QAConfig(), metric, view_keys(source, rows))
    quality, groups = [r.quality() for r in rows], [r.group for r in rows]
    by_group = est.cross_validate(quality, truth, groups)
    fig = est.calibration(truth, by_group, groups)
    top = int(np.ceil(0.1 * len(rows)))
    worst, ranks = worst_group_ranks(truth, by_group, groups)
    band_share = np.array([q.get("band", 0.0) + q.get("band_far", 0.0) for q in quality])
    baseline = float(spearmanr(-band_share, truth)[0])
    print(
        f"\n{name}: {len(rows)} OOF images, {fig['groups']} groups, {len(members)} member(s); "
        f"{metric} under the ensemble's decision ({source.decision}); "
        f"measured in {time.perf_counter() - started:.0f}s"
    )
    print(
        f"  true mean {fig['true_mean']:.5f}, worst group {worst} "
        f"(mean {fig['worst_group_true']:.5f}), per-image spread (sd) {truth.std():.5f}"
    )
    print(
        f"  estimate, leave one group out : Spearman {fig['spearman']:.3f} (target >= 0.6); "
        f"worst group's views in the lowest 10% ({top} images): "
        f"{sum(r <= top for r in ranks)}/{len(ranks)} (ranks {ranks[:4]}...); estimated mean "
        f"{fig['estimated_mean']:.5f} ({fig['estimated_mean'] - fig['true_mean']:+.5f}, target "
        "within 0.003)"
    )
    folds = folds_of(layout, source, [r.image_id for r in rows])
    if folds:
        by_fold = est.cross_validate(quality, truth, folds)
        fold_fig = est.calibration(truth, by_fold, groups)
        print(
            f"  estimate, by the models' folds: Spearman {fold_fig['spearman']:.3f}; estimated "
            f"mean {fold_fig['estimated_mean']:.5f} "
            f"({fold_fig['estimated_mean'] - fold_fig['true_mean']:+.5f})"
        )
    print(
        f"  one model's ranking (held-out weights, intercepts left out): Spearman "
        f"{one_model_ranking(quality, truth, groups):.3f}"
    )
    names = np.array(groups)
    within = np.nanmean(
        [spearmanr(by_group[names == g], truth[names == g])[0] for g in set(groups)]
    )
    print(f"  estimate within a group (mean Spearman over groups): {within:.3f}")
    print(
        "  baseline, -(uncertain share 0.1<p<0.9 per predicted pixel), no learning: "
        f"Spearman {baseline:.3f}"
    )
    print(
        "  each feature alone, Spearman(-feature, true score) over all images / mean "
        "within groups: "
        + ", ".join(f"{c} {a:+.2f}/{w:+.2f}" for c, a, w in feature_signals(quality, truth, groups))
    )
    model = est.fit(quality, truth, groups)
    print(
        "  weights (log error per unit of transformed feature): "
        + ", ".join(f"{c} {w:+.3f}" for c, w in zip(model.columns, model.weights, strict=True))
        + f"; ridge alpha {model.alpha:g}"
    )
    return fig["spearman"] / baseline if baseline else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--ensemble",
        action="append",
        default=None,
        help="artifacts/ensembles/<name> (repeatable; default carvana-lite0-256)",
    )
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    ratios = [
        report(name, Layout(), args.workers) for name in args.ensemble or ["carvana-lite0-256"]
    ]
    print(f"ratio = {ratios[-1]:.4f}")


if __name__ == "__main__":
    main()
