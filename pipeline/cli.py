"""The ``pipeline`` command: parse -> load config -> call one stage -> print a rich summary."""
from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import click
from rich.table import Table

from pipeline import __version__
from pipeline.config import dump_config, load_config
from pipeline.console import console, progress_bar
from pipeline.errors import PipelineError
from pipeline.paths import Layout


class PipelineGroup(click.Group):
    """Prints a PipelineError as one line (``Error: ...``) with exit code 1, no traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except PipelineError as err:
            raise click.ClickException(str(err)) from None


def config_argument(func):
    """CONFIG path plus repeatable ``--set a.b=value`` overrides."""
    func = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                        help="Override a config value, e.g. --set folds.k=5 (repeatable).")(func)
    return click.argument("config", type=click.Path(dir_okay=False, path_type=Path))(func)


def _parse_size(_ctx, _param, value: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected WIDTHxHEIGHT, e.g. 480x320") from None
    return width, height


@click.group(cls=PipelineGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="segfuse")
def cli() -> None:
    """segfuse: K-fold segmentation for competitions (folds -> train -> predict -> tune -> ensemble)."""


@cli.command("config")
@config_argument
def config_cmd(config: Path, overrides: tuple[str, ...]) -> None:
    """Print the resolved config (base: inheritance and --set applied, validated)."""
    click.echo(dump_config(load_config(config, overrides)), nl=False)


@cli.command("folds")
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
        console.print(f"snap_to_palette: {sum(snapped.values())} pixels in {len(snapped)} masks were mapped to "
                      "their nearest class colour")
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
        table.add_row(label, str(images[fold]), str(len(groups[fold])), f"{area[fold] / images[fold]:.3f}")
    console.print(table)


@cli.command("train")
@config_argument
@click.option("--fold", default="all", show_default=True, help="Fold number to train, or 'all'.")
@click.option("--force", is_flag=True, help="Retrain finished folds from scratch.")
def train_cmd(config: Path, overrides: tuple[str, ...], fold: str, force: bool) -> None:
    """Train K-fold models at every configured resolution (resumable; torchrun for DDP)."""
    from pipeline.console import RichReporter
    from pipeline.stages.train import run_train
    from pipeline.train.dist import init_distributed, shutdown_distributed

    cfg = load_config(config, overrides)
    ctx = init_distributed(cfg.train.device)
    try:
        results = run_train(cfg, Layout(), fold, force, ctx,
                            reporter_for=lambda run, k: RichReporter(run, k, enabled=ctx.main))
    finally:
        shutdown_distributed()
    if not ctx.main:
        return
    table = Table(title="training summary")
    for col in ("run", "fold", "best Dice", "best epoch", "epochs", "img/s", "time"):
        table.add_column(col, justify="right")
    for r in results:
        note = " (done before)" if r.skipped else ""
        table.add_row(r.run, str(r.fold), f"{r.best_dice:.4f}", str(r.best_epoch), f"{r.epochs}{note}",
                      f"{r.img_per_s:.1f}", f"{r.seconds:.0f}s")
    console.print(table)


@cli.command("predict")
@config_argument
@click.option("--fold", default="all", show_default=True, help="Fold number, or 'all'.")
@click.option("--split", type=click.Choice(["oof", "test", "both"]), default="both", show_default=True)
@click.option("--tta", type=click.Choice(["none", "hflip", "flip", "d4"]), default=None,
              help="Test-time augmentation (default: predict.tta of the config).")
@click.option("--force", is_flag=True, help="Recompute stores from scratch.")
def predict_cmd(config: Path, overrides: tuple[str, ...], fold: str, split: str, tta: str | None, force: bool) -> None:
    """Write out-of-fold and test probability stores (flip TTA, resumable)."""
    from pipeline.stages.predict import run_predict

    cfg = load_config(config, overrides)
    reports = run_predict(cfg, Layout(), fold, split, tta, force, progress_for=progress_bar)
    for report in reports:
        metric = report.oof.get("metric", "dice") if report.oof else "dice"
        what = "OOF Dice at threshold 0.5" if metric == "dice" else "OOF mIoU (argmax)"
        table = Table(title=f"{report.run}: {what} (TTA {report.tta})")
        for col in ("fold", "images", "no TTA", "TTA", "gain"):
            table.add_column(col, justify="right")
        rows = [(str(k), v) for k, v in sorted(report.folds.items())]
        if report.oof:
            rows.append(("all", report.oof))
        for label, v in rows:
            table.add_row(label, str(v["images"]), f"{v['score_plain']:.4f}", f"{v['score']:.4f}",
                          f"{v['score'] - v['score_plain']:+.4f}")
        console.print(table)
        if report.oof.get("iou"):
            ious = ", ".join(f"{k} {'-' if v is None else f'{v:.3f}'}" for k, v in report.oof["iou"].items())
            console.print(f"OOF per-class IoU: {ious}; pixel accuracy {report.oof['acc']:.4f}; "
                          f"mean CE {report.oof['ce']:.4f}")
        if report.test_images:
            console.print(f"test store: {report.test_images} images (mean of the fold models)")
        for note in report.notes:
            console.print(f"note: {note}")


@cli.command("tune")
@click.option("--run", "run", default=None, help="Run name (artifacts/runs/<run>).")
@click.option("--ensemble", default=None, help="Ensemble name (artifacts/ensembles/<name>).")
@click.option("--cleanup/--no-cleanup", default=True, show_default=True,
              help="Evaluate largest-component + hole filling on OOF (kept only if it helps).")
def tune_cmd(run: str | None, ensemble: str | None, cleanup: bool) -> None:
    """Find the threshold (and min area) that maximise OOF Dice, exactly."""
    from pipeline.stages.tune import run_tune

    with progress_bar("histograms", None) as advance:
        out = run_tune(Layout(), run, ensemble, cleanup, advance)
    table = Table(title=f"{out['source']}: exact OOF search over {out['images']} images")
    for col in ("class", "threshold", "min area", "Dice @0.5", "Dice tuned", "gain", "fold thr. spread"):
        table.add_column(col, justify="right")
    for ch in out["channels"]:
        table.add_row(ch["class"], f"{ch['threshold']:.4f}", f"{ch['min_area']:g}", f"{ch['oof_dice_at_0.5']:.5f}",
                      f"{ch['oof_dice_tuned']:.5f}", f"{ch['gain']:+.5f}", f"{ch['threshold_spread']:.3f}")
    console.print(table)
    for ch in out["channels"]:
        for f in ch["per_fold"]:
            console.print(f"  {ch['class']} fold {f['fold']}: best threshold {f['best_threshold']:.3f}, Dice @0.5 "
                          f"{f['dice_half']:.5f}, at tuned {f['dice_tuned']:.5f}")
        if ch["warning"]:
            console.print(f"[yellow]warning[/yellow]: {ch['class']}: {ch['warning']}")
    if "cleanup" in out and "oof_dice_cleanup" in out:
        verdict = "kept" if out["cleanup"] else "not kept"
        console.print(f"clean-up (largest component + fill holes): OOF Dice {out['oof_dice_cleanup']:.5f} ({verdict})")
    console.print(f"wrote {out['source']}/thresholds.json and threshold_curve.png")


@cli.command("ensemble")
@config_argument
@click.option("--name", default=None, help="Submission name (default: the ensemble's name).")
@click.option("--overwrite", is_flag=True, help="Replace an existing submission of that name.")
def ensemble_cmd(config: Path, overrides: tuple[str, ...], name: str | None, overwrite: bool) -> None:
    """Fuse runs, tune on fused OOF, write a validated submission under submissions/."""
    from pipeline.stages.ensemble import run_ensemble

    s = run_ensemble(config, overrides, Layout(), name, overwrite, progress_for=progress_bar)
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
        console.print(f"ensemble OOF Dice {oof} at threshold {s['threshold']:.4f}, min_area {s['min_area']:g}, "
                      f"clean-up {s['cleanup']}")
    console.print(f"wrote {s['path']} ({s['rows']} rows, validated) in {s['seconds']:.0f}s")
    if s.get("qa"):
        console.print(s["qa"])


@cli.command("validate")
@click.argument("submission", type=click.Path(path_type=Path))
@click.option("--sample", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="sample_submission.csv giving the expected ids and order.")
@click.option("--format", "format_name", default=None, help="Submission format (carvana, severstal).")
@click.option("--size", default=None, callback=lambda c, p, v: _parse_size(c, p, v)[::-1] if v else None,
              help="Image WIDTHxHEIGHT when validating with --sample (default: the format's).")
def validate_cmd(submission: Path, sample: Path | None, format_name: str | None, size) -> None:
    """Check a submission: header, ids once and in order, well-formed RLE, round trip."""
    from pipeline.stages.validate import validate_submission

    problems, fmt = validate_submission(submission, sample, format_name, size)
    if problems:
        for problem in problems:
            console.print(f"[red]invalid[/red] {problem}")
        raise PipelineError(f"{submission}: {len(problems)} problem(s); first: {problems[0]}")
    console.print(f"{submission}: valid {fmt} submission")


def print_summary(runs: list[dict], ensemble: dict | None) -> None:
    """Per-run fold Dice, TTA gain, tuned threshold; ensemble vs best member (OOF Dice)."""
    table = Table(title="summary (OOF = out-of-fold Dice over all labelled images)")
    for col in ("run / ensemble", "fold Dice (train val)", "OOF no TTA", "OOF TTA", "TTA gain", "threshold",
                "OOF tuned"):
        table.add_column(col, justify="right")

    def fmt(value, spec=".4f"):
        return "-" if value is None else format(value, spec)

    for r in runs:
        folds = " ".join(f"{d:.4f}" for _, d in sorted(r["fold_dice"].items()))
        gain = None if r["oof_dice_tta"] is None or r["oof_dice_plain"] is None else \
            r["oof_dice_tta"] - r["oof_dice_plain"]
        table.add_row(r["run"], folds, fmt(r["oof_dice_plain"]), fmt(r["oof_dice_tta"]), fmt(gain, "+.4f"),
                      fmt(r["threshold"]), fmt(r["oof_dice_tuned"]))
    if ensemble:
        table.add_row(ensemble["ensemble"], "", "", "", "", fmt(ensemble["threshold"]), fmt(ensemble["oof_dice"]))
    console.print(table)
    best = max((r["oof_dice_tuned"] for r in runs if r["oof_dice_tuned"] is not None), default=None)
    if ensemble and ensemble["oof_dice"] is not None and best is not None:
        console.print(f"ensemble OOF Dice {ensemble['oof_dice']:.5f} vs best member {best:.5f} "
                      f"({ensemble['oof_dice'] - best:+.5f})")


@cli.command("pseudo")
@click.argument("ensemble")
@click.option("--round", "round_", type=int, required=True, help="Round number R: writes folds/pseudo_r<R>.csv.")
@click.option("--rule", type=click.Choice(["band", "entropy"]), default="band", show_default=True,
              help="band: share of pixels with lo<p<hi; entropy: mean pixel entropy (bits).")
@click.option("--tau", type=float, default=0.02, show_default=True, help="Keep images whose score is below tau.")
@click.option("--lo", type=float, default=0.1, show_default=True)
@click.option("--hi", type=float, default=0.9, show_default=True)
@click.option("--top-n", type=int, default=None, help="Keep at most the N most confident images.")
@click.option("--soft", is_flag=True, help="Write probabilities (soft targets) instead of hard masks.")
@click.option("--force", is_flag=True, help="Replace an existing table of this round.")
def pseudo_cmd(ensemble: str, round_: int, rule: str, tau: float, lo: float, hi: float, top_n: int | None,
               soft: bool, force: bool) -> None:
    """Pseudo-label confident test images of an ensemble (fold -1 rows for training)."""
    from pipeline.pseudo import PseudoRule
    from pipeline.stages.pseudo import run_pseudo

    with progress_bar("scoring", None) as advance:
        out = run_pseudo(Layout(), ensemble, round_, PseudoRule(rule, tau, lo, hi, top_n), soft, force, advance)
    console.print(f"round {round_}: {out['selected']} of {out['candidates']} test images selected by {rule} < {tau} "
                  f"-> {out['table']} (provenance beside it)")
    if not out["selected"]:
        best = min(out["scores"].values(), default=None)
        console.print(f"[yellow]warning[/yellow]: no image passed; the most confident scored {best:.4f} — raise "
                      "--tau (or use --top-n) to keep some")
    console.print(f"train with them: --set pseudo.table={out['table']} (mode batch, ratio 0.2 by default)")


@cli.command("compare")
@click.argument("baseline")
@click.argument("candidate")
def compare_cmd(baseline: str, candidate: str) -> None:
    """Fold-by-fold OOF Dice of two runs (e.g. without and with pseudo-labels): difference and spread."""
    from pipeline.stages.summary import compare_runs

    out = compare_runs(Layout(), baseline, candidate)
    table = Table(title=f"{candidate} vs {baseline} (OOF Dice per fold, {out['source']})")
    for col in ("fold", baseline, candidate, "difference"):
        table.add_column(col, justify="right")
    for f in out["folds"]:
        table.add_row(str(f["fold"]), f"{f['baseline']:.5f}", f"{f['candidate']:.5f}", f"{f['difference']:+.5f}")
    console.print(table)
    console.print(f"mean difference {out['mean']:+.5f} ± {out['std']:.5f} (std over {len(out['folds'])} folds; "
                  f"{out['better']} of {len(out['folds'])} folds better)")


@cli.command("import-annotations")
@click.argument("source", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["coco", "via"]), required=True,
              help="COCO instances JSON or VGG Image Annotator (VIA) JSON.")
@click.option("--images", "images_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder the file names in SOURCE are relative to.")
@click.option("--out", "out_root", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Dataset root to write: images/ (copies), masks/ (class-index PNGs), import.json.")
@click.option("--label-map", "label_map", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Control sheet CSV with columns source,source_id,source_name,class.")
@click.option("--classes", required=True, help="Project class names, background first: background,person,car.")
@click.option("--attribute", default="class", show_default=True, help="VIA region attribute holding the class.")
@click.option("--source", "source_name", default=None, help="Label-map 'source' of SOURCE [default: its file stem].")
@click.option("--crowd-value", type=click.IntRange(0, 255), default=None,
              help="COCO: paint iscrowd regions with this value (e.g. 255 = ignore) instead of their class.")
def import_annotations_cmd(source: Path, fmt: str, images_dir: Path, out_root: Path, label_map: Path, classes: str,
                           attribute: str, source_name: str | None, crowd_value: int | None) -> None:
    """Rasterise COCO/VIA polygons and RLE into a folder dataset (images/ + class-index masks/)."""
    import yaml

    from pipeline.stages.import_annotations import run_import

    names = [c.strip() for c in classes.split(",")]
    with progress_bar("writing masks", None) as advance:
        s = run_import(source, fmt, images_dir, out_root, label_map, names, attribute, source_name,
                       crowd_value, progress=advance)
    console.print(f"wrote {s['images']} images + masks to {s['out_root']}: {s['annotations']} annotations, "
                  f"{s['empty_images']} images without any")
    table = Table()
    for col in ("class", "pixels", "share"):
        table.add_column(col, justify="right")
    total = max(sum(s["pixels"].values()), 1)
    for name, count in s["pixels"].items():  # classes in index order, then any extra value (crowd)
        table.add_row(name, str(count), f"{count / total:.2%}")
    console.print(table)
    console.print("dataset section that reads it (also in import.json):")
    click.echo(yaml.safe_dump({"dataset": s["dataset"]}, sort_keys=False), nl=False)


@cli.command("summary")
@click.argument("runs", nargs=-1)
@click.option("--ensemble", default=None, help="Also show this ensemble (artifacts/ensembles/<name>).")
def summary_cmd(runs: tuple[str, ...], ensemble: str | None) -> None:
    """Summarise runs (and an ensemble) from their artifacts."""
    from pipeline.stages.summary import ensemble_summary, run_summary

    layout = Layout()
    if not runs:
        runs = tuple(sorted(p.name for p in (layout.artifacts / "runs").glob("*") if p.is_dir()))
    print_summary([run_summary(layout, r) for r in runs], ensemble_summary(layout, ensemble) if ensemble else None)


@cli.command("demo")
@click.option("--config", type=click.Path(dir_okay=False, path_type=Path), default=Path("configs/demo.yaml"),
              show_default=True)
@click.option("--ensemble-config", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("configs/ensemble_demo.yaml"), show_default=True)
@click.option("--cars", default=6, show_default=True)
@click.option("--views", default=8, show_default=True)
@click.option("--test-cars", default=1, show_default=True)
@click.option("--size", default="480x320", show_default=True, callback=_parse_size, help="Demo image WIDTHxHEIGHT.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override the demo config.")
def demo_cmd(config: Path, ensemble_config: Path, cars: int, views: int, test_cars: int, size: tuple[int, int],
             overrides: tuple[str, ...]) -> None:
    """Run everything end to end on the built-in demo dataset (what `make demo` does)."""
    import time

    from pipeline.console import RichReporter
    from pipeline.stages.demo import run_demo
    from pipeline.stages.demo_data import DemoSpec

    started = time.time()
    out = run_demo(config, ensemble_config, DemoSpec(cars=cars, views=views, test_cars=test_cars, size=size),
                   overrides,
                   log=console.print, progress_for=progress_bar, reporter_for=lambda run, k: RichReporter(run, k))
    print_summary(out["runs"], out["ensemble"])
    sub = out["submission"]
    console.print(f"submission {sub['path']}: {sub['rows']} rows, validated; total {time.time() - started:.0f}s")


@cli.group("store")
def store_group() -> None:
    """Inspect probability stores."""


@store_group.command("info")
@click.argument("path", type=click.Path(file_okay=False, path_type=Path))
def store_info_cmd(path: Path) -> None:
    """Show what a probability store holds."""
    from pipeline.store import ProbStore

    store = ProbStore.open(path)
    m = store.manifest
    ids = store.ids()
    size = sum(p.stat().st_size for p in path.glob("*.u8z"))
    table = Table(show_header=False, title=str(path))
    for key, value in [("run", m.get("run")), ("split", m.get("split")), ("folds", m.get("folds")),
                       ("tta", m.get("tta")), ("classes", ", ".join(m.get("classes", []))),
                       ("resolution", m.get("resolution")), ("complete", m.get("complete")),
                       ("images", len(ids)), ("size on disk", f"{size / 1e6:.1f} MB"),
                       ("checkpoints", json.dumps(m.get("checkpoints", {})))]:
        table.add_row(key, str(value))
    console.print(table)


@cli.command("driving-data")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--frames", default=40, show_default=True, help="Labelled frames (drives of 4 frames).")
@click.option("--test-frames", default=0, show_default=True, help="Unlabelled frames (test_imgs/ or test/).")
@click.option("--size", default="582x437", show_default=True, callback=_parse_size, help="WIDTHxHEIGHT.")
@click.option("--seed", default=0, show_default=True, help="Random seed (same seed, same files).")
@click.option("--layout", type=click.Choice(["comma10k", "folder"]), default="comma10k", show_default=True,
              help="comma10k: imgs/ + colour masks/; folder: images/ + class-id masks/.")
def driving_data_cmd(out_dir: Path, frames: int, test_frames: int, size: tuple[int, int], seed: int,
                     layout: str) -> None:
    """Generate synthetic dash-cam frames with comma10k's classes (road, lanes, undrivable, movable, my car)."""
    from pipeline.stages.driving_data import DrivingSpec, write_driving

    spec = DrivingSpec(frames=frames, size=size, seed=seed, layout=layout, test_frames=test_frames)
    with progress_bar("rendering", frames + test_frames) as advance:
        info = write_driving(out_dir, spec, advance)
    console.print(f"wrote {info['train']} labelled + {info['test']} test frames from {info['drives']} drives "
                  f"({size[0]}x{size[1]}, {layout} layout) to {out_dir}")


@cli.command("demo-data")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--cars", default=8, show_default=True, help="Labelled cars (16 views each by default).")
@click.option("--views", default=16, show_default=True, help="Views per car around the turntable.")
@click.option("--test-cars", default=2, show_default=True, help="Unlabelled cars in test/.")
@click.option("--size", default="480x320", show_default=True, callback=_parse_size, help="WIDTHxHEIGHT.")
@click.option("--seed", default=0, show_default=True, help="Random seed (same seed, same files).")
def demo_data_cmd(out_dir: Path, cars: int, views: int, test_cars: int, size: tuple[int, int], seed: int) -> None:
    """Generate a synthetic dataset in the exact Kaggle Carvana layout."""
    from pipeline.stages.demo_data import DemoSpec, write_demo

    spec = DemoSpec(cars=cars, views=views, test_cars=test_cars, size=size, seed=seed)
    with progress_bar("rendering", (cars + test_cars) * views) as advance:
        info = write_demo(out_dir, spec, advance)
    console.print(f"wrote {info['train']} labelled + {info['test']} test images ({size[0]}x{size[1]}) to {out_dir}")


@cli.command("show")
@click.option("--run", default=None, help="Run to show (artifacts/runs/<run>).")
@click.option("--ensemble", default=None, help="Ensemble to show (artifacts/ensembles/<name>).")
@click.option("--id", "ids", multiple=True, help="Image id to show (repeatable).")
@click.option("--worst", type=int, default=None, help="The K OOF images with the lowest Dice (mIoU if multi-class).")
@click.option("--random", "random_k", type=int, default=None, help="K random images of the split.")
@click.option("--split", type=click.Choice(["oof", "test"]), default="oof", show_default=True,
              help="oof: image | truth | prediction | errors; test: image | prediction | uncertainty.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="PNG to write [default: <run or ensemble folder>/show/<split>_<what>.png].")
@click.option("--seed", default=0, show_default=True, help="Seed of --random.")
@click.option("--width", default=1200, show_default=True, help="Pixel width of the grid.")
def show_cmd(run: str | None, ensemble: str | None, ids: tuple[str, ...], worst: int | None, random_k: int | None,
             split: str, out: Path | None, seed: int, width: int) -> None:
    """One PNG grid of overlays (errors: red = predicted but wrong, blue = missed)."""
    from pipeline.stages.show import run_show

    with progress_bar("scoring OOF images", None) as advance:
        s = run_show(Layout(), run, ensemble, list(ids) or None, worst, random_k, split, out, seed, width, advance)
    if s["scores"]:
        table = Table(title=f"{len(s['images'])} {s['split']} images")
        for col in ("image", s["metric"]):
            table.add_column(col, justify="right")
        for image_id in s["images"]:
            table.add_row(image_id, f"{s['scores'][image_id]:.4f}")
        console.print(table)
    console.print(f"wrote {s['path']} ({len(s['images'])} {s['split']} images)")


@cli.command("qa")
@click.argument("ensemble")
@click.option("--top", default=12, show_default=True, help="Images in the HTML gallery (most suspicious first).")
@click.option("--min-agreement", default=0.9, show_default=True,
              help="Flag when the members' mean pairwise Dice (mIoU if multi-class) is below this.")
@click.option("--z-limit", default=3.5, show_default=True,
              help="Flag when |robust z of log area within the image's group| is above this.")
@click.option("--empty-fraction", default=0.001, show_default=True,
              help="Flag masks covering less than this fraction of the image.")
@click.option("--max-components", default=3, show_default=True, help="Flag binary masks with more components.")
@click.option("--workers", default=2, show_default=True, help="Threads measuring images.")
def qa_cmd(ensemble: str, top: int, min_agreement: float, z_limit: float, empty_fraction: float,
           max_components: int, workers: int) -> None:
    """Flag suspicious test predictions of an ensemble before submitting (CSV + HTML gallery)."""
    from pipeline.qa import QAConfig
    from pipeline.stages.qa import run_qa

    limits = QAConfig(min_agreement, z_limit, empty_fraction, max_components)
    with progress_bar("QA", None) as advance:
        s = run_qa(Layout(), ensemble, top, limits, advance, workers)
    table = Table(title=f"QA of {ensemble}: top {len(s['top'])} of {s['images']} test images")
    for col in ("rank", "image", "group", "score", "flags", "worst reason"):
        table.add_column(col, justify="right")
    for rank, r in enumerate(s["top"], start=1):
        table.add_row(str(rank), r["image_id"], r["group"], f"{r['score']:.2f}", ", ".join(r["flags"]) or "-",
                      r["reason"])
    console.print(table)
    console.print(s["line"])


@cli.command("report")
@click.argument("run")
def report_cmd(run: str) -> None:
    """Static HTML report of a run: fold curves and results, OOF scores, threshold search, overlay grids."""
    from pipeline.stages.report import run_report

    path = run_report(Layout(), run)
    console.print(f"wrote {path} (self-contained; links are relative to the run folder)")


@cli.command("video")
@click.argument("run")
@click.argument("src", metavar="INPUT", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("dst", metavar="OUTPUT", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--batch", type=click.IntRange(min=1), default=8, show_default=True, help="Frames per forward pass.")
@click.option("--alpha", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Weight of the colour map in the blend panel.")
@click.option("--tta", type=click.Choice(["none", "hflip"]), default="none", show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
def video_cmd(run: str, src: Path, dst: Path, batch: int, alpha: float, tta: str, device: str) -> None:
    """Segment a video with RUN: each frame becomes original | colour map | blend (3x wide, same fps)."""
    from pipeline.stages.video import run_video

    out = run_video(Layout(), run, src, dst, batch, alpha, tta, device, progress_for=progress_bar)
    console.print(f"wrote {out['output']}: {out['frames']} frames, {out['width']}x{out['height']} at "
                  f"{out['fps']:g} fps (run {out['run']}, decision {out['decision']}) in {out['seconds']:.0f}s")


@cli.command("serve")
@click.argument("run")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on (0.0.0.0: all).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="0: any free port.")
@click.option("--max-mb", type=click.FloatRange(min=0, min_open=True), default=20.0, show_default=True,
              help="Largest accepted upload in MB (larger requests get 413).")
@click.option("--tta", type=click.Choice(["none", "hflip"]), default="none", show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
def serve_cmd(run: str, host: str, port: int, max_mb: float, tta: str, device: str) -> None:
    """Serve RUN over HTTP: GET /health, POST /predict (multipart 'image'; ?format=png|rle). Ctrl-C stops."""
    from pipeline.stages.serve import run_serve

    run_serve(Layout(), run, host, port, max_mb, device, tta, log=console.print)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="pipeline")
