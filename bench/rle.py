"""RLE encoding speed on 1918x1280 masks: the project's Numba encoder vs the canonical numpy
Kaggle encoder, and vs a bare threshold pass over the same pixels (the memory-bound floor).

Masks: the real Carvana masks in ../shared/data/carvana/train_masks when present, else synthetic
car-like ellipses. The encoder from uint8 probabilities (threshold + encode in one pass) is timed
against threshold-then-numpy-encode as well.

    .venv/bin/python bench/rle.py [--masks 48] [--repeat 5]

Last line: ``ratio = <numpy encoder time / project encoder time>`` (target >= 5; and the project's
time within 3x of the threshold pass).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.ops.rle import rle_encode, rle_encode_probs

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "carvana" / "train_masks"


def kaggle_numpy(mask: np.ndarray) -> str:
    """The widely used numpy encoder (with the padding fix, so both give the same string)."""
    pixels = np.concatenate([[0], mask.flatten(), [0]])
    runs = np.where(pixels[1:] != pixels[:-1])[0] + 1
    runs[1::2] -= runs[::2]
    return " ".join(str(x) for x in runs)


def load_masks(n: int) -> tuple[list[np.ndarray], str]:
    files = sorted(SHARED.glob("*_mask.gif"))[:n] if SHARED.is_dir() else []
    if files:
        return [np.asarray(Image.open(f), dtype=np.uint8) for f in files], f"real Carvana masks ({SHARED.resolve()})"
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:1280, :1918]
    masks = []
    for _ in range(n):
        cy, cx, ry, rx = rng.uniform(500, 800), rng.uniform(800, 1100), rng.uniform(250, 400), rng.uniform(500, 800)
        masks.append((((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1).astype(np.uint8))
    return masks, "synthetic ellipses"


def best_of(fn, items, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for item in items:
            fn(item)
        times.append(time.perf_counter() - start)
    return min(times) / len(items) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--masks", type=int, default=48)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    masks, source = load_masks(args.masks)
    probs = [(m * 200 + 20).astype(np.uint8) for m in masks]  # p=0.86 inside, 0.08 outside
    for m in masks[:3]:
        assert rle_encode(m) == kaggle_numpy(m), "encoders disagree"
    rle_encode(masks[0])
    rle_encode_probs(probs[0], 0.5)  # compile outside the timing
    t_project = best_of(rle_encode, masks, args.repeat)
    t_numpy = best_of(kaggle_numpy, masks, args.repeat)
    t_floor = best_of(lambda p: np.count_nonzero(p > 127), probs, args.repeat)
    t_probs = best_of(lambda p: rle_encode_probs(p, 0.5), probs, args.repeat)
    t_probs_np = best_of(lambda p: kaggle_numpy((p > 127).astype(np.uint8)), probs, args.repeat)
    print(f"{len(masks)} masks 1918x1280 ({source}), best of {args.repeat}")
    print(f"rle_encode (Numba):                {t_project:7.3f} ms/mask")
    print(f"numpy Kaggle encoder:              {t_numpy:7.3f} ms/mask")
    print(f"bare threshold pass (p > t):       {t_floor:7.3f} ms/mask  (project / floor = {t_project / t_floor:.2f})")
    print(f"rle_encode_probs (threshold+RLE):  {t_probs:7.3f} ms/mask  (vs threshold+numpy encoder "
          f"{t_probs_np:.3f}: {t_probs_np / t_probs:.1f}x; vs floor {t_probs / t_floor:.2f}x)")
    print(f"ratio = {t_numpy / t_project:.1f}")


if __name__ == "__main__":
    main()
