"""Stage: ``pipeline report RUN`` — one static HTML page of what a run's artifacts say.

Writes ``artifacts/runs/<run>/report.html``: the fold results (``fold<k>/summary.json``), each
fold's training curve (``fold<k>/curve.png``; redrawn there from ``history.csv`` when missing), the
OOF report (``predict_report.json``), the threshold search (``thresholds.json``,
``threshold_curve.png``) and any overlay grids of ``pipeline show`` (``show/*.png``). Links are
relative to the run folder, CSS is inline, there is no script: the folder can be zipped and opened
anywhere. Sections whose artifacts do not exist yet say which command makes them.
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
        return [HistoryRow(int(r["epoch"]), float(r["train_loss"]), float(r["val_loss"]),
                           float(r.get("val_miou") or r["val_dice"]),
                           {"miou": float(r["val_miou"])} if r.get("val_miou") else {}) for r in rows]
    except (OSError, KeyError, ValueError, csv.Error) as err:
        raise PipelineError(f"{path}: cannot read training history ({err}); retrain the fold with --force") from None


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


def folds_section(layout: Layout, run: str) -> list[str]:
    """Fold results table and one training curve per fold."""
    dirs = _fold_dirs(layout.run_dir(run))
    summaries = [(d, _json(FoldDir(d).summary())) for d in dirs]
    done = [(d, s) for d, s in summaries if s]
    out = [html.heading("Training folds")]
    if done:
        extra = sorted({k for _, s in done for k in (s.get("metrics") or {})})
        headers = ["fold", "best epoch", "best score", "epochs", "seconds", "img/s", *extra]
        rows = [[s["fold"], s["best_epoch"], s.get("best_score") or s.get("best_dice"), s["epochs"],
                 f"{s['seconds']:.1f}", f"{s['img_per_s']:.1f}", *((s.get("metrics") or {}).get(k) for k in extra)]
                for _, s in done]
        out.append(html.table(headers, rows))
    unfinished = [d.name for d, s in summaries if not s]
    if unfinished or not dirs:
        out.append(html.paragraph(f"not finished: {', '.join(unfinished) or 'no fold yet'} "
                                  "(run 'pipeline train CONFIG')", "muted"))
    for d in dirs:
        curve = fold_curve(run, d)
        out.append(html.image(curve, f"{d.name} training curve") if curve else
                   html.paragraph(f"{d.name}: no history.csv yet", "muted"))
    return out


def oof_section(run_dir: RunDir) -> list[str]:
    """The OOF score per fold, with and without TTA (``predict_report.json``)."""
    report = _json(run_dir.predict_report())
    out = [html.heading("Out-of-fold predictions")]
    if not report.get("oof") and not report.get("folds"):
        return out + [html.paragraph("no predict_report.json yet (run 'pipeline predict CONFIG')", "muted")]
    rows = [(f"fold {k}", v) for k, v in sorted(report.get("folds", {}).items(), key=lambda kv: int(kv[0]))]
    if report.get("oof"):
        rows.append(("all (OOF)", report["oof"]))
    metric = report.get("oof", {}).get("metric", "dice")
    out.append(html.paragraph(f"metric: {metric}; TTA: {report.get('tta')}; test images predicted: "
                              f"{report.get('test_images', 0)}"))
    out.append(html.table(["", "images", "no TTA", "TTA", "gain"],
                          [[name, v.get("images"), v.get("score_plain"), v.get("score"),
                            None if v.get("score") is None or v.get("score_plain") is None
                            else f"{v['score'] - v['score_plain']:+.4f}"] for name, v in rows]))
    if report.get("oof", {}).get("iou"):
        out.append(html.table(["class", "OOF IoU"], sorted(report["oof"]["iou"].items())))
    out += [html.paragraph(f"note: {n}", "muted") for n in report.get("notes", [])]
    return out


def threshold_section(run_dir: RunDir) -> list[str]:
    """The tuned decision per channel (``thresholds.json``) and ``threshold_curve.png``."""
    tuned = _json(run_dir.thresholds())
    out = [html.heading("Threshold tuning")]
    if not tuned:
        return out + [html.paragraph("no thresholds.json yet (run 'pipeline tune --run RUN')", "muted")]
    out.append(html.table(["class", "threshold", "min area", "OOF Dice @0.5", "OOF Dice tuned"],
                          [[c["class"], c["threshold"], f"{c['min_area']:g}", c.get("oof_dice_at_0.5"),
                            c.get("oof_dice_tuned")] for c in tuned.get("channels", [])]))
    if "cleanup" in tuned:
        out.append(html.paragraph(f"clean-up (largest component + fill holes): {tuned['cleanup']}; final OOF Dice "
                                  f"{html.cell(tuned.get('oof_dice_final'))}"))
    if run_dir.threshold_curve().is_file():
        out.append(html.image(run_dir.threshold_curve().name, "threshold curve"))
    return out


def grids_section(run_dir: RunDir) -> list[str]:
    grids = sorted(run_dir.show_dir().glob("*.png"))
    if not grids:
        return []
    return [html.heading("Overlay grids (pipeline show)"),
            *(html.paragraph(p.name) + html.image(f"{p.parent.name}/{p.name}", p.stem) for p in grids)]


def run_report(layout: Layout, run: str) -> Path:
    """Write ``artifacts/runs/<run>/report.html`` from the run's artifacts; returns its path."""
    run_dir = layout.run(run)
    if not run_dir.exists():
        raise PipelineError(f"{run_dir.path}: run '{run}' not found (no config.yaml); train it first "
                            "('pipeline train CONFIG')")
    name = run_dir.config().name
    body = [f"<p>{html.link(name, f'resolved {name}')} — folder {html.escape(str(run_dir.path))}</p>",
            *folds_section(layout, run), *oof_section(run_dir), *threshold_section(run_dir),
            *grids_section(run_dir)]
    path = run_dir.report_html()
    atomic_write_text(path, html.page(f"Run {run}", body))
    return path
