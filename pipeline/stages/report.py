"""Stage: ``pipeline report RUN`` — one static HTML page of what a run's artifacts say.

Writes ``artifacts/runs/<run>/report.html``: the fold results (``fold<k>/summary.json``), each
fold's training curve (``fold<k>/curve.png``; redrawn there from ``history.csv`` when missing), the
OOF report (``predict_report.json``), the threshold search (``thresholds.json``,
``threshold_curve.png``) and any overlay grids of ``pipeline show`` (``show/*.png``). Links are
relative to the run folder, CSS is inline, there is no script: the folder can be zipped and opened
anywhere. Sections whose artifacts do not exist yet say which command makes them. The page is the
template ``review/templates/report.html.j2``; this module only gathers the values it shows.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import PipelineError
from pipeline.fsio import atomic_write_bytes, atomic_write_text, read_json
from pipeline.paths import FoldDir, Layout, RunDir
from pipeline.review import html
from pipeline.review.plots import training_curve


@dataclass
class HistoryRow:
    """One epoch of ``history.csv``, shaped as ``pipeline.review.plots.training_curve`` reads it."""

    epoch: int
    train_loss: float
    val_loss: float
    val_score: float
    extra: dict = field(default_factory=dict)


def _json(path: Path) -> dict:
    return read_json(path, optional=True)


def read_history(path: Path) -> list[HistoryRow]:
    """Rows of a fold's ``history.csv`` (multi-class runs: ``val_miou`` is the plotted score)."""
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        return [
            HistoryRow(
                int(r["epoch"]),
                float(r["train_loss"]),
                float(r["val_loss"]),
                float(r.get("val_miou") or r["val_dice"]),
                {"miou": float(r["val_miou"])} if r.get("val_miou") else {},
            )
            for r in rows
        ]
    except (OSError, KeyError, ValueError, csv.Error) as err:
        raise PipelineError(
            f"{path}: cannot read training history ({err}); retrain the fold with --force"
        ) from None


def fold_curve(run: str, fold_dir: Path) -> str | None:
    """Relative path of the fold's curve.png (redrawn from history.csv if missing), or None."""
    png, history = FoldDir(fold_dir).curve(), FoldDir(fold_dir).history()
    if not png.is_file() and history.is_file():
        rows = read_history(history)
        if rows:
            atomic_write_bytes(png, training_curve(rows, f"{run} {fold_dir.name}"))
    return f"{fold_dir.name}/{png.name}" if png.is_file() else None


def _fold_dirs(run_dir: Path) -> list[Path]:
    folds = [p for p in run_dir.glob("fold*") if p.is_dir() and p.name[4:].isdigit()]
    return sorted(folds, key=lambda p: int(p.name[4:]))


def folds_section(layout: Layout, run: str) -> dict:
    """Fold results table (None before any fold finished), unfinished folds,
    one training curve per fold."""
    dirs = _fold_dirs(layout.run_dir(run))
    summaries = [(d, _json(FoldDir(d).summary())) for d in dirs]
    done = [s for _, s in summaries if s]
    table = None
    if done:
        extra = sorted({k for s in done for k in (s.get("metrics") or {})})
        headers = ["fold", "best epoch", "best score", "epochs", "seconds", "img/s", *extra]
        rows = [
            [
                s["fold"],
                s["best_epoch"],
                s.get("best_score") or s.get("best_dice"),
                s["epochs"],
                f"{s['seconds']:.1f}",
                f"{s['img_per_s']:.1f}",
                *((s.get("metrics") or {}).get(k) for k in extra),
            ]
            for s in done
        ]
        table = {"headers": headers, "rows": rows}
    unfinished = [d.name for d, s in summaries if not s]
    return {
        "table": table,
        "unfinished": ", ".join(unfinished) if unfinished or not dirs else None,
        "curves": [{"fold": d.name, "src": fold_curve(run, d)} for d in dirs],
    }


def oof_section(run_dir: RunDir) -> dict | None:
    """The OOF score per fold, with and without TTA (``predict_report.json``);
    None before predict."""
    report = _json(run_dir.predict_report())
    if not report.get("oof") and not report.get("folds"):
        return None
    rows = [
        (f"fold {k}", v)
        for k, v in sorted(report.get("folds", {}).items(), key=lambda kv: int(kv[0]))
    ]
    if report.get("oof"):
        rows.append(("all (OOF)", report["oof"]))
    return {
        "metric": report.get("oof", {}).get("metric", "dice"),
        "tta": report.get("tta"),
        "test_images": report.get("test_images", 0),
        "rows": [
            [
                name,
                v.get("images"),
                v.get("score_plain"),
                v.get("score"),
                None
                if v.get("score") is None or v.get("score_plain") is None
                else f"{v['score'] - v['score_plain']:+.4f}",
            ]
            for name, v in rows
        ],
        "iou": sorted((report.get("oof", {}).get("iou") or {}).items()),
        "notes": report.get("notes", []),
    }


def threshold_section(run_dir: RunDir) -> dict | None:
    """The tuned decision per channel (``thresholds.json``) and ``threshold_curve.png``;
    None before tune."""
    tuned = _json(run_dir.thresholds())
    if not tuned:
        return None
    return {
        "rows": [
            [
                c["class"],
                c["threshold"],
                f"{c['min_area']:g}",
                c.get("oof_dice_at_0.5"),
                c.get("oof_dice_tuned"),
            ]
            for c in tuned.get("channels", [])
        ],
        "cleanup": tuned.get("cleanup"),
        "final": tuned.get("oof_dice_final"),
        "curve": run_dir.threshold_curve().name if run_dir.threshold_curve().is_file() else None,
    }


def grids_section(run_dir: RunDir) -> list[dict]:
    """The overlay grids of ``pipeline show`` (``show/*.png``)."""
    return [
        {"name": p.name, "stem": p.stem, "src": f"{p.parent.name}/{p.name}"}
        for p in sorted(run_dir.show_dir().glob("*.png"))
    ]


def report_html(layout: Layout, run: str) -> str:
    """The report page of a run (``report.html.j2``) from its artifacts;
    the run folder must exist."""
    run_dir = layout.run(run)
    return html.render(
        "report.html.j2",
        title=f"Run {run}",
        config=run_dir.config().name,
        folder=str(run_dir.path),
        folds=folds_section(layout, run),
        oof=oof_section(run_dir),
        tuned=threshold_section(run_dir),
        grids=grids_section(run_dir),
    )


def run_report(layout: Layout, run: str) -> Path:
    """Write ``artifacts/runs/<run>/report.html`` from the run's artifacts; returns its path."""
    run_dir = layout.run(run)
    if not run_dir.exists():
        raise PipelineError(
            f"{run_dir.path}: run '{run}' not found (no config.yaml); train it first "
            "('pipeline train CONFIG')"
        )
    path = run_dir.report_html()
    atomic_write_text(path, report_html(layout, run))
    return path
