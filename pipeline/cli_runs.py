"""CLI commands over whole runs: pseudo-label rounds, run comparison, summary, the end-to-end demo."""
from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from pipeline.cli import _parse_size, cli
from pipeline.console import console, progress_bar
from pipeline.paths import Layout


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
@click.option("--cars", default=8, show_default=True)
@click.option("--views", default=6, show_default=True)
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
