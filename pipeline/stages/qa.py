"""Stage: ``pipeline qa ENSEMBLE`` — look for suspicious test predictions before submitting.

Reads the ensemble's fused test store (``artifacts/ensembles/<name>/test/``, decided as the
submission was: its ``decision.json``) and every member run's test store
(decided with that run's ``decision.json``, else 0.5; members with weight 0 are left out), and
scores each test image with ``pipeline.review.suspicion`` (member agreement, area outlier within its group, empty
mask, fragments). Writes into ``artifacts/ensembles/<name>/qa/``:

- ``qa.csv`` — every test image, most suspicious first: rank, image_id, group, score, flags,
  member_dice (mean pairwise Dice, or mIoU for multi-class), area, area_z, components;
- ``index.html`` — a static gallery of the ``top`` K images with their reasons, then the table;
- ``<rank>_<image_id>.png`` — the gallery's thumbnails (image | prediction | uncertainty | members
  disagree); thumbnails of an earlier QA run are removed first.
"""
from __future__ import annotations

import csv
import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pipeline.config import load_config
from pipeline.config.schema import EnsembleConfig
from pipeline.decide.decision import AnyDecision, read_decision
from pipeline.decide.store import ProbStore
from pipeline.errors import PipelineError
from pipeline.fsio import atomic_write_bytes, atomic_write_text
from pipeline.paths import Layout
from pipeline.review import html
from pipeline.review.overlay import disagreement_map, grid, png_bytes, unlabelled_row
from pipeline.review.sources import Source, open_source
from pipeline.review.suspicion import FLAG_NAMES, ImageQA, QAConfig, assess, measure, short_reason, summary_line

THUMB_WIDTH = 960
QA_TITLES = ["image", "ensemble prediction", "uncertainty (bright = unsure)", "members disagree (magenta)"]
CSV_COLUMNS = ["rank", "image_id", "group", "score", "flags", "member_dice", "area", "area_z", "components"]

Member = tuple[str, ProbStore, AnyDecision]


def fused_test_store(source: Source) -> ProbStore:
    path = source.dir.store("test")
    if not (path / "manifest.json").is_file():
        raise PipelineError(f"{path}: no fused test store; set save_test_store: true in the ensemble config and "
                            "rerun 'pipeline ensemble'")
    return source.store("test")


def load_members(layout: Layout, source: Source, fused: ProbStore) -> list[Member]:
    """``(run, test store, decision)`` of every ensemble member with a non-zero weight."""
    ecfg: EnsembleConfig = load_config(source.dir.ensemble_config(), schema=EnsembleConfig)
    info = fused.manifest.get("checkpoints", {})
    members = []
    for m in ecfg.members:
        weight = info.get(m.run, {}).get("weight", 1.0) if isinstance(info.get(m.run), dict) else 1.0
        if weight == 0:
            continue  # a zero-weight member does not shape the submission
        folder = layout.run(m.run)
        store = ProbStore.open(folder.store("test"))
        if not store.complete:
            raise PipelineError(f"{store.path}: incomplete store; rerun 'pipeline predict' for '{m.run}'")
        members.append((m.run, store, read_decision(folder, source.multiclass)))
    return members


def member_labels(members: list[Member], image_id: str) -> list:
    return [decision.label(store.read(image_id)) for _, store, decision in members]


def measure_all(source: Source, fused: ProbStore, members: list[Member], progress=None,
                workers: int = 2) -> list[ImageQA]:
    """One ``ImageQA`` per test image of the fused store, in store order.

    ``workers`` threads (zlib, NumPy and OpenCV release the GIL); each holds one image's maps at a time.
    """
    ids = fused.ids()
    groups = {image_id: source.dataset.sample(image_id).group for image_id in ids}

    def one(image_id: str) -> ImageQA:
        label = source.label(fused.read(image_id))
        return measure(image_id, groups[image_id], label, member_labels(members, image_id),
                       source.dataset.num_classes, source.background)

    rows = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for row in pool.map(one, ids):
            rows.append(row)
            if progress:
                progress(1)
    return rows


def view_keys(source: Source, rows: list[ImageQA]) -> dict[str, str] | None:
    """Carvana ids ``<car>_<NN>``: image id -> ``NN`` (a fixed turntable angle), for the area view effect."""
    if source.cfg.dataset.layout != "carvana":
        return None
    keys = {r.image_id: r.image_id[len(r.group) + 1:] for r in rows if r.image_id.startswith(f"{r.group}_")}
    return keys if len(keys) == len(rows) else None


def _fmt(value, spec: str) -> str:
    return "" if value is None else format(value, spec)


def csv_text(ranked: list[ImageQA]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for rank, r in enumerate(ranked, start=1):
        writer.writerow([rank, r.image_id, r.group, f"{r.score:.4f}", ";".join(r.flags), _fmt(r.agreement, ".5f"),
                         f"{r.area:.6f}", _fmt(r.area_z, ".3f"), _fmt(r.components, "d")])
    return buf.getvalue()


def thumbnail(source: Source, fused: ProbStore, members: list[Member], row: ImageQA, rank: int) -> bytes:
    """PNG: image | ensemble prediction | uncertainty | where members disagree, with a caption."""
    image = source.dataset.read_image(source.dataset.sample(row.image_id))
    probs = fused.read(row.image_id)
    labels = member_labels(members, row.image_id) or [source.label(probs)]
    text = f"#{rank} {row.image_id} (group {row.group})  score {row.score:.2f}  {', '.join(row.flags) or 'no flag'}"
    picture = unlabelled_row(image, source.label(probs), probs, source.colours(), text, THUMB_WIDTH, source.skip,
                             extra=[disagreement_map(image, labels)])
    return png_bytes(grid([picture], QA_TITLES))


def _card(rank: int, row: ImageQA, thumb: str) -> str:
    reasons = "".join(f'<p class="flag">{html.escape(r)}</p>' for r in row.reasons) or html.paragraph(
        "no flag raised (shown because it ranks in the top K)", "muted")
    title = f"#{rank} {row.image_id} — group {row.group}, score {row.score:.2f}"
    return f'<div class="card"><h3>{html.escape(title)}</h3>{reasons}{html.image(thumb, row.image_id)}</div>'


def html_text(name: str, line: str, ranked: list[ImageQA], thumbs: list[str], cfg: QAConfig) -> str:
    limits = (f"Flags: member agreement < {cfg.min_agreement:g}; |robust z of log area within the group| > "
              f"{cfg.z_limit:g} (groups of >= {cfg.min_group}); area < {cfg.empty_fraction:.2%} of the image; "
              f"more than {cfg.max_components} components (binary). Score = sum of each signal divided by its "
              "limit (1 = at the limit, capped at 10); flagged images first.")
    body = [html.paragraph(line), html.paragraph(limits, "muted"),
            html.paragraph("Thumbnails: image | ensemble prediction | uncertainty (bright = unsure) | pixels where "
                           "the members' masks differ (magenta).", "muted"),
            html.heading(f"Top {len(thumbs)}")]
    body += [_card(rank, row, thumb) for rank, (row, thumb) in enumerate(zip(ranked, thumbs, strict=False), start=1)]
    body += [html.heading("All test images"), f"<p>{html.link('qa.csv', 'qa.csv')}</p>",
             html.table(CSV_COLUMNS, ([rank, r.image_id, r.group, r.score, ", ".join(r.flags), r.agreement, r.area,
                                       r.area_z, r.components] for rank, r in enumerate(ranked, start=1)))]
    return html.page(f"QA of ensemble {name}", body)


def write_thumbnails(folder: Path, source: Source, fused: ProbStore, members: list[Member],
                     ranked: list[ImageQA], top: int) -> list[str]:
    """Thumbnails of the ``top`` ranked images (earlier ones removed first); returns their file names."""
    for old in folder.glob("*.png"):
        old.unlink()
    names = []
    for rank, row in enumerate(ranked[:top], start=1):
        names.append(f"{rank:03d}_{row.image_id}.png")
        atomic_write_bytes(folder / names[-1], thumbnail(source, fused, members, row, rank))
    return names


def run_qa(layout: Layout, ensemble_name: str, top: int = 12, cfg: QAConfig | None = None,
           progress=None, workers: int = 2) -> dict:
    """Score every test image of an ensemble, write ``qa/{qa.csv, index.html, *.png}``; return a summary.

    Args:
        layout: the project layout.
        ensemble_name: ``artifacts/ensembles/<name>/`` (needs its fused ``test/`` store).
        top: images in the HTML gallery.
        cfg: flag limits (default ``QAConfig()``).
        progress: optional ``progress(n)``, called per image measured.
        workers: threads measuring images.

    Returns:
        ``{"line", "images", "flagged", "counts" (per flag), "top" (the gallery's rows: image_id, group,
        score, flags, reason), "csv", "html"}``; ``line`` is the one-line summary
        (``pipeline.review.suspicion.summary_line``) the ensemble command prints.
    """
    cfg = cfg or QAConfig()
    if top < 0:
        raise PipelineError(f"--top {top}: give a number of images >= 0")
    source = open_source(layout, ensemble=ensemble_name)
    fused = fused_test_store(source)
    members = load_members(layout, source, fused)
    rows = measure_all(source, fused, members, progress, workers)
    ranked = assess(rows, cfg, "mIoU" if source.multiclass else "Dice", view_keys(source, rows))
    folder = qa_path(layout, ensemble_name)
    thumbs = write_thumbnails(folder, source, fused, members, ranked, top)
    atomic_write_text(folder / "qa.csv", csv_text(ranked))
    line = summary_line(ranked, str(folder / "index.html"))
    atomic_write_text(folder / "index.html", html_text(ensemble_name, line, ranked, thumbs, cfg))
    flagged = [r for r in ranked if r.flags]
    return {"line": line, "images": len(ranked), "flagged": len(flagged),
            "counts": {k: sum(k in r.flags for r in flagged) for k in FLAG_NAMES},
            "top": [{"image_id": r.image_id, "group": r.group, "score": r.score, "flags": r.flags,
                     "reason": short_reason(r)} for r in ranked[:top]],
            "csv": str(folder / "qa.csv"), "html": str(folder / "index.html")}


def qa_path(layout: Layout, ensemble_name: str) -> Path:
    """Where ``run_qa`` writes (``artifacts/ensembles/<name>/qa/``)."""
    return layout.ensemble(ensemble_name).qa_dir()
