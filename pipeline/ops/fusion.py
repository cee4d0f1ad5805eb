"""Fusion of member probabilities (uint8 in, uint8 out), mean or geometric mean, weighted."""
from __future__ import annotations

import numpy as np

FUSIONS = ("mean", "gmean")
_EPS = 1e-4


def fuse(members_u8: list[np.ndarray], weights: np.ndarray, mode: str = "mean") -> np.ndarray:
    """Weighted fusion of same-shape uint8 probability maps; returns uint8 round(p * 255).

    ``mean``: sum(w * p) / sum(w). ``gmean``: exp(sum(w * log p) / sum(w)) (p clipped to 1e-4),
    the fusion that punishes disagreement more.
    """
    if mode not in FUSIONS:
        raise ValueError(f"fusion must be one of {FUSIONS}, got {mode!r}")
    weights = np.asarray(weights, np.float64)
    if len(members_u8) != len(weights) or weights.sum() <= 0:
        raise ValueError("need one non-negative weight per member, not all zero")
    shape = members_u8[0].shape
    if any(m.shape != shape for m in members_u8):
        raise ValueError(f"member shapes differ: {[m.shape for m in members_u8]}")
    w = (weights / weights.sum()).astype(np.float32)
    acc = np.zeros(shape, np.float32)
    for weight, probs in zip(w, members_u8, strict=True):
        if weight == 0:
            continue
        p = probs.astype(np.float32) * np.float32(1 / 255)
        acc += weight * (p if mode == "mean" else np.log(np.maximum(p, _EPS)))
    fused = acc if mode == "mean" else np.exp(acc)
    return np.rint(np.clip(fused, 0, 1) * 255).astype(np.uint8)
