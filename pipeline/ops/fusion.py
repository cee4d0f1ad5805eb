"""Fusion of member probabilities (uint8 in, uint8 out), mean or geometric mean, weighted.

``fuse`` (mean) works in fixed point: weights become integers summing to 2**16, the weighted sum
accumulates in uint32 and is rounded back to uint8 — one Numba pass per member, no float arrays.
``fuse_numpy`` is the float reference; the two agree to within one uint8 level.
"""

from __future__ import annotations

import numba
import numpy as np

FUSIONS = ("mean", "gmean")
_EPS = 1e-4
_ONE = 1 << 16


def _check(members_u8: list[np.ndarray], weights, mode: str) -> np.ndarray:
    if mode not in FUSIONS:
        raise ValueError(f"fusion must be one of {FUSIONS}, got {mode!r}")
    weights = np.asarray(weights, np.float64)
    if len(members_u8) != len(weights) or (weights < 0).any() or weights.sum() <= 0:
        raise ValueError("need one non-negative weight per member, not all zero")
    shape = members_u8[0].shape
    if any(m.shape != shape or m.dtype != np.uint8 for m in members_u8):
        raise ValueError(
            f"members must be uint8 of one shape, got {[(m.dtype, m.shape) for m in members_u8]}"
        )
    return weights / weights.sum()


def fixed_point_weights(weights: np.ndarray) -> np.ndarray:
    """Integer weights summing exactly to 2**16 (largest remainders get the rounding units)."""
    raw = weights * _ONE
    ints = np.floor(raw).astype(np.int64)
    short = _ONE - ints.sum()
    ints[np.argsort(ints - raw)[:short]] += 1
    return ints.astype(np.uint32)


@numba.njit(cache=True, nogil=True)
def _accumulate(acc: np.ndarray, probs: np.ndarray, weight: np.uint32) -> None:
    for i in range(acc.size):
        acc[i] += weight * np.uint32(probs[i])


@numba.njit(cache=True, nogil=True)
def _round(acc: np.ndarray, out: np.ndarray) -> None:
    half = np.uint32(1 << 15)
    for i in range(acc.size):
        out[i] = np.uint8((acc[i] + half) >> np.uint32(16))


def fuse(members_u8: list[np.ndarray], weights, mode: str = "mean") -> np.ndarray:
    """Weighted fusion of same-shape uint8 probability maps; returns uint8 round(p * 255).

    ``mean``: sum(w * p) / sum(w). ``gmean``: exp(sum(w * log p) / sum(w)) (p clipped to 1e-4),
    which punishes disagreement more.
    """
    w = _check(members_u8, weights, mode)
    if mode == "gmean":
        return fuse_numpy(members_u8, w, mode)
    if len(members_u8) == 1:
        return members_u8[0].copy()
    acc = np.zeros(members_u8[0].size, np.uint32)
    for weight, probs in zip(fixed_point_weights(w), members_u8, strict=True):
        if weight:
            _accumulate(acc, np.ascontiguousarray(probs).reshape(-1), weight)
    out = np.empty(acc.size, np.uint8)
    _round(acc, out)
    return out.reshape(members_u8[0].shape)


def fuse_numpy(members_u8: list[np.ndarray], weights, mode: str = "mean") -> np.ndarray:
    """Float reference of :func:`fuse` (and the gmean implementation)."""
    w = _check(members_u8, weights, mode).astype(np.float32)
    acc = np.zeros(members_u8[0].shape, np.float32)
    for weight, probs in zip(w, members_u8, strict=True):
        if weight == 0:
            continue
        p = probs.astype(np.float32) * np.float32(1 / 255)
        acc += weight * (p if mode == "mean" else np.log(np.maximum(p, _EPS)))
    fused = acc if mode == "mean" else np.exp(acc)
    return np.rint(np.clip(fused, 0, 1) * 255).astype(np.uint8)
