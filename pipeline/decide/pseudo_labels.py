"""Pseudo-label selection and the pseudo table.

A pseudo table is a folds table (``image_id, group, fold, area, area_bin``) with two more
columns, ``mask`` (path of the pseudo mask PNG) and ``soft`` (1 if the PNG holds probabilities
0..255, 0 if it holds hard {0,1} labels). Every row has fold = -1: it trains in every fold and
never validates, so OOF scores stay comparable across rounds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.config.recipe import PSEUDO_TAU
from pipeline.data.splits import TRAIN_ONLY
from pipeline.errors import PipelineError
from pipeline.ops.confidence import band_fraction, mean_entropy

PSEUDO_COLUMNS = ("image_id", "group", "fold", "area", "area_bin", "mask", "soft")
RULES = ("band", "entropy")


@dataclass(frozen=True)
class PseudoRule:
    """``band``: fraction of pixels with lo < p < hi must be below tau; ``entropy``: mean pixel
    entropy (bits) below tau. ``top_n`` keeps only the N most confident of those."""

    kind: str = "band"
    tau: float = PSEUDO_TAU
    lo: float = 0.1
    hi: float = 0.9
    top_n: int | None = None

    def __post_init__(self):
        if self.kind not in RULES:
            raise PipelineError(
                f"pseudo rule '{self.kind}' is unknown; choose one of {list(RULES)}"
            )
        if not 0 <= self.lo < self.hi <= 1:
            raise PipelineError(
                f"pseudo band needs 0 <= lo < hi <= 1, got lo={self.lo} hi={self.hi}"
            )

    def score(self, probs_u8: np.ndarray) -> float:
        return (
            band_fraction(probs_u8, self.lo, self.hi)
            if self.kind == "band"
            else mean_entropy(probs_u8)
        )


def select(scores: dict[str, float], rule: PseudoRule) -> list[str]:
    """Ids whose score is below tau, most confident first, capped at top_n (ties by id)."""
    chosen = sorted((s, i) for i, s in scores.items() if s < rule.tau)
    if rule.top_n is not None:
        chosen = chosen[: rule.top_n]
    return [i for _, i in chosen]


@dataclass(frozen=True)
class PseudoRow:
    image_id: str
    group: str
    area: float
    mask: str
    soft: bool
    fold: int = TRAIN_ONLY


def table_to_csv(rows: list[PseudoRow]) -> str:
    lines = [",".join(PSEUDO_COLUMNS)]
    lines += [
        f"{r.image_id},{r.group},{r.fold},{r.area:.6f},0,{r.mask},{int(r.soft)}" for r in rows
    ]
    return "\n".join(lines) + "\n"


def table_from_csv(text: str, source: str) -> list[PseudoRow]:
    lines = text.splitlines()
    if not lines or tuple(lines[0].split(",")) != PSEUDO_COLUMNS:
        raise PipelineError(
            f"{source}: header must be {','.join(PSEUDO_COLUMNS)}; make it with 'pipeline pseudo'"
        )
    rows = []
    for n, line in enumerate(lines[1:], start=2):
        parts = line.split(",")
        try:
            row = PseudoRow(
                parts[0], parts[1], float(parts[3]), parts[5], parts[6] == "1", int(parts[2])
            )
        except (IndexError, ValueError):
            raise PipelineError(f"{source} line {n}: malformed row {line!r}") from None
        if row.fold != TRAIN_ONLY:
            raise PipelineError(
                f"{source} line {n}: pseudo rows must have fold -1 (train-only), got {row.fold}"
            )
        rows.append(row)
    return rows


def check_no_leak(rows: list[PseudoRow], labelled_ids: set[str], source: str) -> None:
    """A pseudo row may not be a labelled image (its true mask would be replaced,
    or it leaks into OOF)."""
    leaked = sorted(r.image_id for r in rows if r.image_id in labelled_ids)
    if leaked:
        raise PipelineError(
            f"{source}: image '{leaked[0]}' (+{len(leaked) - 1} more) is labelled; pseudo tables "
            "may only hold unlabelled images — regenerate it from the test set"
        )
