"""Stage: fuse member runs -> tuned decision -> streamed, validated submission CSV.

``artifacts/ensembles/<name>/`` (``--name``, else the config's name): ``ensemble.yaml`` (resolved),
``config.yaml`` (the members' data config, so ``pipeline tune --ensemble`` works), ``oof/`` (fused
OOF store), ``test/`` (fused test store, optional), ``thresholds.json`` (the search, when one ran)
and ``decision.json`` (the decision the submission applied). ``submissions/<name>.csv[.gz]`` +
``<name>.json`` sidecar and a row in ``submissions/ledger.csv``.

The fused OOF store is reused only while its members' stores are the ones it was fused from: their
fingerprints are part of its header, so predicting a member again makes it stale
and it is fused anew.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path

import cv2
import numpy as np

from pipeline.config import Config, dump_config, load_config
from pipeline.config.schema import EnsembleConfig
from pipeline.data import open_dataset
from pipeline.decide import store_codec
from pipeline.decide.blend import (
    ArgmaxScorer,
    BinaryScorer,
    CleanupScorer,
    fit_weights,
    fuse_stored,
    normalized,
)
from pipeline.decide.decision import AnyDecision, Decision, Fixed
from pipeline.decide.ensemble_decision import decide_ensemble
from pipeline.decide.fingerprint import store_fingerprint
from pipeline.decide.search import oof_folds
from pipeline.decide.store import ProbStore
from pipeline.errors import PipelineError
from pipeline.fsio import atomic_write_text, read_json
from pipeline.model.task import make_task
from pipeline.output.checks import validate_file, validate_mask_folder
from pipeline.output.formats import encode_rows, get_format
from pipeline.output.masks import mask_png, output_lut
from pipeline.output.writers import expected_image_ids, make_writer, write_sidecar_and_ledger
from pipeline.paths import EnsembleDir, Layout


@dataclass
class Member:
    run: str
    cfg: Config
    oof: ProbStore
    test: ProbStore
    report: dict


def load_members(ecfg: EnsembleConfig, layout: Layout) -> list[Member]:
    members = []
    for m in ecfg.members:
        run_dir = layout.run(m.run)
        if not run_dir.exists():
            raise PipelineError(
                f"ensemble member '{m.run}': {run_dir.path} not found; train and predict it first"
            )
        report = read_json(
            run_dir.predict_report(), f"rerun 'pipeline predict' for '{m.run}'", optional=True
        )
        oof, test = ProbStore.open(run_dir.store("oof")), ProbStore.open(run_dir.store("test"))
        for store in (oof, test):
            if not store.complete:
                raise PipelineError(
                    f"{store.path}: ensemble member '{m.run}': {store.incomplete_reason()}"
                )
        members.append(Member(m.run, load_config(run_dir.config()), oof, test, report))
    data = {json.dumps(m.cfg.dataset.model_dump(), sort_keys=True) for m in members}
    if len(data) > 1:
        raise PipelineError(
            "ensemble members were trained on different datasets; fuse runs of one dataset only"
        )
    classes = {tuple(m.oof.manifest["classes"]) for m in members}
    if len(classes) > 1:
        raise PipelineError(f"ensemble members predict different classes: {sorted(classes)}")
    return members


def _oof_images(members: list[Member], dataset):
    by_id = {s.image_id: s for s in dataset.train}
    ids = members[0].oof.ids()
    for m in members[1:]:
        if sorted(m.oof.ids()) != sorted(ids):
            raise PipelineError(
                f"OOF stores of '{members[0].run}' and '{m.run}' hold different images; "
                "were they trained on the same folds?"
            )

    def images():  # as stored: weights are judged on what fuse_entries makes (the fused store)
        for image_id in ids:
            entries = [m.oof.read_stored(image_id) for m in members]
            yield entries, dataset.read_mask(by_id[image_id])

    return ids, images


def choose_weights(ecfg: EnsembleConfig, members: list[Member], dataset) -> np.ndarray:
    if ecfg.weights == "equal":
        return normalized([1.0] * len(members))
    if ecfg.weights == "fixed":
        if sum(m.weight for m in ecfg.members) <= 0:
            raise PipelineError("ensemble weights: fixed needs at least one member weight > 0")
        return normalized(m.weight for m in ecfg.members)
    if len(members) == 1:
        return np.ones(1)
    _, images = _oof_images(members, dataset)
    task = make_task(dataset.classes, dataset.ignore_index)
    binary = (
        BinaryScorer if ecfg.cleanup is False else CleanupScorer
    )  # judged under the final decision
    scorer = (lambda: ArgmaxScorer(task)) if task.multiclass else binary
    weights, _ = fit_weights(
        images, len(members), ecfg.fit_grid, ecfg.fit_rounds, ecfg.fusion, scorer
    )
    return weights


def write_fused_oof(
    ecfg: EnsembleConfig, members: list[Member], weights: np.ndarray, folder: EnsembleDir
) -> None:
    """Fuse the members' OOF stores; a fused store made from exactly these member stores is
    resumed."""
    ids = members[0].oof.ids()
    header = {
        "run": folder.name,
        "split": "oof",
        "folds": members[0].oof.manifest["folds"],
        "tta": "ensemble",
        "classes": members[0].oof.manifest["classes"],
        "resolution": "model",
        "checkpoints": {
            m.run: {
                "oof": m.oof.manifest["checkpoints"],
                "weight": float(w),
                "fusion": ecfg.fusion,
                "store": store_fingerprint(m.oof),
            }
            for m, w in zip(members, weights, strict=True)
        },
    }
    store = ProbStore.create(folder.store("oof"), header)
    for image_id in ids:
        if not store.has(image_id):
            store.write(
                image_id, *fuse_stored([m.oof for m in members], image_id, weights, ecfg.fusion)
            )
    store.finalize([(i, *members[0].oof.shapes()[i]) for i in ids])


def decide(
    ecfg: EnsembleConfig, cfg: Config, layout: Layout, folder: EnsembleDir, dataset
) -> tuple[AnyDecision, dict]:
    """The decision on the fused OOF store: what ``ecfg`` fixes held fixed, the rest searched
    (``decide_ensemble``, as ``pipeline tune --ensemble`` does); writes ``decision.json``."""
    store = ProbStore.open(folder.store("oof"))
    fold_of = oof_folds(layout.folds_csv(cfg.dataset.name), store, dataset)
    task = make_task(dataset.classes, dataset.ignore_index)
    return decide_ensemble(folder, store, dataset, fold_of, Fixed.of(ecfg), task, "ensemble")


# ---- the streamed test pass (module-level state so worker processes can use it) -----------------
_STATE: dict = {}


def _init_worker(state: dict) -> None:
    _STATE.clear()
    _STATE.update(state)
    _STATE["members"] = [ProbStore.open(p) for p in state["member_paths"]]
    _STATE["fused"] = ProbStore.open(state["fused_path"]) if state["fused_path"] else None


def _encode_image(image_id: str) -> list:
    """CSV rows, or (file name, PNG bytes) for mask-image formats, of one test image."""
    s = _STATE
    fused, original = fuse_stored(s["members"], image_id, s["weights"], s["fusion"])
    if s["fused"] is not None:
        s["fused"].write(image_id, fused, original)
    fused = store_codec.resize(fused, original)
    decision, fmt = s["decision"], s["format"]
    if fmt.kind != "csv":
        name = fmt.id_template.format(image_id=image_id)
        return [(name, mask_png(decision.label(fused), fmt.kind, s["lut"]))]
    if (
        isinstance(decision, Decision) and not fmt.per_class
    ):  # binary fast path: threshold + RLE in one pass
        return [(fmt.row_ids(image_id, 2)[0], decision.rle(fused[0], fmt.order) or fmt.empty)]
    return encode_rows(fmt, image_id, decision.masks(fused))


def stream_test(ids: list[str], state: dict, workers: int, writer, progress=None) -> None:
    if workers <= 1:
        _init_worker(state)
        results = map(_encode_image, ids)
        for rows in results:
            writer.write(rows)
            if progress:
                progress(1)
        return
    # fork: workers start in milliseconds with everything imported
    # (spawn re-imports torch: seconds each)
    method = "fork" if "fork" in get_all_start_methods() else "spawn"
    # One OpenCV thread per worker (the workers are the parallelism), set here before forking: a
    # forked worker that reconfigures the thread pool it inherited can hang on its locks (it did).
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        with get_context(method).Pool(workers, initializer=_init_worker, initargs=(state,)) as pool:
            for rows in pool.imap(_encode_image, ids, chunksize=4):
                writer.write(rows)
                if progress:
                    progress(1)
    finally:
        cv2.setNumThreads(threads)


def _test_state(
    ecfg: EnsembleConfig,
    members: list[Member],
    weights,
    decision,
    fmt,
    folder: EnsembleDir,
    dataset,
) -> dict:
    """What the test pass (possibly in worker processes) needs; creates the fused test store."""
    fused_path = None
    if ecfg.save_test_store:
        test = members[0].test.manifest
        header = {
            "run": folder.name,
            "split": "test",
            "folds": test["folds"],
            "tta": "ensemble",
            "classes": test["classes"],
            "resolution": "model",
            "checkpoints": {
                m.run: {"test": m.test.manifest["checkpoints"], "weight": float(w)}
                for m, w in zip(members, weights, strict=True)
            },
        }
        fused_path = str(ProbStore.create(folder.store("test"), header, force=True).path)
    return {
        "member_paths": [str(m.test.path) for m in members],
        "fused_path": fused_path,
        "weights": weights,
        "fusion": ecfg.fusion,
        "decision": decision,
        "format": fmt,
        "lut": output_lut(dataset, fmt.kind) if fmt.kind != "csv" else None,
    }


def _decision_fields(decision) -> dict:
    if isinstance(decision, Decision):
        return {
            "threshold": decision.threshold,
            "min_area": decision.min_area,
            "cleanup": decision.cleanup,
        }
    return {
        "threshold": list(decision.thresholds) or None,
        "min_area": list(decision.min_areas) or 0,
        "cleanup": False,
        "decision": decision.mode,
    }


def _check_test_ids(members: list[Member], ids: list[str]) -> None:
    for m in members:
        missing = [i for i in ids if not m.test.has(i)]
        if missing:
            raise PipelineError(
                f"{m.test.path}: no probabilities for test image '{missing[0]}'; "
                f"rerun 'pipeline predict' for '{m.run}'"
            )


def estimated_score(qa: dict) -> dict:
    """The QA's leaderboard estimate (mean of the test images' estimated scores, 95% interval) and
    how its calibration did on OOF (cross-validated by group)."""
    oof = qa["calibration"]
    return {
        **qa["estimate"],
        "oof_true_mean": oof["true_mean"],
        "oof_estimated_mean": oof["estimated_mean"],
        "oof_spearman": oof["spearman"],
    }


def run_ensemble(
    config_path: Path,
    overrides: tuple[str, ...],
    layout: Layout,
    name: str | None = None,
    overwrite: bool = False,
    progress_for=None,
    review: Callable[[Layout, str], dict] | None = None,
) -> dict:
    """Fuse, decide, stream the test set into a validated submission; returns the sidecar summary.
    ``review(layout, name)``: QA (the CLI and ``pipeline run`` pass ``stages.qa.run_qa``), run
    before the sidecar is written so its estimate lands there and in the ledger;
    None or ``qa: false`` skips it."""
    ecfg: EnsembleConfig = load_config(config_path, overrides, schema=EnsembleConfig)
    fmt = get_format(ecfg.format)
    members = load_members(ecfg, layout)
    cfg = members[0].cfg
    dataset = open_dataset(cfg.dataset)
    multiclass = dataset.num_classes > 2
    if fmt.name == "carvana" and multiclass:
        raise PipelineError(
            f"format 'carvana' is binary; for {dataset.num_classes} classes use severstal, "
            "png-index, png-colour or cityscapes"
        )
    folder = layout.ensemble(
        name or ecfg.name
    )  # --name: its own folder, not another name's (checked)
    writer = make_writer(layout.submissions, folder.name, fmt, ecfg.gzip, overwrite)
    atomic_write_text(folder.ensemble_config(), dump_config(ecfg))
    atomic_write_text(folder.config(), dump_config(cfg))
    started = time.time()
    weights = choose_weights(ecfg, members, dataset)
    write_fused_oof(ecfg, members, weights, folder)
    decision, tuned = decide(ecfg, cfg, layout, folder, dataset)
    ids = expected_image_ids(dataset)
    _check_test_ids(members, ids)
    state = _test_state(ecfg, members, weights, decision, fmt, folder, dataset)
    with writer:  # a temp file until complete, valid and with its sidecar; removed on any failure
        with progress_for("submission", len(ids)) as advance:
            stream_test(ids, state, ecfg.workers, writer, advance)
        writer.finish()
        if state["fused_path"]:
            sizes = [(s.image_id, *dataset.image_size(s)) for s in dataset.test]
            ProbStore.open(state["fused_path"]).finalize(sizes)
        problems = (
            validate_file(writer.staged, fmt, dataset)
            if fmt.kind == "csv"
            else validate_mask_folder(writer.staged, fmt, dataset, set(range(256)))
        )
        if problems:
            problem = problems[0].replace(str(writer.staged), str(writer.path))
            raise PipelineError(
                f"{writer.path}: the written submission failed validation: {problem}; "
                "nothing was written under that name"
            )
        summary = {
            "name": writer.path.name.split(".csv")[0],
            "ensemble": folder.name,
            "path": str(writer.path),
            "format": fmt.name,
            "members": [m.run for m in members],
            "weights": [float(w) for w in weights],
            "fusion": ecfg.fusion,
            **_decision_fields(decision),
            "metric": tuned.get("metric"),
            "oof_dice": tuned.get("oof_score"),
            "oof_dice_at_0.5": tuned.get("oof_dice_at_0.5"),
            "member_oof_dice": {
                m.run: m.report.get("oof", {}).get("score", m.report.get("oof", {}).get("dice"))
                for m in members
            },
            "rows": writer.rows,
            "images": len(ids),
            "seconds": round(time.time() - started, 1),
            "dataset": cfg.dataset.name,
            "run_config": str(folder.config()),
        }
        qa = review(layout, folder.name) if review and state["fused_path"] and ecfg.qa else None
        summary["qa"] = qa["line"] if qa else None
        summary["estimated_score"] = estimated_score(qa) if qa else None
        write_sidecar_and_ledger(layout.submissions, writer, summary, ecfg, layout.ledger())
        return summary
