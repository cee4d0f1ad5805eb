"""Stage: out-of-fold and test probability stores of each run, with TTA, resumable.

``artifacts/runs/<run>/oof/``: each labelled image predicted by the model of the fold that held
it out. ``artifacts/runs/<run>/test/``: the mean of the fold models (and/or the full-data refit,
``predict.test_from``), image by image. A rerun skips images already stored by the same source
(``decide.store.Source``: checkpoint, TTA, resolved ``predict.precision``, the image file's size
and mtime); an entry any of these changed for is predicted again.
``artifacts/runs/<run>/predict_report.json``: OOF Dice per fold and overall, with and without TTA.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from torch.utils.data import DataLoader

from pipeline.config import Config
from pipeline.data import Dataset, Sample, open_dataset
from pipeline.data.splits import FoldRow, fold_ids, load_folds, select_folds
from pipeline.decide.store import ProbStore, Source, dequantize, quantize
from pipeline.decide.store_shards import Shard
from pipeline.errors import PipelineError
from pipeline.fsio import atomic_write_text, read_json
from pipeline.model import checkpoint
from pipeline.model.networks import load_trained
from pipeline.model.task import make_task
from pipeline.paths import Layout
from pipeline.predict.engine import Predictor, PredictSet, make_geometry
from pipeline.predict.runmodel import test_models
from pipeline.train.data import ArrayCache, array_cache
from pipeline.train.dist import resolve_device
from pipeline.train.provenance import check_fold_model, load_pseudo

OOF_IDENTITY = ("run", "split", "tta", "classes", "resolution")


@dataclass
class RunReport:
    run: str
    tta: str
    folds: dict[int, dict[str, float]] = field(
        default_factory=dict
    )  # fold -> {n, dice, dice_plain}
    oof: dict[str, float] = field(default_factory=dict)
    test_images: int = 0
    notes: list[str] = field(default_factory=list)
    threshold: float = (
        0.5  # binary Dice is scored at train.threshold, the threshold validation used
    )


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def _header(
    run: str, split: str, folds: list[int], tta: str, classes: list[str], checkpoints: dict
) -> dict:
    # resolution "model": entries keep the network's output size (padding cropped) and are resized
    # to the image's size when read, once per image (bench/store.py: 16x smaller, 4x faster to fuse)
    return {
        "run": run,
        "split": split,
        "folds": folds,
        "tta": tta,
        "classes": classes,
        "checkpoints": {str(k): v for k, v in checkpoints.items()},
        "resolution": "model",
    }


def _loader(samples: list[Sample], cache: ArrayCache, cfg: Config) -> DataLoader:
    return DataLoader(
        PredictSet(samples, cache),
        batch_size=cfg.predict.batch_size,
        shuffle=False,
        num_workers=cfg.predict.workers,
    )


def _maker(predictor: Predictor, tta: str, checkpoints) -> dict:
    """What makes a store entry besides the image: the checkpoint digest(s), TTA and the precision
    the forward pass runs in here (``auto`` resolved: bf16 on one machine is fp32 on another)."""
    return {"checkpoints": checkpoints, "tta": tta, "precision": predictor.precision.name}


def _write_all(
    predictor: Predictor,
    samples: list[Sample],
    store: ProbStore,
    cache: ArrayCache,
    cfg: Config,
    maker: dict,
    on_image=None,
    progress=None,
) -> None:
    """Predict and store every sample (in batches) as made by ``maker``;
    ``on_image(sample, plain)`` sees each."""
    for batch in _loader(samples, cache, cfg):
        for j, (merged, plain) in enumerate(
            predictor(batch, with_plain=on_image is not None, restore=False)
        ):
            sample = samples[int(batch["index"][j])]
            store.write(
                sample.image_id,
                quantize(merged),
                tuple(batch["original"][j].tolist()),
                Source(maker, sample.image_path),
            )
            if on_image:
                on_image(sample, plain)
            if progress:
                progress(1)


def _add_plain(model, task, samples, cache, cfg, device, acc) -> None:
    """No-TTA metrics of images stored by an earlier, interrupted run (recomputed without TTA)."""
    predictor = Predictor(
        [model],
        task,
        "none",
        device,
        cfg.predict.max_forward,
        cfg.predict.batch_size,
        cfg.predict.precision,
    )
    for batch in _loader(samples, cache, cfg):
        for j, (_, plain) in enumerate(predictor(batch, with_plain=True)):
            acc.add(plain, cache.original_mask(samples[int(batch["index"][j])]))


def _predict_fold(
    cfg: Config,
    model,
    task,
    val: list[Sample],
    store: ProbStore,
    cache: ArrayCache,
    tta: str,
    digest: str,
    progress=None,
) -> tuple[list[float], list[float]]:
    """Store the fold's held-out images (those not stored by this checkpoint ``digest``, TTA and
    precision yet); return metric sums (``state``) with and without TTA."""
    device = resolve_device(cfg.predict.device)
    predictor = Predictor(
        [model],
        task,
        tta,
        device,
        cfg.predict.max_forward,
        cfg.predict.batch_size,
        cfg.predict.precision,
    )
    maker = _maker(predictor, tta, digest)
    todo = [s for s in val if not store.has(s.image_id, Source(maker, s.image_path))]
    merged, plain, seen = task.accumulator(), task.accumulator(), set()

    def score(sample, plain_probs):
        plain.add(plain_probs, cache.original_mask(sample))
        seen.add(sample.image_id)

    _write_all(predictor, todo, store, cache, cfg, maker, score, progress)
    resumed = [s for s in val if s.image_id not in seen]
    if resumed:
        _add_plain(model, task, resumed, cache, cfg, device, plain)
    if progress:
        progress(len(resumed))
    for s in val:
        merged.add(dequantize(store.read(s.image_id)), cache.original_mask(s))
    return merged.state, plain.state


def _scores(task, merged_state, plain_state, classes: list[str], images: int) -> dict:
    """Report entry: the primary metric with and without TTA (+ Dice, + multi-class extras)."""
    merged, plain = (
        task.accumulator().result(merged_state, classes),
        task.accumulator().result(plain_state, classes),
    )
    out = {
        "images": images,
        "metric": task.primary,
        "score": merged[task.primary],
        "score_plain": plain[task.primary],
        "dice": merged["dice"],
        "dice_plain": plain["dice"],
    }
    out.update({k: v for k, v in merged.items() if k not in out and k != task.primary})
    return out


def predict_oof(
    cfg: Config,
    layout: Layout,
    run: str,
    rows: list[FoldRow],
    folds: list[int],
    tta: str,
    force: bool,
    report: RunReport,
    progress=None,
    dataset: Dataset | None = None,
) -> None:
    """Each fold's model predicts its held-out images into ``<run>/oof``; stale folds are redone."""
    dataset = dataset or open_dataset(cfg.dataset)
    by_id = {s.image_id: s for s in dataset.train}
    task = make_task(dataset.classes, dataset.ignore_index, cfg.train.threshold)
    all_folds = fold_ids(rows)
    store = ProbStore.create(
        layout.run(run).store("oof"),
        _header(run, "oof", all_folds, tta, dataset.classes, {}),
        identity=OOF_IDENTITY,
        force=force,
    )
    if store.replaced:
        report.notes.append(f"oof store replaced ({store.replaced})")
    recorded = dict(store.manifest.get("checkpoints", {}))
    total_merged, total_plain, total_images = None, None, 0
    for k in folds:
        model_path = layout.run(run).model(k)
        model, meta = load_trained(model_path)
        digest, geometry = file_hash(model_path), make_geometry(meta)
        val = [by_id[r.image_id] for r in rows if r.fold == k]
        if recorded.get(str(k)) not in (None, digest):  # its entries' source differs: redone
            report.notes.append(f"fold {k}: model changed, its OOF predictions were redone")
        recorded[str(k)] = digest
        store.update_manifest(checkpoints=recorded)
        cache = array_cache(cfg, layout.cache_dir(cfg.dataset.name, geometry), dataset, geometry)
        merged, plain = _predict_fold(cfg, model, task, val, store, cache, tta, digest, progress)
        report.folds[k] = _scores(task, merged, plain, dataset.classes, len(val))
        total_merged = (
            merged
            if total_merged is None
            else [a + b for a, b in zip(total_merged, merged, strict=True)]
        )
        total_plain = (
            plain
            if total_plain is None
            else [a + b for a, b in zip(total_plain, plain, strict=True)]
        )
        total_images += len(val)
    if set(folds) == set(all_folds):
        index = [(r.image_id, *dataset.image_size(by_id[r.image_id])) for r in rows if r.fold >= 0]
        store.finalize(index, {"folds": all_folds})
    report.oof = _scores(task, total_merged, total_plain, dataset.classes, total_images)


def predict_test(
    cfg: Config,
    layout: Layout,
    run: str,
    folds: list[int],
    tta: str,
    force: bool,
    report: RunReport,
    progress=None,
    dataset: Dataset | None = None,
    shard: Shard | None = None,
) -> None:
    """The test store: every test image, or those of ``shard``
    (the store completes with its last shard)."""
    dataset = dataset or open_dataset(cfg.dataset)
    if not dataset.test:
        report.notes.append("no test images in the dataset: test store skipped")
        return
    samples = [s for s in dataset.test if shard is None or shard.holds(s.image_id)]
    paths = test_models(cfg, layout.run(run), folds)
    loaded = [load_trained(path) for path in paths.values()]
    hashes = {k: file_hash(path) for k, path in paths.items()}
    task = make_task(dataset.classes, dataset.ignore_index, 0.5)
    store = ProbStore.create(
        layout.run(run).store("test"),
        _header(run, "test", list(paths), tta, dataset.classes, hashes),
        force=force and shard is None,
    )
    if store.replaced:
        report.notes.append(f"test store replaced ({store.replaced})")
    if (
        force and shard is not None
    ):  # only this shard's entries: other machines' shards may be copied in already
        store.remove([s.image_id for s in samples])
    geometry = make_geometry(loaded[0][1])
    cache = ArrayCache(dataset, geometry, None)  # test images are read once: no disk cache
    predictor = Predictor(
        [m for m, _ in loaded],
        task,
        tta,
        resolve_device(cfg.predict.device),
        cfg.predict.max_forward,
        cfg.predict.batch_size,
        cfg.predict.precision,
    )
    maker = _maker(predictor, tta, {str(k): v for k, v in hashes.items()})
    todo = [s for s in samples if not store.has(s.image_id, Source(maker, s.image_path))]
    if progress:
        progress(len(samples) - len(todo))
    _write_all(predictor, todo, store, cache, cfg, maker, None, progress)
    index = [(s.image_id, *dataset.image_size(s)) for s in samples]
    if shard is None:
        store.finalize(index)
    else:
        store.finalize_shard(shard, index)
        status = (
            "the store is complete"
            if store.complete
            else f"still to come: {store.incomplete_reason()}"
        )
        report.notes.append(
            f"test shard {shard}: {len(samples)} of {len(dataset.test)} images; {status}"
        )
    report.test_images = len(samples)


def _carry_oof(path: Path, report: RunReport) -> None:
    """Copy the OOF scores of an earlier report at ``path`` into ``report`` (a test-only prediction
    leaves the OOF store untouched, so its scores stay true); nothing when there is none or its TTA
    differs."""
    previous = read_json(path, optional=True)
    if (
        not previous
        or previous.get("tta") != report.tta
        or previous.get("threshold") != report.threshold
    ):
        return
    report.folds = {int(k): v for k, v in previous.get("folds", {}).items()}
    report.oof = dict(previous.get("oof", {}))


def _check_fold_models(
    cfg: Config,
    layout: Layout,
    run: str,
    rows: list[FoldRow],
    folds: list[int],
    dataset: Dataset,
    payloads: dict,
) -> None:
    """Each fold model predicts only images it did not train on: its fingerprint (config + fold
    images, what ``pipeline train`` checks) must match the folds table now (``payloads``: the
    loaded checkpoints by path). A folds table remade with another seed is one line, before any
    store is touched."""
    by_id = {s.image_id: s for s in dataset.train}
    table = layout.folds_csv(cfg.dataset.name)
    missing = [r.image_id for r in rows if r.image_id not in by_id]
    if missing:
        raise PipelineError(
            f"{table}: image '{missing[0]}' is not in the dataset; rerun 'pipeline folds'"
        )
    pseudo = load_pseudo(cfg, dataset)
    for k in folds:
        files = layout.run(run).fold(k)
        recorded = read_json(files.summary(), optional=True).get("fingerprint")
        train = [by_id[r.image_id] for r in rows if r.fold != k]
        val = [by_id[r.image_id] for r in rows if r.fold == k]
        trained = payloads[files.model()]["config"]
        check_fold_model(
            cfg, trained, recorded, train, val, pseudo, files.summary(), table, dataset
        )


def run_predict(
    cfg: Config,
    layout: Layout,
    fold: str = "all",
    split: str = "both",
    tta: str | None = None,
    force: bool = False,
    progress_for=None,
    shard: Shard | None = None,
) -> list[RunReport]:
    """Predict every run (resolution) of ``cfg``; returns one report per run (also written as JSON).

    ``shard``: only that part of the test set (``split`` must be "test"), so N machines share it.
    """
    if shard is not None and split != "test":
        raise PipelineError(f"--shard {shard} splits the test set: use it with --split test")
    tta = tta or cfg.predict.tta
    rows = load_folds(layout.folds_csv(cfg.dataset.name))
    folds = select_folds(fold_ids(rows), fold)
    reports = []
    dataset = open_dataset(cfg.dataset)
    for run in cfg.run_names():
        # Every model a split needs exists before any store is touched
        # (the test models: test_models).
        # ... and is readable: a damaged checkpoint fails here, before a complete store is reopened.
        needed = []
        if split in ("oof", "both"):
            missing = [k for k in folds if not layout.run(run).model(k).is_file()]
            if missing:
                raise PipelineError(
                    f"{layout.run(run).model(missing[0])}: not trained yet; "
                    f"run 'pipeline train' first"
                )
            needed += [layout.run(run).model(k) for k in folds]
        if split in ("test", "both") and dataset.test:
            needed += list(test_models(cfg, layout.run(run), folds).values())
        payloads = {path: checkpoint.load(path) for path in dict.fromkeys(needed)}
        if split in ("oof", "both"):
            _check_fold_models(cfg, layout, run, rows, folds, dataset, payloads)
        report = RunReport(run, tta, threshold=cfg.train.threshold)
        if split == "test":  # the OOF scores of the last OOF prediction still hold: keep them
            _carry_oof(layout.run(run).predict_report(), report)
        if split in ("oof", "both"):
            total = sum(1 for r in rows if r.fold in folds)
            with progress_for(f"{run} oof", total) as advance:
                predict_oof(cfg, layout, run, rows, folds, tta, force, report, advance, dataset)
        if split in ("test", "both"):
            total = sum(1 for s in dataset.test if shard is None or shard.holds(s.image_id))
            with progress_for(
                f"{run} test" + (f" shard {shard}" if shard else ""), total
            ) as advance:
                predict_test(cfg, layout, run, folds, tta, force, report, advance, dataset, shard)
        if shard is None:  # a shard's report has no scores; the run's OOF report stays as it is
            path = layout.run(run).predict_report()
            atomic_write_text(path, json.dumps(report.__dict__, indent=2, default=str))
        reports.append(report)
    return reports
