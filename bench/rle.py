"""RLE encoding speed on 1918x1280 masks: the project's Numba encoder vs the canonical numpy
Kaggle encoder, and the fused threshold+encode kernel vs a bare threshold pass over the same
pixels (``np.count_nonzero(p > t)``: one read of the pixels, the memory-bound floor).

Masks: the real Carvana masks in ../shared/data/carvana/train_masks when present, else synthetic
car-like ellipses. Probabilities: each mask as p=0.86 inside, 0.08 outside, with the 1-pixel
border at 0.5 so that both sides of the threshold occur next to each edge.

Timing: every function runs on every mask ``--repeat`` times, interleaved (mask by mask, one
function after the other, the order rotating between repeats so each also runs right after the
other has pulled the mask into cache), and each mask counts with its fastest time: on a shared
machine a pre-empted call does not count, and the functions see the same cache and load.

    .venv/bin/python bench/rle.py [--masks 48] [--repeat 7]

Prints the CPU model. Last line: ``ratio = <threshold+RLE time / bare threshold pass time>``
(target <= 1.3 on every machine; the line above gives numpy encoder time / project time).
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from pipeline.ops.rle import rle_encode, rle_encode_probs

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "carvana" / "train_masks"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def kaggle_numpy(mask: np.ndarray) -> str:
    """The widely used numpy encoder (with the padding fix, so both give the same string)."""
    pixels = np.concatenate([[0], mask.flatten(), [0]])
    runs = np.where(pixels[1:] != pixels[:-1])[0] + 1
    runs[1::2] -= runs[::2]
    return " ".join(str(x) for x in runs)


def load_masks(n: int) -> tuple[list[np.ndarray], str]:
    files = sorted(SHARED.glob("*_mask.gif"))[:n] if SHARED.is_dir() else []
    if files:
        return [
            np.asarray(Image.open(f), dtype=np.uint8) for f in files
        ], f"real Carvana masks ({SHARED.resolve()})"
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:1280, :1918]
    masks = []
    for _ in range(n):
        cy, cx, ry, rx = (
            rng.uniform(500, 800),
            rng.uniform(800, 1100),
            rng.uniform(250, 400),
            rng.uniform(500, 800),
        )
        masks.append((((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1).astype(np.uint8))
    return masks, "synthetic ellipses"


def as_probs(mask: np.ndarray) -> np.ndarray:
    probs = (mask * 200 + 20).astype(np.uint8)
    edge = cv2.morphologyEx(mask, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    probs[edge] = 128
    return probs


def interleaved(fns: dict, items: list, repeat: int) -> dict[str, float]:
    """ms per item of each function:
    the sum over items of each item's fastest of ``repeat`` runs."""
    best = {name: np.full(len(items), np.inf) for name in fns}
    names = list(fns)
    for r in range(repeat):
        order = (
            names[r % len(names) :] + names[: r % len(names)]
        )  # each function also runs second, cache-warm
        for k, item in enumerate(items):
            for name in order:
                fn = fns[name]
                start = time.perf_counter()
                fn(item)
                best[name][k] = min(best[name][k], time.perf_counter() - start)
    return {name: float(times.mean() * 1000) for name, times in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--masks", type=int, default=48)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    masks, source = load_masks(args.masks)
    probs = [as_probs(m) for m in masks]
    for m, p in zip(masks[:8], probs[:8], strict=True):
        assert rle_encode(m) == kaggle_numpy(m), "encoders disagree"
        assert rle_encode_probs(p, 0.5) == kaggle_numpy((p > 127).astype(np.uint8)), (
            "encoders disagree"
        )
    t_mask = interleaved({"project": rle_encode, "numpy": kaggle_numpy}, masks, args.repeat)
    t_probs = interleaved(
        {
            "project": lambda p: rle_encode_probs(p, 0.5),
            "floor": lambda p: np.count_nonzero(p > 127),
        },
        probs,
        args.repeat,
    )
    print(f"CPU: {cpu_model()} ({platform.machine()}, numpy {np.__version__})")
    print(f"{len(masks)} masks 1918x1280 ({source}), fastest of {args.repeat} per mask")
    print(f"rle_encode (Numba), mask:            {t_mask['project']:7.3f} ms/mask")
    print(f"numpy Kaggle encoder, mask:          {t_mask['numpy']:7.3f} ms/mask")
    print(f"rle_encode_probs (threshold + RLE):  {t_probs['project']:7.3f} ms/mask")
    print(f"bare threshold pass (p > t, count):  {t_probs['floor']:7.3f} ms/mask")
    print(f"numpy encoder / project = {t_mask['numpy'] / t_mask['project']:.1f}")
    print(f"ratio = {t_probs['project'] / t_probs['floor']:.2f}")


if __name__ == "__main__":
    main()
