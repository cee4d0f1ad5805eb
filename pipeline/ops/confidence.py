"""Per-image confidence scores of uint8 probability maps (lower = more confident)."""

from __future__ import annotations

import numpy as np


def band_fraction(probs_u8: np.ndarray, lo: float, hi: float) -> float:
    """Fraction of pixels with lo < p < hi (the uncertain band); (C, H, W) or (H, W) uint8."""
    p = np.asarray(probs_u8)
    lo_level, hi_level = lo * 255.0, hi * 255.0
    return float(np.count_nonzero((p > lo_level) & (p < hi_level))) / max(p.size, 1)


def _binary_entropy_lut() -> np.ndarray:
    p = np.arange(256, dtype=np.float64) / 255.0
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(p * np.log2(p) + (1 - p) * np.log2(1 - p))
    return np.nan_to_num(h, nan=0.0)


_LUT = _binary_entropy_lut()


def mean_entropy(probs_u8: np.ndarray) -> float:
    """Mean per-pixel entropy in bits: binary entropy of each channel's probability.

    For a (1, H, W) binary map that is the pixel's entropy; for (C, H, W) maps it is the mean of the
    per-class binary entropies (each class as its own yes/no question), in [0, 1].
    """
    return float(_LUT[np.asarray(probs_u8)].mean())


def mean_entropy_numpy(probs_u8: np.ndarray) -> float:
    """Reference without the lookup table."""
    p = np.asarray(probs_u8, np.float64) / 255.0
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(p * np.log2(p) + (1 - p) * np.log2(1 - p))
    return float(np.nan_to_num(h, nan=0.0).mean())
