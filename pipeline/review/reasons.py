"""Estimates and their reasons for QA rows, and the per-group report (worst groups first).

A reason names a feature that pushes an image's estimated error up against the median OOF image
(``Estimator.contributions``), with the image's value and the median's: the estimate's drivers.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from pipeline.review.estimate import Estimator
from pipeline.review.suspicion import FLAG_NAMES, ImageQA

LABELS = {
    "area": "area share",
    "band": "uncertain band (0.1<p<0.9) per area",
    "band_wide": "wide band (0.02<p<0.98) per area",
    "band_far": "uncertain pixels away from the mask per area",
    "soft_dice": "soft Dice",
    "edge_width": "edge width (px)",
    "removed": "share cut by clean-up",
    "components": "components before clean-up",
    "disagreement": "member disagreement",
    "area_z": "area z in group",
    "empty": "empty",
}
MIN_PUSH = float(
    np.log(1.05)
)  # a driver raises the estimated error by >= 5% over the median OOF image


@dataclass
class GroupQA:
    """One group (a car, a drive): its images' estimates, flags and main reasons."""

    group: str
    images: int
    estimate: float  # mean of its images' estimates (the group's share of the leaderboard score)
    lowest: float
    worst: str  # image id of the lowest estimate
    flagged: int
    reasons: list[str]


def label(feature: str) -> str:
    """``band:car`` -> ``uncertain band (...) per area of car``."""
    base, _, cls = feature.partition(":")
    return LABELS.get(base, base) + (f" of {cls}" if cls else "")


def drivers(estimator: Estimator, row: ImageQA, limit: int = 2) -> list[tuple[str, float]]:
    """The features pushing this row's estimated error up the most (> ``MIN_PUSH``):
    (feature, push)."""
    push = estimator.contributions(row.quality())
    top = sorted((p, f) for f, p in push.items() if p > MIN_PUSH)[::-1][:limit]
    return [(f, p) for p, f in top]


def driver_text(estimator: Estimator, feature: str, value: float) -> str:
    return f"{label(feature)} {value:.3g} (median OOF image {estimator.typical[feature]:.3g})"


def estimate(rows: list[ImageQA], estimator: Estimator) -> None:
    """Fill each row's ``estimate`` and append its drivers to its reasons
    (after the flags' reasons)."""
    scores = estimator.predict([r.quality() for r in rows])
    for row, score in zip(rows, scores, strict=True):
        row.estimate = float(score)
        quality = row.quality()
        row.reasons += [driver_text(estimator, f, quality[f]) for f, _ in drivers(estimator, row)]


def groups(
    ranked: list[ImageQA], estimator: Estimator | None = None, limit: int = 2
) -> list[GroupQA]:
    """Per-group summary, worst first: by mean estimate
    (the group's share of the leaderboard score).

    A group's reasons: its flags (counted), then the features pushing its images' error up the most
    on average.
    """
    by_group: dict[str, list[ImageQA]] = defaultdict(list)
    for row in ranked:
        by_group[row.group].append(row)
    out = []
    for name, rows in by_group.items():
        est = [r.estimate for r in rows if r.estimate is not None]
        worst = min(rows, key=lambda r: (2.0 if r.estimate is None else r.estimate, r.image_id))
        reasons = [
            f"{n} {FLAG_NAMES[k][n > 1]}"
            for k in FLAG_NAMES
            if (n := sum(k in r.flags for r in rows))
        ]
        if estimator is not None:
            push = defaultdict(float)
            for r in rows:
                for f, p in estimator.contributions(r.quality()).items():
                    push[f] += p / len(rows)
            top = sorted(((p, f) for f, p in push.items() if p > MIN_PUSH), reverse=True)[:limit]
            reasons += [
                driver_text(estimator, f, float(np.mean([r.quality()[f] for r in rows])))
                for _, f in top
            ]
        out.append(
            GroupQA(
                name,
                len(rows),
                float(np.mean(est)) if est else float("nan"),
                float(min(est)) if est else float("nan"),
                worst.image_id,
                sum(bool(r.flags) for r in rows),
                reasons,
            )
        )
    return sorted(out, key=lambda g: (g.estimate, g.group))
