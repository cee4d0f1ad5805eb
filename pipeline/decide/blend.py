"""Ensemble components: member weights (equal, fixed, fit on OOF) and the scorers that
judge them."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from pipeline.decide import store_codec
from pipeline.decide.decision import Decision
from pipeline.errors import PipelineError
from pipeline.ops.fusion import fuse
from pipeline.ops.metrics import dice_score
from pipeline.ops.threshold import areas_from_histograms, dice_table, histograms

Entry = tuple[np.ndarray, tuple[int, int]]  # (C, h, w) uint8 as stored, the original (H, W)


def fuse_entries(
    entries: list[Entry], weights, mode: str = "mean", image_id: str = "?"
) -> tuple[np.ndarray, tuple[int, int]]:
    """Fused ``(C, h, w)`` uint8 of one image from its member entries, and its original (H, W).

    Members stored at one size (runs of one resolution) are fused at that size, so the one resize
    to the original size comes after the fusion; members of different sizes are each resized
    first. Weight fitting, the fused OOF store and the test pass all fuse through here, so the
    weights and the threshold chosen on the one apply exactly to the others.
    """
    original = entries[0][1]
    if any(tuple(o) != tuple(original) for _, o in entries):
        raise PipelineError(
            f"image '{image_id}': members hold it at different original sizes "
            f"({sorted({tuple(o) for _, o in entries})}); were they predicted on one dataset?"
        )
    maps = [probs for probs, _ in entries]
    if len({m.shape for m in maps}) > 1:
        maps = [store_codec.resize(m, original) for m in maps]
    return fuse(maps, weights, mode), original


def fuse_stored(
    stores: list, image_id: str, weights, mode: str = "mean"
) -> tuple[np.ndarray, tuple[int, int]]:
    """``fuse_entries`` of one image read from member stores (as stored)."""
    return fuse_entries([store.read_stored(image_id) for store in stores], weights, mode, image_id)


def normalized(weights: Iterable[float]) -> np.ndarray:
    w = np.asarray(list(weights), np.float64)
    return w / w.sum()


def best_dice(hist_all: list, hist_pos: list) -> float:
    """Best mean Dice over all thresholds (min_area 0) of one candidate's per-image histograms."""
    pred, tp, gt = areas_from_histograms(np.stack(hist_all), np.stack(hist_pos))
    return float(dice_table(pred[:, 0], tp[:, 0], gt[:, 0]).mean(axis=0).max())


class BinaryScorer:
    """Best mean Dice over thresholds of a candidate, from per-image histograms."""

    def __init__(self):
        self.hist_all, self.hist_pos = [], []

    def add(self, fused: np.ndarray, mask: np.ndarray) -> None:
        a, p = histograms(fused, (mask == 1)[None])
        self.hist_all.append(a)
        self.hist_pos.append(p)

    def score(self) -> float:
        return best_dice(self.hist_all, self.hist_pos)


class CleanupScorer(BinaryScorer):
    """The better of: the best-threshold Dice without clean-up, and the Dice with clean-up (largest
    component + holes filled) at 0.5.

    Weights are judged under the decision the submission will use: without clean-up in the fit, a
    member that only adds false blobs far from the car (which clean-up removes anyway) looks worse
    than it is, and one that blurs the outline looks better (measured on Carvana: fit without
    clean-up chose weights that lost 0.0012 Dice after clean-up against the best member alone).
    """

    DECISION = Decision(threshold=127 / 255, min_area=0, cleanup=True)

    def __init__(self):
        super().__init__()
        self.cleaned: list[float] = []

    def add(self, fused: np.ndarray, mask: np.ndarray) -> None:
        super().add(fused, mask)
        self.cleaned.append(dice_score(self.DECISION.mask(fused[0]), mask == 1))

    def score(self) -> float:
        return max(super().score(), float(np.mean(self.cleaned)))


class ArgmaxScorer:
    """mIoU of the argmax of a candidate's fused probabilities."""

    def __init__(self, task):
        self.task, self.acc = task, task.accumulator()

    def add(self, fused: np.ndarray, mask: np.ndarray) -> None:
        self.acc.add(fused.astype(np.float32) / 255.0, mask)

    def score(self) -> float:
        return self.acc.result(self.acc.state, self.task.classes)["miou"]


def fit_weights(
    images: Callable[[], Iterable[tuple[list[Entry], np.ndarray]]],
    members: int,
    grid: list[float],
    rounds: int,
    mode: str = "mean",
    scorer: Callable[[], object] = BinaryScorer,
) -> tuple[np.ndarray, float]:
    """Coordinate ascent on member weights maximising the fused OOF score (``scorer``:
    best-threshold Dice for binary tasks, argmax mIoU for multi-class ones).

    ``images()`` yields (member entries as stored, mask (H, W) class ids) for every OOF image; a
    candidate is scored on ``fuse_entries`` resized to the original size: the very maps the fused
    OOF store will hold. Each round is one pass that scores every single-weight change on the grid.
    """
    weights = np.ones(members) / members
    best = None
    for _ in range(rounds):
        candidates = [weights]
        for m in range(members):
            for value in grid:
                trial = weights.copy()
                trial[m] = value
                if trial.sum() > 0 and not any(
                    np.allclose(normalized(trial), normalized(c)) for c in candidates
                ):
                    candidates.append(trial)
        scorers = [scorer() for _ in candidates]
        for entries, mask in images():
            for sc, cand in zip(scorers, candidates, strict=True):
                sc.add(store_codec.resize(*fuse_entries(entries, cand, mode)), mask)
        scores = [sc.score() for sc in scorers]
        top = int(np.argmax(scores))
        if best is not None and scores[top] <= best + 1e-12:
            break
        weights, best = normalized(candidates[top]), scores[top]
    return normalized(weights), float(best)
