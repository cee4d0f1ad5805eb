"""Shared fixtures: tiny generated datasets (tests never read ../shared)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.stages.demo_data import DemoSpec, write_demo

TINY = (96, 64)  # width, height: non-square on purpose


@pytest.fixture(scope="session")
def tiny_carvana(tmp_path_factory) -> Path:
    """A Carvana-layout dataset: 6 cars x 4 views (+1 test car), 96x64. Treat as read-only."""
    root = tmp_path_factory.mktemp("carvana") / "data"
    write_demo(root, DemoSpec(cars=6, views=4, test_cars=1, size=TINY, seed=1))
    return root


def save_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def make_folder_dataset(root: Path, n: int = 6, classes: int = 2, mask_scale: int = 1, seed: int = 0) -> Path:
    """images/<seq>_<i>.png + masks/<seq>_<i>.png with values 0..classes-1 (times mask_scale)."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        stem = f"seq{i % 3}_{i:03d}"
        save_png(root / "images" / f"{stem}.png", rng.integers(0, 255, (TINY[1], TINY[0], 3), dtype=np.uint8))
        mask = rng.integers(0, classes, (TINY[1], TINY[0])).astype(np.uint8) * mask_scale
        save_png(root / "masks" / f"{stem}.png", mask)
    return root


def write_config(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path
