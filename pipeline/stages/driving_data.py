"""Stage: write a synthetic multi-class driving dataset
(``pipeline.data.synthetic.driving``) to disk.

Layouts (``LAYOUTS``):

- ``comma10k``: ``imgs/<name>.png`` + ``masks/<name>.png`` as RGB colour masks in comma10k's palette
  (exact colours, no anti-aliasing), unlabelled ``test_imgs/<name>.png``;
  as the comma10k repository.
- ``folder``: ``images/<name>.png`` + ``masks/<name>.png`` as single-channel ``L`` PNGs of class ids
  0..4, unlabelled ``test/<name>.png``; for the generic folder reader with ``mask_mode: index``.

Names copy comma10k's ``<counter>_<dongle id>_<route date--time>_<segment>_<frame>.png``, e.g.
``0000_0085e9e41513078a_2018-08-19--13-26-08_11_864.png``. One drive (``FRAMES_PER_DRIVE`` frames
with one :class:`~pipeline.data.synthetic.driving.DriveStyle`) is one dongle + route, so comma10k's
group regex ``^\\d+_([0-9a-f]+_[0-9-]+--[0-9-]+)`` keeps a drive in one fold. The frame number's
last digit is the drive number's, so comma10k's own holdout rule (names ending in ``9.png``) takes
whole drives (every 10th).
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.data.synthetic.driving import (
    CLASSES,
    MAX_SIZE,
    MIN_SIZE,
    PALETTE,
    random_drive,
    render_scene,
)
from pipeline.errors import PipelineError
from pipeline.fsio import atomic_write_bytes

# layout -> (image folder, mask folder, unlabelled test folder)
LAYOUTS: dict[str, tuple[str, str, str]] = {
    "comma10k": ("imgs", "masks", "test_imgs"),
    "folder": ("images", "masks", "test"),
}
FRAMES_PER_DRIVE = 4
_LUT = np.array([PALETTE[k] for k in range(len(CLASSES))], np.uint8)  # class id -> comma10k RGB


@dataclass(frozen=True)
class DrivingSpec:
    """What to generate: ``frames`` labelled + ``test_frames`` unlabelled frames of ``size`` =
    (width, height)."""

    frames: int = 40
    size: tuple[int, int] = (582, 437)
    seed: int = 0
    layout: str = "comma10k"
    test_frames: int = 0


def _check(spec: DrivingSpec, out: Path) -> None:
    width, height = spec.size
    if not (MIN_SIZE[0] <= width <= MAX_SIZE[0] and MIN_SIZE[1] <= height <= MAX_SIZE[1]):
        raise PipelineError(
            f"--size {width}x{height}: width must be {MIN_SIZE[0]}..{MAX_SIZE[0]}, "
            f"height {MIN_SIZE[1]}..{MAX_SIZE[1]}"
        )
    if spec.frames < 1 or spec.test_frames < 0:
        raise PipelineError("--frames must be >= 1 and --test-frames >= 0")
    if spec.layout not in LAYOUTS:
        raise PipelineError(f"--layout '{spec.layout}' is unknown; choose one of {sorted(LAYOUTS)}")
    if out.exists() and any(out.iterdir()):
        raise PipelineError(
            f"{out}: folder exists and is not empty; choose a new OUT_DIR or delete it first"
        )


def _png(array: np.ndarray) -> bytes:
    """PNG bytes of a uint8 ``(H, W)`` (mode L) or ``(H, W, 3)`` (RGB) array;
    PIL's PNG is byte-deterministic."""
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def mask_to_rgb(mask: np.ndarray) -> np.ndarray:
    """Class ids ``(H, W)`` uint8 0..4 -> comma10k colour mask ``(H, W, 3)`` uint8 RGB
    (``PALETTE``)."""
    return _LUT[mask]


def _route(rng: np.random.Generator) -> str:
    """A comma-style route name, ``<dongle id>_<YYYY-MM-DD--HH-MM-SS>``."""
    dongle = "".join(rng.choice(list("0123456789abcdef"), size=16))
    start = dt.datetime(2018, 1, 1) + dt.timedelta(seconds=int(rng.integers(0, 900 * 86400)))
    return f"{dongle}_{start:%Y-%m-%d--%H-%M-%S}"


def _drive_names(rng: np.random.Generator, drive: int, counter: int, n: int) -> list[str]:
    """``n`` frame names for drive number ``drive``;
    the frame number ends in the drive's last digit."""
    route = _route(rng)
    segments = np.sort(rng.choice(60, size=n, replace=False))
    frames = rng.integers(0, 120, size=n) * 10 + drive % 10
    return [f"{counter + k:04d}_{route}_{segments[k]}_{frames[k]}" for k in range(n)]


def _write_drive(
    out: Path, spec: DrivingSpec, drive: int, counter: int, n: int, test: bool, progress
) -> None:
    """Render ``n`` frames of drive number ``drive`` (names counted from ``counter``)
    and write them."""
    image_dir, mask_dir, test_dir = LAYOUTS[spec.layout]
    rng = np.random.default_rng([spec.seed, drive])
    style = random_drive(rng)
    for name in _drive_names(rng, drive, counter, n):
        image, mask = render_scene(rng, spec.size, style)
        atomic_write_bytes(out / (test_dir if test else image_dir) / f"{name}.png", _png(image))
        if not test:
            labels = mask_to_rgb(mask) if spec.layout == "comma10k" else mask
            atomic_write_bytes(out / mask_dir / f"{name}.png", _png(labels))
        if progress:
            progress(1)


def write_driving(out: Path, spec: DrivingSpec, progress=None) -> dict:
    """Render and write the dataset; returns counts. ``progress(n)`` is called per frame.

    Labelled and test frames come from separate drives of ``FRAMES_PER_DRIVE`` frames (the last one
    may be shorter). Each drive draws from its own generator seeded by ``(seed, drive)``: files are
    byte-identical for a seed, and asking for more test frames leaves the labelled ones unchanged.
    """
    out = Path(out)
    _check(spec, out)
    drive = counter = 0
    for test, total in ((False, spec.frames), (True, spec.test_frames)):
        for start in range(0, total, FRAMES_PER_DRIVE):
            n = min(FRAMES_PER_DRIVE, total - start)
            _write_drive(out, spec, drive, counter, n, test, progress)
            drive, counter = drive + 1, counter + n
    return {
        "train": spec.frames,
        "test": spec.test_frames,
        "drives": drive,
        "layout": spec.layout,
        "root": str(out),
    }
