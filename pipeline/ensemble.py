"""Ensemble components: member weights (equal, fixed, fit on OOF) and the binarisation of fused maps."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from pipeline import store_codec
from pipeline.errors import PipelineError
from pipeline.ops.fusion import fuse
from pipeline.ops.rle import parse_rle, rle_encode, rle_encode_probs
from pipeline.ops.threshold import areas_from_histograms, dice_table, histograms
from pipeline.postprocess import clean


@dataclass(frozen=True)
class Decision:
    """How fused probabilities become masks (binary tasks)."""

    threshold: float = 0.5
    min_area: float = 0
    cleanup: bool = False

    def mask(self, probs_u8: np.ndarray) -> np.ndarray:
        """(h, w) uint8 {0,1} from (h, w) uint8 probabilities: p > threshold, min area, clean-up."""
        mask = (probs_u8 > self.threshold * 255).astype(np.uint8)
        if self.cleanup and mask.any():
            mask = clean(mask)
        if self.min_area and np.count_nonzero(mask) < self.min_area:
            mask[:] = 0
        return mask

    def masks(self, probs_u8: np.ndarray) -> list[np.ndarray]:
        """One binary mask per foreground class, from (1, h, w) probabilities."""
        return [self.mask(probs_u8[0])]

    def rle(self, probs_u8: np.ndarray, order: str) -> str:
        """RLE of the decided mask straight from (h, w) probabilities: no mask array unless clean-up
        needs one; min area checked on the run lengths."""
        if self.cleanup:
            return rle_encode(self.mask(probs_u8), order)
        rle = rle_encode_probs(probs_u8, self.threshold, order)
        if self.min_area and rle and parse_rle(rle)[1].sum() < self.min_area:
            return ""
        return rle

    def label(self, probs_u8: np.ndarray) -> np.ndarray:
        return self.mask(probs_u8[0])


@dataclass(frozen=True)
class MulticlassDecision:
    """Exclusive classes: argmax of the fused probabilities. Multi-label (Severstal style): each class
    thresholded on its own (``thresholds``/``min_areas`` per class; class 0 is background)."""

    mode: str = "argmax"
    thresholds: tuple[float, ...] = ()
    min_areas: tuple[float, ...] = ()

    def label(self, probs_u8: np.ndarray) -> np.ndarray:
        """(h, w) uint8 class ids. Multi-label masks overlapping: the higher class id wins."""
        if self.mode == "argmax":
            return probs_u8.argmax(0).astype(np.uint8)
        label = np.zeros(probs_u8.shape[1:], np.uint8)
        for c, mask in enumerate(self.masks(probs_u8), start=1):
            label[mask.astype(bool)] = c
        return label

    def masks(self, probs_u8: np.ndarray) -> list[np.ndarray]:
        """One binary mask per foreground class 1..C-1."""
        if self.mode == "argmax":
            label = probs_u8.argmax(0)
            return [(label == c).astype(np.uint8) for c in range(1, probs_u8.shape[0])]
        out = []
        for c in range(1, probs_u8.shape[0]):
            mask = (probs_u8[c] > self.thresholds[c] * 255).astype(np.uint8)
            if self.min_areas[c] and np.count_nonzero(mask) < self.min_areas[c]:
                mask[:] = 0
            out.append(mask)
        return out


def fuse_stored(stores: list, image_id: str, weights, mode: str = "mean") -> tuple[np.ndarray, tuple[int, int]]:
    """Fused ``(C, h, w)`` uint8 of one image from member stores, and the image's original (H, W).

    Members stored at one size (runs of one resolution) are fused at that size, so the one resize
    to the original size comes after the fusion; members of different sizes are each resized
    first. The fused OOF store and the test pass both fuse through here, so the threshold tuned
    on the one applies exactly to the other.
    """
    entries = [store.read_stored(image_id) for store in stores]
    original = entries[0][1]
    if any(tuple(o) != tuple(original) for _, o in entries):
        raise PipelineError(f"image '{image_id}': members hold it at different original sizes "
                            f"({sorted({tuple(o) for _, o in entries})}); were they predicted on one dataset?")
    maps = [probs for probs, _ in entries]
    if len({m.shape for m in maps}) > 1:
        maps = [store_codec.resize(m, original) for m in maps]
    return fuse(maps, weights, mode), original


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


class ArgmaxScorer:
    """mIoU of the argmax of a candidate's fused probabilities."""

    def __init__(self, task):
        self.task, self.acc = task, task.accumulator()

    def add(self, fused: np.ndarray, mask: np.ndarray) -> None:
        self.acc.add(fused.astype(np.float32) / 255.0, mask)

    def score(self) -> float:
        return self.acc.result(self.acc.state, self.task.classes)["miou"]


def fit_weights(images: Callable[[], Iterable[tuple[list[np.ndarray], np.ndarray]]], members: int,
                grid: list[float], rounds: int, mode: str = "mean",
                scorer: Callable[[], object] = BinaryScorer) -> tuple[np.ndarray, float]:
    """Coordinate ascent on member weights maximising the fused OOF score (``scorer``: best-threshold
    Dice for binary tasks, argmax mIoU for multi-class ones).

    ``images()`` yields (member uint8 maps (C, h, w), mask (h, w) class ids) for every OOF image;
    each round is one pass that scores every single-weight change on the grid at once.
    """
    weights = np.ones(members) / members
    best = None
    for _ in range(rounds):
        candidates = [weights]
        for m in range(members):
            for value in grid:
                trial = weights.copy()
                trial[m] = value
                if trial.sum() > 0 and not any(np.allclose(normalized(trial), normalized(c)) for c in candidates):
                    candidates.append(trial)
        scorers = [scorer() for _ in candidates]
        for member_maps, mask in images():
            for sc, cand in zip(scorers, candidates, strict=True):
                sc.add(fuse(member_maps, cand, mode), mask)
        scores = [sc.score() for sc in scorers]
        top = int(np.argmax(scores))
        if best is not None and scores[top] <= best + 1e-12:
            break
        weights, best = normalized(candidates[top]), scores[top]
    return normalized(weights), float(best)
