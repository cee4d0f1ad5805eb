"""Stage: ``pipeline qa ENSEMBLE`` — estimate every test image's score and look for bad predictions.

Reads the ensemble's fused OOF and test stores (``artifacts/ensembles/<name>/{oof,test}/``, decided
as the submission was: its ``decision.json``) and every member run's stores (decided with that
run's ``decision.json``, else 0.5; members with weight 0 are left out). On
OOF, where the truth is known, it measures each image's quality features and true score (Dice
under the decision, or mIoU) and fits the estimator (``pipeline.review.estimate``), cross-validated
by group; on test it measures the same features,
estimates each image's score (``pipeline.review.reasons``), flags the hard rules and ranks
(``pipeline.review.suspicion``). Writes into
``artifacts/ensembles/<name>/qa/``:

- ``qa.csv`` — every test image, worst first: rank, image_id, group, estimate, flags, reasons,
  member_dice (mean pairwise Dice, or mIoU for multi-class), area, area_z, components, features;
- ``groups.csv`` — every test group, worst first: estimate (mean), lowest image, flags, reasons;
- ``oof.csv`` — every OOF image: true score, cross-validated estimate, features;
- ``calibration.json`` — the estimator (weights per feature), its cross-validated figures on OOF
  and the estimated leaderboard score (mean of the test estimates, 95% interval);
- ``index.html`` — a static gallery, worst groups first, with estimates and reasons, then tables;
- ``<n>_<image_id>.png`` — the gallery's thumbnails (image | prediction | uncertainty | members
  disagree); thumbnails of an earlier QA run are removed first.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.config import load_config
from pipeline.config.schema import EnsembleConfig
from pipeline.decide.decision import AnyDecision, read_decision
from pipeline.decide.store import ProbStore
from pipeline.errors import PipelineError
from pipeline.fsio import atomic_write_bytes, atomic_write_text
from pipeline.paths import Layout
from pipeline.review import estimate as est
from pipeline.review.overlay import disagreement_map, grid, png_bytes, unlabelled_row
from pipeline.review.qa_page import csv_groups, csv_images, csv_oof, gallery_rows, html_text
from pipeline.review.quality import binary_features, multiclass_features
from pipeline.review.reasons import GroupQA, estimate, groups
from pipeline.review.sources import Source, image_score, open_source
from pipeline.review.suspicion import (
    FLAG_NAMES,
    ImageQA,
    QAConfig,
    flag,
    measure,
    rank,
    short_reason,
    summary_line,
)

THUMB_WIDTH = 960
QA_TITLES = [
    "image",
    "ensemble prediction",
    "uncertainty (bright = unsure)",
    "members disagree (magenta)",
]


@dataclass
class Member:
    run: str
    stores: dict[str, ProbStore]  # split -> store
    decision: AnyDecision


def fused_store(source: Source, split: str) -> ProbStore:
    path = source.dir.store(split)
    if not (path / "manifest.json").is_file():
        fix = "set save_test_store: true in the ensemble config and " if split == "test" else ""
        raise PipelineError(f"{path}: no fused {split} store; {fix}rerun 'pipeline ensemble'")
    return source.store(split)


def load_members(layout: Layout, source: Source, fused: ProbStore) -> list[Member]:
    """Every ensemble member with a non-zero weight: its OOF and test stores and its decision."""
    ecfg: EnsembleConfig = load_config(source.dir.ensemble_config(), schema=EnsembleConfig)
    info = fused.manifest.get("checkpoints", {})
    members = []
    for m in ecfg.members:
        weight = (
            info.get(m.run, {}).get("weight", 1.0) if isinstance(info.get(m.run), dict) else 1.0
        )
        if weight == 0:
            continue  # a zero-weight member does not shape the submission
        folder = layout.run(m.run)
        stores = {split: ProbStore.open(folder.store(split)) for split in ("oof", "test")}
        for store in stores.values():
            if not store.complete:
                raise PipelineError(
                    f"{store.path}: incomplete store; rerun 'pipeline predict' for '{m.run}'"
                )
        members.append(Member(m.run, stores, read_decision(folder, source.multiclass)))
    return members


def member_labels(members: list[Member], split: str, image_id: str) -> list:
    return [m.decision.label(m.stores[split].read(image_id)) for m in members]


def features(source: Source, probs: np.ndarray, label: np.ndarray) -> dict[str, float]:
    """Quality features of one decided prediction (``pipeline.review.quality``)."""
    if source.multiclass:
        return multiclass_features(probs, label, source.dataset.classes)
    return binary_features(probs, label, source.decision.threshold)


def measure_all(
    source: Source,
    fused: ProbStore,
    members: list[Member],
    split: str,
    progress=None,
    workers: int = 2,
) -> tuple[list[ImageQA], np.ndarray | None]:
    """One ``ImageQA`` per image of the fused store (store order) and, for OOF,
    each image's true score.

    ``workers`` threads (zlib, NumPy and OpenCV release the GIL);
    each holds one image's maps at a time.
    """
    ids = fused.ids()
    samples = {image_id: source.dataset.sample(image_id) for image_id in ids}

    def one(image_id: str) -> tuple[ImageQA, float | None]:
        probs = fused.read(image_id)
        label = source.label(probs)
        row = measure(
            image_id,
            samples[image_id].group,
            label,
            member_labels(members, split, image_id),
            source.dataset.num_classes,
            source.background,
            features(source, probs, label),
        )
        truth = (
            image_score(source, label, source.dataset.read_mask(samples[image_id]))
            if split == "oof"
            else None
        )
        return row, truth

    rows, truths = [], []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for row, truth in pool.map(one, ids):
            rows.append(row)
            truths.append(truth)
            if progress:
                progress(1)
    return rows, (np.array(truths, np.float64) if split == "oof" else None)


def view_keys(source: Source, rows: list[ImageQA]) -> dict[str, str] | None:
    """Carvana ids ``<car>_<NN>``: image id -> ``NN`` (a fixed turntable angle),
    for the area view effect."""
    if source.cfg.dataset.layout != "carvana":
        return None
    keys = {
        r.image_id: r.image_id[len(r.group) + 1 :]
        for r in rows
        if r.image_id.startswith(f"{r.group}_")
    }
    return keys if len(keys) == len(rows) else None


def calibrate(oof: list[ImageQA], truth: np.ndarray):
    """The estimator fitted on all OOF rows, each row's estimate cross-validated by group,
    and the figures."""
    quality, names = [r.quality() for r in oof], [r.group for r in oof]
    cv = est.cross_validate(quality, truth, names)
    splits = len(np.unique(est.group_splits(names, est.MAX_SPLITS)))
    figures = {
        "cross_validated_by": f"group ({splits} splits)",
        **est.calibration(truth, cv, names),
    }
    return est.fit(quality, truth, names), cv, figures


def thumbnail(
    source: Source, fused: ProbStore, members: list[Member], row: ImageQA, n: int, metric: str
) -> bytes:
    """PNG: image | ensemble prediction | uncertainty | where members disagree, with a caption."""
    image = source.dataset.read_image(source.dataset.sample(row.image_id))
    probs = fused.read(row.image_id)
    labels = member_labels(members, "test", row.image_id) or [source.label(probs)]
    text = (
        f"#{n} {row.image_id} (group {row.group})  est. {metric} {row.estimate:.4f}  "
        f"{', '.join(row.flags) or 'no flag'}"
    )
    picture = unlabelled_row(
        image,
        source.label(probs),
        probs,
        source.colours(),
        text,
        THUMB_WIDTH,
        source.skip,
        extra=[disagreement_map(image, labels)],
    )
    return png_bytes(grid([picture], QA_TITLES))


def write_thumbnails(
    folder: Path,
    source: Source,
    fused: ProbStore,
    members: list[Member],
    shown: list[ImageQA],
    metric: str,
) -> list[str]:
    """Thumbnails of the ``shown`` images (earlier ones removed first); returns their file names."""
    for old in folder.glob("*.png"):
        old.unlink()
    names = []
    for n, row in enumerate(shown, start=1):
        names.append(f"{n:03d}_{row.image_id}.png")
        atomic_write_bytes(folder / names[-1], thumbnail(source, fused, members, row, n, metric))
    return names


def run_qa(
    layout: Layout,
    ensemble_name: str,
    top: int = 12,
    cfg: QAConfig | None = None,
    progress=None,
    workers: int = 2,
) -> dict:
    """Estimate and rank every test image of an ensemble, write ``qa/`` (module docstring);
    return a summary.

    Args:
        layout: the project layout.
        ensemble_name: ``artifacts/ensembles/<name>/``
            (needs its fused ``oof/`` and ``test/`` stores).
        top: thumbnails in the HTML gallery (worst groups first, up to 3 images each).
        cfg: flag limits (default ``QAConfig()``).
        progress: optional ``progress(n)``, called per image measured (OOF, then test).
        workers: threads measuring images.

    Returns:
        ``{"line", "images", "flagged", "counts" (per flag), "top" (the worst rows: image_id, group,
        estimate, flags, reason), "groups" (worst first: group, images, estimate, lowest, flagged,
        reasons), "estimate" (the leaderboard estimate: mean, half_width, low, high, images, groups,
        metric), "calibration" (cross-validated OOF figures), "csv", "html"}``; ``line`` is the
        one-line summary (``pipeline.review.suspicion.summary_line``) the ensemble command prints.
    """
    cfg = cfg or QAConfig()
    if top < 0:
        raise PipelineError(f"--top {top}: give a number of images >= 0")
    source = open_source(layout.source(None, ensemble_name))
    metric = "mIoU" if source.multiclass else "Dice"
    fused = {split: fused_store(source, split) for split in ("oof", "test")}
    members = load_members(layout, source, fused["test"])
    oof, truth = measure_all(source, fused["oof"], members, "oof", progress, workers)
    flag(oof, cfg, metric, view_keys(source, oof))
    estimator, cv, figures = calibrate(oof, truth)
    rows, _ = measure_all(source, fused["test"], members, "test", progress, workers)
    flag(rows, cfg, metric, view_keys(source, rows))
    estimate(rows, estimator)
    ranked = rank(rows)
    summary = groups(ranked, estimator)
    board = {
        **est.leaderboard(
            np.array([r.estimate for r in ranked]),
            len(summary),
            figures["group_residual_sd"],
            figures["groups"],
        ),
        "metric": metric,
    }
    folder = qa_path(layout, ensemble_name)
    shown = gallery_rows(ranked, summary, top)
    thumbs = write_thumbnails(folder, source, fused["test"], members, shown, metric)
    atomic_write_text(folder / "qa.csv", csv_images(ranked))
    atomic_write_text(folder / "groups.csv", csv_groups(summary))
    atomic_write_text(folder / "oof.csv", csv_oof(oof, truth, cv))
    atomic_write_text(
        folder / "calibration.json",
        json.dumps(
            {"estimator": estimator.to_json(), "oof": figures, "leaderboard": board}, indent=2
        ),
    )
    line = summary_line(
        ranked, str(folder / "index.html"), summary[0] if summary else None, metric, board
    )
    atomic_write_text(
        folder / "index.html",
        html_text(ensemble_name, line, metric, summary, shown, thumbs, ranked, figures, board, cfg),
    )
    return _summary(line, ranked, summary, board, figures, folder, top)


def _summary(
    line: str,
    ranked: list[ImageQA],
    summary: list[GroupQA],
    board: dict,
    figures: dict,
    folder: Path,
    top: int,
) -> dict:
    flagged = [r for r in ranked if r.flags]
    return {
        "line": line,
        "images": len(ranked),
        "flagged": len(flagged),
        "counts": {k: sum(k in r.flags for r in flagged) for k in FLAG_NAMES},
        "top": [
            {
                "image_id": r.image_id,
                "group": r.group,
                "estimate": r.estimate,
                "flags": r.flags,
                "reason": short_reason(r),
            }
            for r in ranked[:top]
        ],
        "groups": [
            {
                "group": g.group,
                "images": g.images,
                "estimate": g.estimate,
                "lowest": g.lowest,
                "flagged": g.flagged,
                "reasons": g.reasons,
            }
            for g in summary
        ],
        "estimate": board,
        "calibration": figures,
        "csv": str(folder / "qa.csv"),
        "html": str(folder / "index.html"),
    }


def qa_path(layout: Layout, ensemble_name: str) -> Path:
    """Where ``run_qa`` writes (``artifacts/ensembles/<name>/qa/``)."""
    return layout.ensemble(ensemble_name).qa_dir()
