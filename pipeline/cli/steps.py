"""CLI commands of the main job: config, folds, train, predict, tune, ensemble, validate,
store info."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import click
from rich.table import Table

from pipeline.cli.common import config_argument, parse_size
from pipeline.config import dump_config, load_config, names
from pipeline.console import console, progress_bar
from pipeline.errors import PipelineError
from pipeline.paths import Layout


@click.command("config")
@config_argument
def config_cmd(config: Path, overrides: tuple[str, ...]) -> None:
    """Print the resolved config (base: inheritance and --set applied, validated): an experiment
    config, an ensemble config (it has 'members') or a recipe (it has 'steps'; every step's config
    is validated too, as 'pipeline run' does before its first step)."""
    from pipeline.config.recipe import Recipe
    from pipeline.stages.run import check_steps

    resolved = load_config(config, overrides, schema=None)
    if isinstance(resolved, Recipe):
        check_steps(resolved, config)
    click.echo(dump_config(resolved), nl=False)


@click.command("folds")
@config_argument
def folds_cmd(config: Path, overrides: tuple[str, ...]) -> None:
    """Write leak-free K folds (grouped, stratified by mask area) to folds/<dataset>.csv."""
    from pipeline.data import open_dataset
    from pipeline.stages.folds import run_folds

    cfg = load_config(config, overrides)
    dataset = open_dataset(cfg.dataset)
    with progress_bar("reading masks", len(dataset.train)) as advance:
        path, rows = run_folds(cfg, Layout(), advance, dataset)
    snapped = getattr(dataset, "snapped", {})
    if snapped:
        console.print(
            f"snap_to_palette: {sum(snapped.values())} pixels in {len(snapped)} masks were mapped "
            "to their nearest class colour"
        )
    greyed = getattr(dataset, "greyed", {})
    if greyed:
        console.print(
            f"binary masks: {sum(greyed.values())} grey pixels in {len(greyed)} masks were neither "
            "black nor white; read as foreground when > 127"
        )
    console.print(f"wrote {path}: {len(rows)} images in {len({r.group for r in rows})} groups")
    table = Table()
    for col in ("fold", "images", "groups", "mean area"):
        table.add_column(col, justify="right")
    images, groups, area = Counter(), defaultdict(set), defaultdict(float)
    for r in rows:
        images[r.fold] += 1
        groups[r.fold].add(r.group)
        area[r.fold] += r.area
    for fold in sorted(images):
        label = "train-only" if fold < 0 else str(fold)
        table.add_row(
            label, str(images[fold]), str(len(groups[fold])), f"{area[fold] / images[fold]:.3f}"
        )
    console.print(table)


@click.command("train")
@config_argument
@click.option(
    "--fold",
    default="all",
    show_default=True,
    help="Fold number to train, 'all', or 'full' (every labelled image: the full-data refit).",
)
@click.option("--force", is_flag=True, help="Retrain finished folds from scratch.")
def train_cmd(config: Path, overrides: tuple[str, ...], fold: str, force: bool) -> None:
    """Train K-fold models at every configured resolution (resumable; torchrun for DDP)."""
    from pipeline.console import RichReporter
    from pipeline.stages.train import run_train
    from pipeline.train.dist import init_distributed, shutdown_distributed

    cfg = load_config(config, overrides)
    ctx = init_distributed(cfg.train.device)
    try:
        results = run_train(
            cfg,
            Layout(),
            fold,
            force,
            ctx,
            reporter_for=lambda run, k: RichReporter(run, k, enabled=ctx.main),
        )
    finally:
        shutdown_distributed()
    if not ctx.main:
        return
    table = Table(title="training summary")
    for col in ("run", "fold", "best Dice", "best epoch", "epochs", "img/s", "time"):
        table.add_column(col, justify="right")
    for r in results:
        note = " (done before)" if r.skipped else ""
        table.add_row(
            r.run,
            str(r.fold),
            f"{r.best_dice:.4f}",
            str(r.best_epoch),
            f"{r.epochs}{note}",
            f"{r.img_per_s:.1f}",
            f"{r.seconds:.0f}s",
        )
    console.print(table)


@click.command("predict")
@config_argument
@click.option("--fold", default="all", show_default=True, help="Fold number, or 'all'.")
@click.option(
    "--split", type=click.Choice(["oof", "test", "both"]), default="both", show_default=True
)
@click.option(
    "--tta",
    type=click.Choice(names.TTA_MODES),
    default=None,
    help="Test-time augmentation (default: predict.tta of the config).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Recompute stores from scratch (with --shard: that shard's images).",
)
@click.option(
    "--shard",
    default=None,
    metavar="I/N",
    help="With --split test: predict only shard I of N (by image id), e.g. on N machines.",
)
def predict_cmd(
    config: Path,
    overrides: tuple[str, ...],
    fold: str,
    split: str,
    tta: str | None,
    force: bool,
    shard: str | None,
) -> None:
    """Write out-of-fold and test probability stores (flip TTA, resumable)."""
    from pipeline.decide.store_shards import parse_shard
    from pipeline.stages.predict import run_predict

    part = parse_shard(shard) if shard is not None else None
    cfg = load_config(config, overrides)
    reports = run_predict(
        cfg, Layout(), fold, split, tta, force, progress_for=progress_bar, shard=part
    )
    for report in reports:
        metric = report.oof.get("metric", "dice") if report.oof else "dice"
        what = (
            f"OOF Dice at threshold {report.threshold:g} (train.threshold)"
            if metric == "dice"
            else "OOF mIoU (argmax)"
        )
        table = Table(title=f"{report.run}: {what} (TTA {report.tta})")
        for col in ("fold", "images", "no TTA", "TTA", "gain"):
            table.add_column(col, justify="right")
        rows = [(str(k), v) for k, v in sorted(report.folds.items())]
        if report.oof:
            rows.append(("all", report.oof))
        for label, v in rows:
            table.add_row(
                label,
                str(v["images"]),
                f"{v['score_plain']:.4f}",
                f"{v['score']:.4f}",
                f"{v['score'] - v['score_plain']:+.4f}",
            )
        console.print(table)
        if report.oof.get("iou"):
            ious = ", ".join(
                f"{k} {'-' if v is None else f'{v:.3f}'}" for k, v in report.oof["iou"].items()
            )
            console.print(
                f"OOF per-class IoU: {ious}; pixel accuracy {report.oof['acc']:.4f}; "
                f"mean CE {report.oof['ce']:.4f}"
            )
        if report.test_images:
            console.print(f"test store: {report.test_images} images (mean of the fold models)")
        for note in report.notes:
            console.print(f"note: {note}")


@click.command("tune")
@click.option("--run", "run", default=None, help="Run name (artifacts/runs/<run>).")
@click.option("--ensemble", default=None, help="Ensemble name (artifacts/ensembles/<name>).")
@click.option(
    "--cleanup/--no-cleanup",
    default=True,
    show_default=True,
    help="Evaluate largest-component + hole filling on OOF (kept only if it helps).",
)
def tune_cmd(run: str | None, ensemble: str | None, cleanup: bool) -> None:
    """Find the threshold (and min area) that maximise OOF Dice, exactly."""
    from pipeline.stages.tune import run_tune

    with progress_bar("histograms", None) as advance:
        out = run_tune(Layout(), run, ensemble, cleanup, advance)
    table = Table(title=f"{out['source']}: exact OOF search over {out['images']} images")
    for col in (
        "class",
        "threshold",
        "min area",
        "Dice @0.5",
        "Dice tuned",
        "gain",
        "fold thr. spread",
    ):
        table.add_column(col, justify="right")
    for ch in out["channels"]:
        table.add_row(
            ch["class"],
            f"{ch['threshold']:.4f}",
            f"{ch['min_area']:g}",
            f"{ch['oof_dice_at_0.5']:.5f}",
            f"{ch['oof_dice_tuned']:.5f}",
            f"{ch['gain']:+.5f}",
            f"{ch['threshold_spread']:.3f}",
        )
    console.print(table)
    for ch in out["channels"]:
        for f in ch["per_fold"]:
            console.print(
                f"  {ch['class']} fold {f['fold']}: best threshold {f['best_threshold']:.3f}, "
                f"Dice @0.5 {f['dice_half']:.5f}, at tuned {f['dice_tuned']:.5f}"
            )
        if ch["warning"]:
            console.print(f"[yellow]warning[/yellow]: {ch['class']}: {ch['warning']}")
    if "cleanup" in out and "oof_dice_cleanup" in out:
        verdict = "kept" if out["cleanup"] else "not kept"
        console.print(
            "clean-up (largest component + fill holes), judged jointly with the threshold: "
            f"{verdict}; decision threshold {out['threshold']:.4f}, min area {out['min_area']:g}, "
            f"clean-up {out['cleanup']}: OOF Dice {out['oof_dice_final']:.5f}"
        )
    console.print(f"wrote {out['thresholds']}, {out['decision']} and {out['curve']}")


@click.command("ensemble")
@config_argument
@click.option(
    "--name",
    default=None,
    help="Submission and ensemble folder name (default: the ensemble's name).",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing submission of that name.")
def ensemble_cmd(
    config: Path, overrides: tuple[str, ...], name: str | None, overwrite: bool
) -> None:
    """Fuse runs, tune on fused OOF, write a validated submission under submissions/."""
    from pipeline.stages.ensemble import run_ensemble
    from pipeline.stages.qa import run_qa

    s = run_ensemble(
        config, overrides, Layout(), name, overwrite, progress_for=progress_bar, review=run_qa
    )
    table = Table(title=f"ensemble {s['name']}: {len(s['members'])} members, fusion {s['fusion']}")
    for col in ("member", "weight", "OOF Dice @0.5 (TTA)"):
        table.add_column(col, justify="right")
    for run, weight in zip(s["members"], s["weights"], strict=True):
        dice = s["member_oof_dice"].get(run)
        table.add_row(run, f"{weight:.3f}", "-" if dice is None else f"{dice:.5f}")
    console.print(table)
    oof = "-" if s["oof_dice"] is None else f"{s['oof_dice']:.5f}"
    if s.get("decision"):
        rule = "argmax" if s["decision"] == "argmax" else f"per-class thresholds {s['threshold']}"
        console.print(f"ensemble OOF {s.get('metric')} {oof} ({rule})")
    else:
        console.print(
            f"ensemble OOF Dice {oof} at threshold {s['threshold']:.4f}, min_area "
            f"{s['min_area']:g}, clean-up {s['cleanup']}"
        )
    board = s.get("estimated_score")
    if board:
        console.print(
            f"OOF {board['metric']} {oof}, estimated test {board['metric']} {board['mean']:.4f} ± "
            f"{board['half_width']:.4f} (95%; {board['images']} test images, groups: "
            f"{board['groups']}; checked on OOF by group: estimated "
            f"{board['oof_estimated_mean']:.4f} vs true {board['oof_true_mean']:.4f}, "
            f"Spearman {board['oof_spearman']:.2f})"
        )
    console.print(f"wrote {s['path']} ({s['rows']} rows, validated) in {s['seconds']:.0f}s")
    if s.get("qa"):
        console.print(s["qa"])


@click.command("validate")
@click.argument("submission", type=click.Path(path_type=Path))
@click.option(
    "--sample",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="sample_submission.csv giving the expected ids and order.",
)
@click.option(
    "--format", "format_name", default=None, help="Submission format (carvana, severstal)."
)
@click.option(
    "--size",
    default=None,
    callback=lambda c, p, v: parse_size(c, p, v)[::-1] if v else None,
    help="Image WIDTHxHEIGHT when validating with --sample (default: the sidecar JSON's dataset; "
    "without either, RLE bounds cannot be checked and validation fails).",
)
def validate_cmd(submission: Path, sample: Path | None, format_name: str | None, size) -> None:
    """Check a submission: header, ids once and in order, well-formed RLE, round trip."""
    from pipeline.stages.validate import validate_submission

    problems, fmt = validate_submission(submission, sample, format_name, size)
    if problems:
        for problem in problems:
            console.print(f"[red]invalid[/red] {problem}")
        raise PipelineError(f"{submission}: {len(problems)} problem(s); first: {problems[0]}")
    console.print(f"{submission}: valid {fmt} submission")


@click.group("store")
def store_group() -> None:
    """Inspect probability stores."""


@store_group.command("info")
@click.argument("path", type=click.Path(file_okay=False, path_type=Path))
def store_info_cmd(path: Path) -> None:
    """Show what a probability store holds."""
    from pipeline.decide.store import ProbStore

    store = ProbStore.open(path)
    m = store.manifest
    ids = store.ids()
    size = sum(p.stat().st_size for p in path.glob(f"*{store.suffix}"))
    complete = (
        store.complete if store.complete or not store.shards else f"no: {store.incomplete_reason()}"
    )
    table = Table(show_header=False, title=str(path))
    for key, value in [
        ("format", m.get("format")),
        ("run", m.get("run")),
        ("split", m.get("split")),
        ("folds", m.get("folds")),
        ("tta", m.get("tta")),
        ("classes", ", ".join(m.get("classes", []))),
        ("resolution", m.get("resolution")),
        ("complete", complete),
        ("images", len(ids)),
        ("size on disk", f"{size / 1e6:.1f} MB"),
        ("checkpoints", json.dumps(m.get("checkpoints", {}))),
    ]:
        table.add_row(key, str(value))
    console.print(table)
