"""Stage: train the fold x resolution grid of one config.

Each resolution is its own run ``artifacts/runs/<name>_<H>x<W>/``; each fold writes
``fold<k>/{model.pt, last.pt, history.csv, curve.png, config.yaml, summary.json}``.
A fold with ``summary.json`` is finished and skipped (``force`` retrains it); a fold with only
``last.pt`` resumes from its last completed epoch.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from pipeline.config import Config, dump_config
from pipeline.data import Sample, open_dataset
from pipeline.data.splits import fold_ids, load_folds, select_folds
from pipeline.decide.pseudo_labels import PseudoRow
from pipeline.errors import PipelineError
from pipeline.fsio import atomic_write_bytes, atomic_write_text
from pipeline.model import checkpoint
from pipeline.model.augment import Geometry
from pipeline.model.losses import class_balance_weights, make_loss
from pipeline.model.networks import build_model
from pipeline.model.task import make_task
from pipeline.paths import (
    FULL,  # --fold full: the refit on every labelled image
    Layout,
)
from pipeline.review.plots import training_curve
from pipeline.train.data import SegmentationSet, array_cache
from pipeline.train.dist import DistContext, resolve_device
from pipeline.train.loop import EpochRecord, FoldSetup, FoldTrainer
from pipeline.train.provenance import (  # noqa: F401 (trained_precision: re-exported)
    fingerprint,
    load_pseudo,
    trained_precision,
)
from pipeline.train.sampler import MixedBatchSampler

HISTORY_COLUMNS = ("epoch", "train_loss", "val_loss", "val_dice", "lr", "seconds", "img_per_s")


@dataclass
class FoldResult:
    run: str
    fold: int | str  # a fold number, or FULL
    best_epoch: int
    best_dice: float
    epochs: int
    seconds: float
    img_per_s: float
    skipped: bool = False
    best_score: float | None = None  # the primary metric (Dice, or mIoU for multi-class)
    metrics: dict | None = None
    fingerprint: str | None = None
    averages: dict | None = None  # {none|ema|swa: validation score after the last epoch}


EXTRA_COLUMNS = ("miou", "acc", "ce")  # multi-class only


def history_csv(history: list[EpochRecord]) -> str:
    extra = [k for k in EXTRA_COLUMNS if history and k in history[0].extra]
    lines = [",".join([*HISTORY_COLUMNS, *(f"val_{k}" for k in extra)])]
    for r in history:
        cells = [
            f"{r.epoch},{r.train_loss:.6f},{r.val_loss:.6f},{r.val_dice:.6f},{r.lr:.3e},"
            f"{r.seconds:.2f},{r.img_per_s:.2f}"
        ] + [f"{r.extra[k]:.6f}" for k in extra]
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"


def _summary(run: str, fold: int | str, history: list[EpochRecord], select: str) -> FoldResult:
    """The epoch that became ``model.pt``: the best validation score, or the last one."""
    scored = [r for r in history if not math.isnan(r.val_score)]  # NaN: no validation (full refit)
    best = max(scored, key=lambda r: r.val_score) if select == "best" and scored else history[-1]
    return FoldResult(
        run,
        fold,
        best.epoch,
        best.val_dice,
        len(history),
        sum(r.seconds for r in history),
        sum(r.img_per_s for r in history) / len(history),
        best_score=best.val_score,
        metrics={k: v for k, v in best.extra.items() if k != "averages"},
        averages=history[-1].extra.get("averages"),
    )


def loss_class_weights(cfg: Config, dataset, cache, train: list, task) -> torch.Tensor | None:
    """``loss.class_balance``'s per-class weights, counted on the fold's labelled training masks
    (None when it is off)."""
    if not cfg.loss.class_balance:
        return None
    if not task.multiclass:
        raise PipelineError(
            "loss.class_balance weights the classes of a multi-class dataset; set it to 0 "
            f"for the binary dataset '{cfg.dataset.name}'"
        )
    classes = len(dataset.classes)
    pixels, image_pixels = np.zeros(classes), np.zeros(classes)
    for sample in train:
        counts = np.bincount(cache.original_mask(sample).ravel(), minlength=256)[:classes]
        if dataset.ignore_index is not None and dataset.ignore_index < classes:
            counts[dataset.ignore_index] = 0
        pixels += counts
        image_pixels += np.where(counts > 0, counts.sum(), 0)
    weights = class_balance_weights(pixels, image_pixels, cfg.loss.class_balance)
    return torch.tensor(weights, dtype=torch.float32)


def _training_set(
    cfg: Config, train: list, pseudo: list[PseudoRow], dataset, cache, fold: int, ctx
):
    """Labelled + pseudo samples, and the batch sampler that mixes them (None: plain shuffling)."""
    seed = cfg.train.seed + 1000 * fold
    samples = train + [
        Sample(r.image_id, dataset.sample(r.image_id).image_path, r.group, Path(r.mask))
        for r in pseudo
    ]
    soft = {r.image_id for r in pseudo if r.soft}
    weights = {r.image_id: cfg.pseudo.weight for r in pseudo} if cfg.pseudo.mode == "weight" else {}
    crop = tuple(cfg.augment.crop) if cfg.augment.crop else None
    train_set = SegmentationSet(samples, cache, cfg.augment.preset, seed, soft, weights, crop)
    sampler = None
    if pseudo and cfg.pseudo.mode == "batch":
        sampler = MixedBatchSampler(
            len(train),
            len(pseudo),
            cfg.train.batch_size,
            cfg.pseudo.ratio,
            seed,
            ctx.rank,
            ctx.world,
        )
    return train_set, sampler


def full_epochs(cfg: Config, layout: Layout, run: str, rows) -> int:
    """Epochs of the full-data refit: ``train.full_epochs``, else what cross-validation chose.

    ``select: last`` trains every fold for ``train.epochs``, so the refit does too; ``select: best``
    takes the median best epoch of the run's finished folds (they must all be trained).
    """
    if cfg.train.full_epochs is not None:
        return cfg.train.full_epochs
    if cfg.train.select == "last":
        return cfg.train.epochs
    best = []
    for k in fold_ids(rows):
        done = layout.run(run).fold(k).summary()
        if not done.is_file():
            raise PipelineError(
                f"--fold full with train.select best: {done} is missing; train the folds first "
                "(pipeline train CONFIG) or set train.full_epochs"
            )
        best.append(json.loads(done.read_text())["best_epoch"])
    return int(np.median(best))


def train_fold(
    cfg: Config,
    layout: Layout,
    run: str,
    geometry: Geometry,
    fold: int | str,
    rows,
    dataset,
    ctx: DistContext,
    force: bool,
    reporter=None,
    pseudo: list[PseudoRow] = (),
) -> FoldResult:
    """Train one fold (validating on its images), or ``fold=FULL``: every labelled image,
    no validation."""
    full = fold == FULL
    files = layout.run(run).fold(fold)
    fold_dir = files.path
    by_id = {s.image_id: s for s in dataset.train}
    missing = [r.image_id for r in rows if r.image_id not in by_id]
    if missing:
        raise PipelineError(
            f"{layout.folds_csv(cfg.dataset.name)}: image '{missing[0]}' is not in the dataset; "
            "rerun 'pipeline folds'"
        )
    train = [by_id[r.image_id] for r in rows if full or r.fold != fold]
    val = [] if full else [by_id[r.image_id] for r in rows if r.fold == fold]
    if full:
        cfg = cfg.model_copy(deep=True)
        cfg.train.epochs = full_epochs(cfg, layout, run, rows)
    seed_index = 999 if full else fold  # seeds must stay non-negative (albumentations, samplers)
    print_ = fingerprint(cfg, train, val, pseudo)
    done = files.summary()
    if done.is_file() and not force and not checkpoint.readable(files.model()):
        force = (
            True  # finished once, but its model.pt is gone or damaged: not done; train it afresh
        )
    if done.is_file() and not force:
        finished = json.loads(done.read_text())
        if finished.get("fingerprint") != print_:
            raise PipelineError(
                f"{done}: this fold was trained with another config or other fold images; rerun "
                "with --force to retrain it (or use a new experiment name)"
            )
        return FoldResult(**{**finished, "skipped": True})
    if force and ctx.main and fold_dir.exists():
        shutil.rmtree(fold_dir)
    ctx.barrier()
    tcfg = cfg.train
    cache = array_cache(cfg, layout.cache_dir(cfg.dataset.name, geometry), dataset, geometry)
    torch.manual_seed(tcfg.seed + seed_index)
    task = make_task(dataset.classes, dataset.ignore_index, tcfg.threshold)
    train_set, sampler = _training_set(cfg, train, list(pseudo), dataset, cache, seed_index, ctx)
    setup = FoldSetup(
        cfg=cfg,
        run=run,
        fold=fold,
        last_path=files.last(),
        model_path=files.model(),
        model=build_model(cfg.model, task.outputs),
        loss_fn=make_loss(
            cfg.loss.name,
            cfg.loss.border_kernel,
            cfg.loss.border_factor,
            task.multiclass,
            loss_class_weights(cfg, dataset, cache, train, task),
        ),
        task=task,
        train_set=train_set,
        val_set=SegmentationSet(val, cache, "none", 0),
        cache=cache,
        device=resolve_device(tcfg.device, ctx),
        ctx=ctx,
        batch_sampler=sampler,
        fingerprint=print_,
    )
    trainer = FoldTrainer(setup, reporter)
    if ctx.main:
        atomic_write_text(files.config(), dump_config(cfg))
    trainer.resume()

    def on_epoch(history: list[EpochRecord]) -> None:
        atomic_write_text(files.history(), history_csv(history))
        atomic_write_bytes(files.curve(), training_curve(history, f"{run} {fold_dir.name}"))

    history = trainer.fit(on_epoch)
    result = _summary(run, fold, history, cfg.train.select)
    if ctx.main:
        atomic_write_text(done, json.dumps({**asdict(result), "fingerprint": print_}, indent=2))
    return result


def run_train(
    cfg: Config,
    layout: Layout,
    fold: str = "all",
    force: bool = False,
    ctx: DistContext | None = None,
    reporter_for=None,
) -> list[FoldResult]:
    """Train every selected fold at every resolution;
    ``reporter_for(run, fold)`` gives progress sinks."""
    ctx = ctx or DistContext()
    dataset = open_dataset(cfg.dataset)
    rows = load_folds(layout.folds_csv(cfg.dataset.name))
    pseudo = load_pseudo(cfg, dataset)
    folds = [FULL] if fold == FULL else select_folds(fold_ids(rows), fold)
    results = []
    for (height, width), run in zip(cfg.train.resolutions, cfg.run_names(), strict=True):
        geometry = Geometry(height, width, cfg.train.geometry)
        if ctx.main:
            atomic_write_text(layout.run(run).config(), dump_config(cfg))
        for k in folds:
            reporter = reporter_for(run, k) if reporter_for else None
            results.append(
                train_fold(
                    cfg, layout, run, geometry, k, rows, dataset, ctx, force, reporter, pseudo
                )
            )
    return results
