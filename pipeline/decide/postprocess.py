"""Mask clean-up for binary tasks: keep the largest connected component, fill holes (OpenCV)."""

from __future__ import annotations

import cv2
import numpy as np


def largest_component(mask: np.ndarray) -> np.ndarray:
    """Keep only the largest 8-connected foreground component of a (H, W) {0,1} mask."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        mask.astype(np.uint8), connectivity=8
    )
    if count <= 2:
        return (mask != 0).astype(np.uint8)
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return (labels == biggest).astype(np.uint8)


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Set background regions not 4-connected to the image border to foreground."""
    binary = (mask != 0).astype(np.uint8)
    padded = np.pad(binary, 1)
    flood = padded.copy()
    cv2.floodFill(
        flood, np.zeros((flood.shape[0] + 2, flood.shape[1] + 2), np.uint8), (0, 0), 1, flags=4
    )
    holes = flood[1:-1, 1:-1] == 0
    return (binary | holes).astype(np.uint8)


def clean(mask: np.ndarray) -> np.ndarray:
    """Largest component, then holes filled (the Carvana car is one solid object)."""
    return fill_holes(largest_component(mask))


def component_count(mask: np.ndarray) -> int:
    """Number of 8-connected foreground components."""
    return int(cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)[0]) - 1
