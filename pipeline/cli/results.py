"""CLI commands that look at results: show, qa, report, video, serve."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from pipeline.console import console, progress_bar
from pipeline.paths import Layout
from pipeline.review import limits


@click.command("show")
@click.option("--run", default=None, help="Run to show (artifacts/runs/<run>).")
@click.option("--ensemble", default=None, help="Ensemble to show (artifacts/ensembles/<name>).")
@click.option("--id", "ids", multiple=True, help="Image id to show (repeatable).")
@click.option(
    "--worst",
    type=int,
    default=None,
    help="The K OOF images with the lowest Dice (mIoU if multi-class).",
)
@click.option("--random", "random_k", type=int, default=None, help="K random images of the split.")
@click.option(
    "--split",
    type=click.Choice(["oof", "test"]),
    default="oof",
    show_default=True,
    help="oof: image | truth | prediction | errors; test: image | prediction | uncertainty.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="PNG to write [default: <run or ensemble folder>/show/<split>_<what>.png].",
)
@click.option("--seed", default=0, show_default=True, help="Seed of --random.")
@click.option("--width", default=1200, show_default=True, help="Pixel width of the grid.")
def show_cmd(
    run: str | None,
    ensemble: str | None,
    ids: tuple[str, ...],
    worst: int | None,
    random_k: int | None,
    split: str,
    out: Path | None,
    seed: int,
    width: int,
) -> None:
    """One PNG grid of overlays (errors: red = predicted but wrong, blue = missed)."""
    from pipeline.stages.show import run_show

    with progress_bar("scoring OOF images", None) as advance:
        s = run_show(
            Layout(),
            run,
            ensemble,
            list(ids) or None,
            worst,
            random_k,
            split,
            out,
            seed,
            width,
            advance,
        )
    if s["scores"]:
        table = Table(title=f"{len(s['images'])} {s['split']} images")
        for col in ("image", s["metric"]):
            table.add_column(col, justify="right")
        for image_id in s["images"]:
            table.add_row(image_id, f"{s['scores'][image_id]:.4f}")
        console.print(table)
    console.print(f"wrote {s['path']} ({len(s['images'])} {s['split']} images)")


@click.command("qa")
@click.argument("ensemble")
@click.option(
    "--top", default=12, show_default=True, help="Images in the HTML gallery (worst groups first)."
)
@click.option(
    "--min-agreement",
    default=0.9,
    show_default=True,
    help="Flag when the members' mean pairwise Dice (mIoU if multi-class) is below this.",
)
@click.option(
    "--z-limit",
    default=3.5,
    show_default=True,
    help="Flag when |robust z of log area within the image's group| is above this.",
)
@click.option(
    "--empty-fraction",
    default=0.001,
    show_default=True,
    help="Flag masks covering less than this fraction of the image.",
)
@click.option(
    "--max-components", default=3, show_default=True, help="Flag binary masks with more components."
)
@click.option("--workers", default=2, show_default=True, help="Threads measuring images.")
def qa_cmd(
    ensemble: str,
    top: int,
    min_agreement: float,
    z_limit: float,
    empty_fraction: float,
    max_components: int,
    workers: int,
) -> None:
    """Estimate every test image's score of an ensemble (calibrated on its OOF), flag and rank
    (CSV + HTML)."""
    from pipeline.review.suspicion import QAConfig
    from pipeline.stages.qa import run_qa

    limits = QAConfig(min_agreement, z_limit, empty_fraction, max_components)
    with progress_bar("QA", None) as advance:
        s = run_qa(Layout(), ensemble, top, limits, advance, workers)
    metric = s["estimate"]["metric"]
    groups = Table(title=f"QA of {ensemble}: worst groups of {len(s['groups'])}")
    for col in ("rank", "group", "images", f"est. {metric}", "lowest", "flagged", "reasons"):
        groups.add_column(col, justify="right")
    for rank, g in enumerate(s["groups"][:5], start=1):
        groups.add_row(
            str(rank),
            g["group"],
            str(g["images"]),
            f"{g['estimate']:.4f}",
            f"{g['lowest']:.4f}",
            str(g["flagged"]),
            "; ".join(g["reasons"][:2]) or "-",
        )
    console.print(groups)
    table = Table(title=f"worst {len(s['top'])} of {s['images']} test images")
    for col in ("rank", "image", "group", f"est. {metric}", "flags", "first reason"):
        table.add_column(col, justify="right")
    for rank, r in enumerate(s["top"], start=1):
        table.add_row(
            str(rank),
            r["image_id"],
            r["group"],
            f"{r['estimate']:.4f}",
            ", ".join(r["flags"]) or "-",
            r["reason"],
        )
    console.print(table)
    oof = s["calibration"]
    console.print(
        f"calibration on {oof['images']} OOF images, cross-validated by "
        f"{oof['cross_validated_by']}: estimated mean {oof['estimated_mean']:.4f} vs true "
        f"{oof['true_mean']:.4f}, Spearman {oof['spearman']:.2f}"
    )
    console.print(s["line"])


@click.command("report")
@click.argument("run")
def report_cmd(run: str) -> None:
    """Static HTML report of a run: fold curves and results, OOF scores, threshold search,
    overlay grids."""
    from pipeline.stages.report import run_report

    path = run_report(Layout(), run)
    console.print(f"wrote {path} (self-contained; links are relative to the run folder)")


@click.command("video")
@click.argument("run")
@click.argument("src", metavar="INPUT", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("dst", metavar="OUTPUT", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--batch",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Frames per forward pass.",
)
@click.option(
    "--alpha",
    type=click.FloatRange(0, 1),
    default=0.5,
    show_default=True,
    help="Weight of the colour map in the blend panel.",
)
@click.option("--tta", type=click.Choice(["none", "hflip"]), default="none", show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
def video_cmd(
    run: str, src: Path, dst: Path, batch: int, alpha: float, tta: str, device: str
) -> None:
    """Segment a video with RUN: each frame becomes original | colour map | blend
    (3x wide, same fps)."""
    from pipeline.stages.video import run_video

    out = run_video(Layout(), run, src, dst, batch, alpha, tta, device, progress_for=progress_bar)
    console.print(
        f"wrote {out['output']}: {out['frames']} frames, {out['width']}x{out['height']} at "
        f"{out['fps']:g} fps (run {out['run']}, decision {out['decision']}) in "
        f"{out['seconds']:.0f}s"
    )


@click.command("serve")
@click.argument("run")
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Interface to listen on (0.0.0.0: all)."
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    help="0: any free port.",
)
@click.option(
    "--max-mb",
    type=click.FloatRange(min=0, min_open=True),
    default=limits.MAX_MB,
    show_default=True,
    help="Largest accepted upload in MB (larger requests get 413).",
)
@click.option(
    "--max-pixels",
    type=click.IntRange(min=1),
    default=limits.MAX_PIXELS,
    show_default=True,
    help="Largest accepted image in pixels (width x height, read before decoding; larger get 413).",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=limits.THREADS,
    show_default=True,
    help="Requests handled at once (waitress worker threads).",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=click.IntRange(min=1),
    default=limits.TIMEOUT_S,
    show_default=True,
    help="Close a connection after this many seconds without data (an unfinished upload included).",
)
@click.option("--tta", type=click.Choice(["none", "hflip"]), default="none", show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
def serve_cmd(
    run: str,
    host: str,
    port: int,
    max_mb: float,
    max_pixels: int,
    threads: int,
    timeout_s: int,
    tta: str,
    device: str,
) -> None:
    """Serve RUN over HTTP (waitress): GET /health, POST /predict
    (multipart 'image'; ?format=png|rle). Ctrl-C stops."""
    from pipeline.stages.serve import run_serve

    run_serve(
        Layout(),
        run,
        host,
        port,
        max_mb,
        device,
        tta,
        log=console.print,
        max_pixels=max_pixels,
        threads=threads,
        timeout_s=timeout_s,
    )
