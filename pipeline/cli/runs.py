"""CLI commands over whole runs: pseudo-label rounds, run comparison, summary,
the end-to-end demo."""

from __future__ import annotations

import statistics
from pathlib import Path

import click
from rich.table import Table

from pipeline.cli.common import parse_size
from pipeline.config.recipe import PSEUDO_TAU
from pipeline.console import console, progress_bar
from pipeline.paths import Layout

# the weight candidates of a fold, as train.average names them
AVERAGE_ORDER = ["none", "ema", "swa"]


def print_per_class(runs: list[dict], ensemble: dict | None) -> None:
    """Multi-class runs (and a fused ensemble): OOF IoU of every class, mIoU and cross-entropy."""
    columns = [(r["run"], r.get("per_class_iou"), r.get("oof_ce")) for r in runs]
    if ensemble:
        columns.append(
            (
                ensemble["ensemble"] + " (fused)",
                ensemble.get("per_class_iou"),
                ensemble.get("oof_ce"),
            )
        )
    columns = [c for c in columns if c[1]]
    if not columns:
        return
    table = Table(title="per-class OOF IoU (TTA; ensemble: fused, under its decision)")
    table.add_column("class")
    for name, _, _ in columns:
        table.add_column(name, justify="right")
    classes = list(dict.fromkeys(k for _, iou, _ in columns for k in iou))
    for cls in classes:
        table.add_row(
            cls, *("-" if iou.get(cls) is None else f"{iou[cls]:.3f}" for _, iou, _ in columns)
        )
    present = [[v for v in iou.values() if v is not None] for _, iou, _ in columns]
    table.add_row("mIoU", *(f"{sum(v) / len(v):.3f}" if v else "-" for v in present))
    table.add_row("cross-entropy", *("-" if ce is None else f"{ce:.4f}" for _, _, ce in columns))
    console.print(table)


def print_averages(run: str, folds: dict[int, dict[str, float]]) -> None:
    """Fold by fold, the validation score of the raw weights and of each average (EMA, SWA)
    after the last epoch, with the mean gain over the raw weights and its fold-to-fold spread."""
    if not folds:
        return
    names = sorted({n for scores in folds.values() for n in scores}, key=AVERAGE_ORDER.index)
    table = Table(title=f"{run}: weight averaging, validation score after the last epoch")
    for col in ("weights", *(f"fold {k}" for k in sorted(folds)), "mean", "gain vs raw (sd)"):
        table.add_column(col, justify="right")
    for name in names:
        row = [folds[k].get(name) for k in sorted(folds)]
        gains = [folds[k][name] - folds[k]["none"] for k in sorted(folds) if name in folds[k]]
        spread = statistics.stdev(gains) if len(gains) > 1 else 0.0
        table.add_row(
            "raw" if name == "none" else name,
            *("-" if v is None else f"{v:.4f}" for v in row),
            f"{statistics.fmean(v for v in row if v is not None):.4f}",
            "" if name == "none" else f"{statistics.fmean(gains):+.4f} ({spread:.4f})",
        )
    console.print(table)


def print_summary(runs: list[dict], ensemble: dict | None) -> None:
    """Per-run fold scores, TTA gain, tuned threshold; ensemble vs best member (OOF score)."""
    metrics = sorted(
        {r["metric"] for r in runs} | ({ensemble["metric"] or "dice"} if ensemble else set())
    )
    metric = "Dice" if metrics == ["dice"] else " / ".join(metrics)
    table = Table(title=f"summary (OOF = out-of-fold {metric} over all labelled images)")
    for col in (
        "run / ensemble",
        f"fold {metric} (train val)",
        "OOF no TTA",
        "OOF TTA",
        "TTA gain",
        "threshold",
        "OOF tuned",
    ):
        table.add_column(col, justify="right")

    def fmt(value, spec=".4f"):
        return "-" if value is None else format(value, spec)

    for r in runs:
        folds = " ".join(f"{d:.4f}" for _, d in sorted(r["fold_scores"].items()))
        gain = (
            None
            if r["oof_score_tta"] is None or r["oof_score_plain"] is None
            else r["oof_score_tta"] - r["oof_score_plain"]
        )
        table.add_row(
            r["run"],
            folds,
            fmt(r["oof_score_plain"]),
            fmt(r["oof_score_tta"]),
            fmt(gain, "+.4f"),
            fmt(r["threshold"]),
            fmt(r["oof_score_tuned"]),
        )
    if ensemble:
        table.add_row(
            ensemble["ensemble"],
            "",
            "",
            "",
            "",
            fmt(ensemble["threshold"]),
            fmt(ensemble["oof_score"]),
        )
    console.print(table)
    print_per_class(runs, ensemble)
    for r in runs:
        print_averages(r["run"], r.get("fold_averages") or {})
    best = max(
        (r["oof_score_tuned"] for r in runs if r["oof_score_tuned"] is not None), default=None
    )
    if ensemble and ensemble["oof_score"] is not None and best is not None:
        console.print(
            f"ensemble OOF {metric} {ensemble['oof_score']:.5f} vs best member {best:.5f} "
            f"({ensemble['oof_score'] - best:+.5f})"
        )


@click.command("summary")
@click.argument("runs", nargs=-1)
@click.option(
    "--ensemble", default=None, help="Also show this ensemble (artifacts/ensembles/<name>)."
)
def summary_cmd(runs: tuple[str, ...], ensemble: str | None) -> None:
    """Summarise runs (and an ensemble) from their artifacts."""
    from pipeline.stages.summary import ensemble_summary, run_summary

    layout = Layout()
    if not runs:
        runs = tuple(sorted(p.name for p in (layout.artifacts / "runs").glob("*") if p.is_dir()))
    print_summary(
        [run_summary(layout, r) for r in runs],
        ensemble_summary(layout, ensemble) if ensemble else None,
    )


@click.command("demo")
@click.option(
    "--recipe",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("configs/recipe_demo.yaml"),
    show_default=True,
)
@click.option("--cars", default=None, type=int, help="Demo cars (default: the recipe's).")
@click.option("--views", default=None, type=int, help="Views per car (default: the recipe's).")
@click.option(
    "--test-cars", default=None, type=int, help="Unlabelled test cars (default: the recipe's)."
)
@click.option(
    "--size",
    default=None,
    callback=lambda c, p, v: parse_size(c, p, v) if v else None,
    help="Demo image WIDTHxHEIGHT (default: the recipe's).",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override the demo's experiment configs.",
)
def demo_cmd(
    recipe: Path,
    cars: int | None,
    views: int | None,
    test_cars: int | None,
    size: tuple[int, int] | None,
    overrides: tuple[str, ...],
) -> None:
    """Run everything end to end on the built-in demo dataset
    (`pipeline run` on the demo recipe)."""
    import time

    from pipeline.console import RichReporter
    from pipeline.stages.demo import demo_recipe
    from pipeline.stages.run import run_recipe
    from pipeline.stages.summary import ensemble_summary, run_summary

    started = time.time()
    layout = Layout()
    plan = demo_recipe(recipe, cars=cars, views=views, test_cars=test_cars, size=size)
    out = run_recipe(
        recipe,
        overrides,
        layout,
        log=console.print,
        progress_for=progress_bar,
        reporter_for=lambda run, k: RichReporter(run, k),
        recipe=plan,
    )
    print_summary(
        [run_summary(layout, r) for r in out.runs],
        ensemble_summary(layout, out.ensembles[-1]) if out.ensembles else None,
    )
    sub = out.submissions[-1]
    console.print(
        f"submission {sub['path']}: {sub['rows']} rows, validated; "
        f"total {time.time() - started:.0f}s"
    )


@click.command("pseudo")
@click.argument("ensemble")
@click.option(
    "--round",
    "round_",
    type=click.IntRange(min=1),
    required=True,
    help="Round number R >= 1: writes folds/pseudo_r<R>.csv.",
)
@click.option(
    "--rule",
    type=click.Choice(["band", "entropy"]),
    default="band",
    show_default=True,
    help="band: share of pixels with lo<p<hi; entropy: mean pixel entropy (bits).",
)
@click.option(
    "--tau",
    type=click.FloatRange(min=0, min_open=True),
    default=PSEUDO_TAU,
    show_default=True,
    help="Keep images whose score is below tau (a recipe's pseudo step has the same default).",
)
@click.option("--lo", type=float, default=0.1, show_default=True)
@click.option("--hi", type=float, default=0.9, show_default=True)
@click.option(
    "--top-n",
    type=click.IntRange(min=1),
    default=None,
    help="Keep at most the N most confident images.",
)
@click.option(
    "--soft", is_flag=True, help="Write probabilities (soft targets) instead of hard masks."
)
@click.option("--force", is_flag=True, help="Replace an existing table of this round.")
def pseudo_cmd(
    ensemble: str,
    round_: int,
    rule: str,
    tau: float,
    lo: float,
    hi: float,
    top_n: int | None,
    soft: bool,
    force: bool,
) -> None:
    """Pseudo-label confident test images of an ensemble (fold -1 rows for training)."""
    from pipeline.decide.pseudo_labels import PseudoRule
    from pipeline.stages.pseudo import run_pseudo

    with progress_bar("scoring", None) as advance:
        out = run_pseudo(
            Layout(), ensemble, round_, PseudoRule(rule, tau, lo, hi, top_n), soft, force, advance
        )
    console.print(
        f"round {round_}: {out['selected']} of {out['candidates']} test images selected by {rule} "
        f"< {tau} -> {out['table']} (provenance beside it)"
    )
    if not out["selected"]:
        best = min(out["scores"].values(), default=None)
        console.print(
            f"[yellow]warning[/yellow]: no image passed; the most confident scored {best:.4f} "
            "— raise --tau (or use --top-n) to keep some"
        )
    console.print(
        f"train with them: --set pseudo.table={out['table']} (mode batch, ratio 0.2 by default)"
    )


@click.command("compare")
@click.argument("baseline")
@click.argument("candidate")
def compare_cmd(baseline: str, candidate: str) -> None:
    """Fold-by-fold OOF Dice of two runs (e.g. without and with pseudo-labels):
    difference and spread."""
    from pipeline.stages.compare import compare_runs

    out = compare_runs(Layout(), baseline, candidate)
    table = Table(title=f"{candidate} vs {baseline} (OOF Dice per fold, {out['source']})")
    for col in ("fold", baseline, candidate, "difference"):
        table.add_column(col, justify="right")
    for f in out["folds"]:
        table.add_row(
            str(f["fold"]),
            f"{f['baseline']:.5f}",
            f"{f['candidate']:.5f}",
            f"{f['difference']:+.5f}",
        )
    console.print(table)
    console.print(
        f"mean difference {out['mean']:+.5f} ± {out['std']:.5f} (std over {len(out['folds'])} "
        f"folds; {out['better']} of {len(out['folds'])} folds better)"
    )


@click.command("run")
@click.argument("recipe", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override every experiment config of the recipe, e.g. --set dataset.root=/data/carvana.",
)
def run_cmd(recipe: Path, overrides: tuple[str, ...]) -> None:
    """Run a whole recipe: folds, training (folds + full refits), predict, tune, pseudo rounds,
    ensembles."""
    import time

    from pipeline.console import RichReporter
    from pipeline.stages.run import run_recipe
    from pipeline.stages.summary import ensemble_summary, run_summary

    started = time.time()
    layout = Layout()
    out = run_recipe(
        recipe,
        overrides,
        layout,
        log=console.print,
        progress_for=progress_bar,
        reporter_for=lambda run, k: RichReporter(run, k),
    )
    print_summary(
        [run_summary(layout, r) for r in out.runs],
        ensemble_summary(layout, out.ensembles[-1]) if out.ensembles else None,
    )
    for sub in out.submissions:
        console.print(f"submission {sub['path']}: {sub['rows']} rows, validated")
    console.print(f"recipe {recipe} done in {time.time() - started:.0f}s")
