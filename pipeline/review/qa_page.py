"""QA outputs as text: the ranked CSV tables and the static HTML gallery
(pure: rows in, strings out)."""

from __future__ import annotations

import csv
import io

import numpy as np

from pipeline.review import html
from pipeline.review.reasons import GroupQA
from pipeline.review.suspicion import ImageQA, QAConfig

IMAGE_COLUMNS = [
    "rank",
    "image_id",
    "group",
    "estimate",
    "flags",
    "reasons",
    "member_dice",
    "area",
    "area_z",
    "components",
]
GROUP_COLUMNS = [
    "rank",
    "group",
    "images",
    "estimate",
    "lowest",
    "worst_image",
    "flagged",
    "reasons",
]
PER_GROUP = 3  # thumbnails per group in the gallery


def _fmt(value, spec: str) -> str:
    return "" if value is None else format(value, spec)


def feature_names(rows: list[ImageQA]) -> list[str]:
    return sorted({k for r in rows for k in r.features})


def _text(rows: list[list]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def csv_images(ranked: list[ImageQA]) -> str:
    """Every test image, ranked: the columns of ``IMAGE_COLUMNS`` then one per quality feature."""
    names = feature_names(ranked)
    out = [IMAGE_COLUMNS + names]
    for rank, r in enumerate(ranked, start=1):
        out.append(
            [
                rank,
                r.image_id,
                r.group,
                _fmt(r.estimate, ".5f"),
                ";".join(r.flags),
                " | ".join(r.reasons),
                _fmt(r.agreement, ".5f"),
                f"{r.area:.6f}",
                _fmt(r.area_z, ".3f"),
                _fmt(r.components, "d"),
                *(f"{r.features.get(n, float('nan')):.6g}" for n in names),
            ]
        )
    return _text(out)


def csv_groups(summary: list[GroupQA]) -> str:
    out = [GROUP_COLUMNS]
    for rank, g in enumerate(summary, start=1):
        out.append(
            [
                rank,
                g.group,
                g.images,
                f"{g.estimate:.5f}",
                f"{g.lowest:.5f}",
                g.worst,
                g.flagged,
                " | ".join(g.reasons),
            ]
        )
    return _text(out)


def csv_oof(rows: list[ImageQA], truth: np.ndarray, estimate: np.ndarray) -> str:
    """Every OOF image: its true score, its cross-validated estimate and its quality features."""
    names = feature_names(rows)
    out = [["image_id", "group", "score", "estimate", "flags", "member_dice", "area_z", *names]]
    for r, t, e in zip(rows, truth, estimate, strict=True):
        out.append(
            [
                r.image_id,
                r.group,
                f"{t:.5f}",
                f"{e:.5f}",
                ";".join(r.flags),
                _fmt(r.agreement, ".5f"),
                _fmt(r.area_z, ".3f"),
                *(f"{r.features.get(n, float('nan')):.6g}" for n in names),
            ]
        )
    return _text(out)


def gallery_rows(ranked: list[ImageQA], summary: list[GroupQA], top: int) -> list[ImageQA]:
    """The images the gallery shows, ``top`` in all: every flagged image, then the worst groups'
    lowest estimates (up to ``PER_GROUP`` per group)."""
    shown = [r for r in ranked if r.flags]
    seen = {r.image_id for r in shown}
    by_group: dict[str, list[ImageQA]] = {}
    for row in sorted(ranked, key=lambda r: (r.estimate, r.image_id)):
        if row.image_id not in seen:
            by_group.setdefault(row.group, []).append(row)
    for g in summary:
        shown += by_group.get(g.group, [])[:PER_GROUP]
    return shown[:top]


def _image_card(n: int, row: ImageQA, thumb: str, metric: str) -> str:
    reasons = "".join(
        f'<p class="{"flag" if i < len(row.flags) else ""}">{html.escape(r)}</p>'
        for i, r in enumerate(row.reasons)
    ) or html.paragraph("nothing stands out", "muted")
    title = f"{row.image_id} — est. {metric} {row.estimate:.4f}" + (
        f" ({', '.join(row.flags)})" if row.flags else ""
    )
    return (
        f'<div class="card"><p><b>#{n} {html.escape(title)}</b></p>'
        f"{reasons}{html.image(thumb, row.image_id)}</div>"
    )


def _group_block(g: GroupQA, cards: list[str], metric: str) -> str:
    title = (
        f"group {g.group} — est. {metric} {g.estimate:.4f} over {g.images} images, "
        f"lowest {g.lowest:.4f} ({g.worst})" + (f", {g.flagged} flagged" if g.flagged else "")
    )
    reasons = "".join(html.paragraph(r) for r in g.reasons) or html.paragraph(
        "nothing stands out", "muted"
    )
    return f"<h3>{html.escape(title)}</h3>{reasons}" + "".join(cards)


def _explain(metric: str, figures: dict, board: dict, cfg: QAConfig) -> list[str]:
    fit = (
        f"Estimated test {metric} {board['mean']:.4f} ± {board['half_width']:.4f} (95%; "
        f"{board['images']} images in {board['groups']} groups). Calibrated on {figures['images']} "
        f"OOF images in {figures['groups']} groups, cross-validated by "
        f"{figures['cross_validated_by']}: true mean {figures['true_mean']:.4f}, estimated "
        f"{figures['estimated_mean']:.4f}, Spearman(estimate, true) {figures['spearman']:.2f}."
    )
    how = (
        "Each image's estimate is a ridge regression of its log error on its quality features "
        "(uncertain band near the mask, its tail, edge width, soft vs hard Dice, clean-up, member "
        "disagreement, area outlier), fitted on the OOF predictions; reasons name the features "
        "that push an estimate down the most against the median OOF image. Flags "
        f"(hard rules, ranked first): member agreement < {cfg.min_agreement:g}; |robust z "
        f"of log area within the group| > {cfg.z_limit:g} (groups of >= {cfg.min_group}); "
        f"area < {cfg.empty_fraction:.2%} of the image; more than {cfg.max_components} components "
        "(binary)."
    )
    return [html.paragraph(fit), html.paragraph(how, "muted")]


def html_text(
    name: str,
    line: str,
    metric: str,
    summary: list[GroupQA],
    shown: list[ImageQA],
    thumbs: list[str],
    ranked: list[ImageQA],
    figures: dict,
    board: dict,
    cfg: QAConfig,
) -> str:
    """The gallery: summary, flagged images, the worst groups first with their lowest images,
    then tables."""
    body = [
        html.paragraph(line),
        *_explain(metric, figures, board, cfg),
        html.paragraph(
            "Thumbnails: image | ensemble prediction | uncertainty (bright = unsure) | pixels "
            "where the members' masks differ (magenta).",
            "muted",
        ),
    ]
    cards = [
        (row, _image_card(n, row, thumb, metric))
        for n, (row, thumb) in enumerate(zip(shown, thumbs, strict=True), start=1)
    ]
    flagged = [card for row, card in cards if row.flags]
    if flagged:
        body += [html.heading("Flagged by a hard rule"), *flagged]
    body.append(html.heading("Worst groups first"))
    by_group: dict[str, list[str]] = {}
    for row, card in cards:
        if not row.flags:
            by_group.setdefault(row.group, []).append(card)
    body += [_group_block(g, by_group[g.group], metric) for g in summary if g.group in by_group]
    body += [
        html.heading("All groups"),
        f"<p>{html.link('groups.csv', 'groups.csv')}</p>",
        html.table(
            GROUP_COLUMNS[:-1],
            (
                [rank, g.group, g.images, g.estimate, g.lowest, g.worst, g.flagged]
                for rank, g in enumerate(summary, start=1)
            ),
        ),
        html.heading("All test images"),
        f"<p>{html.link('qa.csv', 'qa.csv')}</p>",
        html.table(
            IMAGE_COLUMNS[:5] + IMAGE_COLUMNS[6:],
            (
                [
                    rank,
                    r.image_id,
                    r.group,
                    r.estimate,
                    ", ".join(r.flags),
                    r.agreement,
                    r.area,
                    r.area_z,
                    r.components,
                ]
                for rank, r in enumerate(ranked, start=1)
            ),
        ),
    ]
    return html.page(f"QA of ensemble {name}", body)
