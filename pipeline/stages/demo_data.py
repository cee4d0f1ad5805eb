"""Stage: write a synthetic dataset in the exact Kaggle Carvana layout.

``train/<car>_<NN>.jpg``, ``train_masks/<car>_<NN>_mask.gif`` (palette, values {0,1}),
``train_masks.csv`` (row-major 1-based RLE), ``test/*.jpg`` (unlabelled) and
``sample_submission.csv`` (dummy ``1 1`` masks, as Kaggle ships it).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.data.synthetic.cars import random_car, render_view
from pipeline.errors import PipelineError
from pipeline.fsio import atomic_open, atomic_write_bytes
from pipeline.ops.rle import rle_encode_numpy

MAX_SIZE = (1918, 1280)


@dataclass(frozen=True)
class DemoSpec:
    cars: int = 8
    views: int = 16
    test_cars: int = 2
    size: tuple[int, int] = (480, 320)  # width, height
    seed: int = 0
    jpeg_quality: int = 88


def _jpeg(img: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _gif(mask: np.ndarray) -> bytes:
    im = Image.fromarray(mask, mode="P")
    im.putpalette([0, 0, 0, 255, 255, 255] + [0, 0, 0] * 254)
    buf = io.BytesIO()
    im.save(buf, format="GIF")
    return buf.getvalue()


def _check(spec: DemoSpec, out: Path) -> None:
    width, height = spec.size
    if not (16 <= width <= MAX_SIZE[0] and 16 <= height <= MAX_SIZE[1]):
        raise PipelineError(
            f"--size {width}x{height}: width must be 16..{MAX_SIZE[0]}, height 16..{MAX_SIZE[1]}"
        )
    if spec.cars < 1 or spec.views < 1 or spec.test_cars < 0:
        raise PipelineError("--cars and --views must be >= 1 and --test-cars >= 0")
    if out.exists() and any(out.iterdir()):
        raise PipelineError(
            f"{out}: folder exists and is not empty; choose a new OUT_DIR or delete it first"
        )


def write_demo(out: Path, spec: DemoSpec, progress=None) -> dict:
    """Render and write the dataset; returns counts. ``progress(n)`` is called per image."""
    out = Path(out)
    _check(spec, out)
    rng = np.random.default_rng(spec.seed)
    cars = [random_car(rng) for _ in range(spec.cars + spec.test_cars)]
    rles: list[tuple[str, str]] = []
    for index, car in enumerate(cars):
        split = "train" if index < spec.cars else "test"
        for view in range(spec.views):
            image_id = f"{car.car_id}_{view + 1:02d}"
            img, mask = render_view(car, view, spec.views, spec.size, rng)
            atomic_write_bytes(out / split / f"{image_id}.jpg", _jpeg(img, spec.jpeg_quality))
            if split == "train":
                atomic_write_bytes(out / "train_masks" / f"{image_id}_mask.gif", _gif(mask))
                rles.append((f"{image_id}.jpg", rle_encode_numpy(mask, order="C")))
            else:
                rles.append((f"{image_id}.jpg", None))
            if progress:
                progress(1)
    _write_csv(out / "train_masks.csv", [r for r in rles if r[1] is not None])
    _write_csv(
        out / "sample_submission.csv", sorted((name, "1 1") for name, rle in rles if rle is None)
    )
    return {"train": spec.cars * spec.views, "test": spec.test_cars * spec.views, "root": str(out)}


def _write_csv(path: Path, rows: list[tuple[str, str]]) -> None:
    with atomic_open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["img", "rle_mask"])
        writer.writerows(rows)
