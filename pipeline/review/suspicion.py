"""Prediction QA: a calibrated estimate of every test image's score, per-image flags,
per-group report.

Each image gets quality features (``pipeline.review.quality``: uncertain band, soft vs hard Dice,
edge width, clean-up, fragments, per class for multi-class) plus the signals below, and an
estimate of its score (Dice, or mIoU for multi-class) from ``pipeline.review.estimate``, fitted on
the OOF predictions where the truth is known. Images rank by that estimate, worst first, with the
images a hard rule flags ahead of all others. Hard rules (one row per image, see ``measure``):

- **member agreement** — mean pairwise Dice (binary) or mean pairwise mIoU (multi-class, IoU of
  one member's label map against another's) of the members' masks; ``None`` with < 2 members.
  Flag ``disagreement`` when below ``min_agreement``.
- **area outlier** — ``area`` is the predicted foreground fraction (binary: class 1; multi-class:
  every class but ``background``, the ``folds.background`` class). Within a group (the 16 views of
  a car, a drive) the modified z-score of log area (Iglewicz & Hoaglin) is
  ``z = 0.6745 (log(area + eps) - median) / max(MAD, mad_floor)``; logs so that 3x and 1/3x count
  alike, the MAD floor so that near-identical siblings do not turn a 10% difference into a
  huge z. Groups with fewer than ``min_group`` images get no z (two images cannot say which one is
  odd). Flag ``area_outlier`` when ``|z| > z_limit``. With ``views`` (Carvana: the ``NN`` of
  ``<car>_<NN>``, a fixed turntable angle) a view effect is removed first: Tukey's median polish
  fits ``log area ~ group effect + view effect`` over all groups, so a front view is not odd for
  being smaller than its car's side views. On the demo generator's 16-view cars this takes the
  share of natural views flagged at ``|z| > 3.5`` from 6-7% to none;
  a 3x or 1/3x area still scores |z| ~ 7.
- **empty** — ``area < empty_fraction``.
- **fragmented** — more than ``max_components`` 8-connected components (binary tasks only).

Disagreement (``1 - agreement``), ``|area_z|`` and empty also enter the estimate as features, so a
failure the hard rules see pulls the estimate down too. Reasons: the flags' explanations, then the
features that push the estimate down most against the median OOF image
(``pipeline.review.reasons``, which also reports per group).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from pipeline.decide.postprocess import component_count
from pipeline.errors import PipelineError
from pipeline.ops.metrics import confusion_matrix, dice_score, mean_iou

LOG_EPS = 1e-4  # area fraction added before the log, so an empty mask has a finite log area
FLAG_NAMES = {
    "disagreement": ("member disagreement", "member disagreements"),  # (one, several)
    "area_outlier": ("area outlier", "area outliers"),
    "empty": ("empty", "empty"),
    "fragmented": ("fragmented", "fragmented"),
}


@dataclass(frozen=True)
class QAConfig:
    """Flag limits (see the module docstring)."""

    min_agreement: float = 0.9
    z_limit: float = 3.5
    empty_fraction: float = 0.001
    max_components: int = 3
    min_group: int = 3
    mad_floor: float = 0.1

    def __post_init__(self):
        rules = {
            "min_agreement": (0 <= self.min_agreement < 1, "in [0, 1)"),
            "z_limit": (self.z_limit > 0, "> 0"),
            "empty_fraction": (0 <= self.empty_fraction < 1, "in [0, 1)"),
            "max_components": (self.max_components >= 1, ">= 1"),
            "min_group": (self.min_group >= 2, ">= 2"),
            "mad_floor": (self.mad_floor > 0, "> 0"),
        }
        for key, (ok, need) in rules.items():
            if not ok:
                raise PipelineError(
                    f"QA limit {key} = {getattr(self, key)}: must be {need}; "
                    f"fix --{key.replace('_', '-')}"
                )


@dataclass
class ImageQA:
    """What QA measured and concluded about one image."""

    image_id: str
    group: str
    agreement: float | None
    area: float
    components: int | None
    area_z: float | None = None
    expected: float | None = None  # area the group (and view) suggests
    features: dict[str, float] = field(default_factory=dict)  # pipeline.review.quality
    estimate: float | None = None  # estimated score (Dice / mIoU)
    flags: list[str] = field(default_factory=list)
    reasons: list[str] = field(
        default_factory=list
    )  # flags' explanations, then the estimate's drivers

    def quality(self) -> dict[str, float]:
        """What the estimator reads: the features plus disagreement, |area z| and empty."""
        extra = {"area_z": abs(self.area_z or 0.0), "empty": float("empty" in self.flags)}
        if self.agreement is not None:
            extra["disagreement"] = 1.0 - self.agreement
        return {**self.features, **extra}


def agreement(labels: list[np.ndarray], num_classes: int) -> float | None:
    """Mean pairwise Dice (2 classes) or mIoU (more) of the members' ``(h, w)`` label maps;
    None if < 2."""
    if len(labels) < 2:
        return None
    if num_classes == 2:
        scores = [dice_score(a, b) for a, b in combinations(labels, 2)]
    else:
        scores = [mean_iou(confusion_matrix(a, b, num_classes)) for a, b in combinations(labels, 2)]
    return float(np.mean(scores))


def measure(
    image_id: str,
    group: str,
    label: np.ndarray,
    member_labels: list[np.ndarray],
    num_classes: int,
    background: int = 0,
    features: dict[str, float] | None = None,
) -> ImageQA:
    """Agreement, foreground area fraction and (binary) component count of one image's final label
    map, with its quality ``features``."""
    area = float(np.count_nonzero(label != background)) / label.size
    components = component_count(label != background) if num_classes == 2 else None
    return ImageQA(
        image_id,
        group,
        agreement(member_labels, num_classes),
        area,
        components,
        features=dict(features or {}),
    )


def robust_z(values: np.ndarray, floor: float) -> tuple[np.ndarray, float]:
    """Modified z-scores ``0.6745 (x - median) / max(MAD, floor)`` and the median."""
    median = float(np.median(values))
    mad = float(np.median(np.abs(values - median)))
    return 0.6745 * (values - median) / max(mad, floor), median


def view_effects(
    rows: list[ImageQA], views: dict[str, str], min_groups: int = 3, sweeps: int = 4
) -> dict[str, float]:
    """Median polish of ``log(area + eps) ~ group + view``: the view effects.

    Views present in fewer than ``min_groups`` groups get effect 0 (too few cars to tell).
    """
    groups = {g: i for i, g in enumerate(sorted({r.group for r in rows}))}
    keys = {v: j for j, v in enumerate(sorted(set(views.values())))}
    table = np.full((len(groups), len(keys)), np.nan)
    for r in rows:
        table[groups[r.group], keys[views[r.image_id]]] = np.log(r.area + LOG_EPS)
    effect = np.zeros(len(keys))
    for _ in range(sweeps):
        group_effect = np.nanmedian(table - effect, axis=1)
        effect = np.nanmedian(table - group_effect[:, None], axis=0)
    effect[np.count_nonzero(~np.isnan(table), axis=0) < min_groups] = 0.0
    return {v: float(effect[j]) for v, j in keys.items()}


def add_area_z(rows: list[ImageQA], cfg: QAConfig, views: dict[str, str] | None = None) -> None:
    """Fill ``area_z`` and ``expected`` (area fraction) of rows in groups
    of ``>= min_group`` images.

    ``views`` (image id -> view key, every row) enables the view effect (module docstring).
    """
    effect = view_effects(rows, views) if views else {}
    groups: dict[str, list[ImageQA]] = defaultdict(list)
    for row in rows:
        groups[row.group].append(row)
    for members in groups.values():
        if len(members) < cfg.min_group:
            continue
        shift = np.array([effect.get(views[r.image_id], 0.0) if views else 0.0 for r in members])
        z, median = robust_z(
            np.log(np.array([r.area for r in members]) + LOG_EPS) - shift, cfg.mad_floor
        )
        for row, value, offset in zip(members, z, shift, strict=True):
            row.area_z, row.expected = (
                float(value),
                float(max(np.exp(median + offset) - LOG_EPS, 0.0)),
            )


def _flags(row: ImageQA, cfg: QAConfig, metric: str) -> list[tuple[str, str]]:
    """(flag, reason) pairs raised by ``row``."""
    out = []
    if row.agreement is not None and row.agreement < cfg.min_agreement:
        out.append(
            (
                "disagreement",
                f"members disagree: mean pairwise {metric} {row.agreement:.3f} "
                f"< {cfg.min_agreement:g}",
            )
        )
    if row.area_z is not None and abs(row.area_z) > cfg.z_limit:
        out.append(
            (
                "area_outlier",
                f"area {row.area:.2%} where group {row.group} suggests {row.expected:.2%} "
                f"(robust z {row.area_z:+.1f}, limit {cfg.z_limit:g})",
            )
        )
    if row.area < cfg.empty_fraction:
        out.append(
            ("empty", f"(nearly) empty mask: area {row.area:.3%} < {cfg.empty_fraction:.2%}")
        )
    if row.components is not None and row.components > cfg.max_components:
        out.append(("fragmented", f"{row.components} separate components > {cfg.max_components}"))
    return out


def flag(
    rows: list[ImageQA],
    cfg: QAConfig = QAConfig(),
    metric: str = "Dice",
    views: dict[str, str] | None = None,
) -> None:
    """Area z-scores, flags and their reasons of all rows (in place).

    ``metric`` names the agreement measure in reasons; ``views`` as in ``add_area_z``.
    """
    add_area_z(rows, cfg, views)
    for row in rows:
        raised = _flags(row, cfg, metric)
        row.flags, row.reasons = [f for f, _ in raised], [r for _, r in raised]


def rank(rows: list[ImageQA]) -> list[ImageQA]:
    """Flagged images first, each part by ascending estimate (ties by image id)."""
    return sorted(
        rows, key=lambda r: (not r.flags, 2.0 if r.estimate is None else r.estimate, r.image_id)
    )


def assess(
    rows: list[ImageQA],
    cfg: QAConfig = QAConfig(),
    metric: str = "Dice",
    views: dict[str, str] | None = None,
) -> list[ImageQA]:
    """Flags (``flag``) and the ranking (``rank``);
    estimates come from ``pipeline.review.reasons.estimate``."""
    flag(rows, cfg, metric, views)
    return rank(rows)


def short_reason(row: ImageQA) -> str:
    """The first reason of a row in a few words (e.g. ``area z=-6.1``, ``uncertain band ...``)."""
    if not row.flags:
        return row.reasons[0] if row.reasons else "nothing stands out"
    worst = row.flags[0]
    return {
        "disagreement": f"member agreement {row.agreement:.2f}"
        if row.agreement is not None
        else "",
        "area_outlier": f"area z={row.area_z:+.1f}" if row.area_z is not None else "",
        "empty": f"empty, area {row.area:.3%}",
        "fragmented": f"{row.components} components",
    }[worst]


def summary_line(
    ranked: list[ImageQA],
    where: str,
    worst_group=None,
    metric: str = "Dice",
    board: dict | None = None,
) -> str:
    """E.g. ``QA: 3 of 32 test images flagged (1 member disagreement, 2 empty); worst X
    (area z=-6.1); worst group G (est. Dice 0.9710); estimated test Dice 0.9821 ± 0.0040 — see
    P``; ``worst_group`` is a ``pipeline.review.reasons.GroupQA``, ``board``
    ``pipeline.review.estimate.leaderboard``'s result."""
    flagged = [r for r in ranked if r.flags]
    counts = {name: sum(name in r.flags for r in flagged) for name in FLAG_NAMES}
    detail = ", ".join(f"{n} {FLAG_NAMES[k][n > 1]}" for k, n in counts.items() if n)
    parts = [
        f"QA: {len(flagged)} of {len(ranked)} test images flagged"
        + (f" ({detail})" if flagged else "")
    ]
    if flagged:
        parts.append(f"worst {flagged[0].image_id} ({short_reason(flagged[0])})")
    if worst_group is not None and not np.isnan(worst_group.estimate):
        parts.append(f"worst group {worst_group.group} (est. {metric} {worst_group.estimate:.4f})")
    if board is not None:
        parts.append(f"estimated test {metric} {board['mean']:.4f} ± {board['half_width']:.4f}")
    return "; ".join(parts) + f" — see {where}"
