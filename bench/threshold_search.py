"""Exact histogram threshold search vs a plain numpy loop over 100 thresholds, same OOF data.

Both read the same images (loaded into memory first, so I/O is not timed). The exact search scans
each image once (Numba histograms) and gets all 256 thresholds from cumulative sums; the loop
binarises every image at 100 thresholds. Both optima must agree to the coarser grid.

    .venv/bin/python bench/threshold_search.py [--store artifacts/runs/<run>/oof --config CONFIG]
    .venv/bin/python bench/threshold_search.py --synthetic 48   # 48 synthetic 1280x1918 images

Last line: ``ratio = <loop time / exact time>`` (target >= 50).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from pipeline.ops.metrics import dice_score
from pipeline.ops.threshold import areas_from_histograms, dice_table, histograms


def load_store(store_path: str, config: str):
    from pipeline.config import load_config
    from pipeline.data import open_dataset
    from pipeline.decide.store import ProbStore

    store, cfg = ProbStore.open(store_path), load_config(config)
    dataset = open_dataset(cfg.dataset)
    by_id = {s.image_id: s for s in dataset.train}
    return [(store.read(i), dataset.read_mask(by_id[i]) == 1) for i in store.ids()]


def synthetic(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:1280, :1918]
    data = []
    for _ in range(n):
        cy, cx, ry, rx = (
            rng.uniform(500, 800),
            rng.uniform(800, 1100),
            rng.uniform(250, 400),
            rng.uniform(500, 800),
        )
        dist = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2
        truth = dist < 1
        probs = 1 / (1 + np.exp(12 * (dist - 1 + rng.normal(0, 0.05))))
        data.append((np.rint(probs * 255).astype(np.uint8)[None], truth))
    return data


def exact(data) -> tuple[float, float]:
    hists = [histograms(p, t[None]) for p, t in data]
    pred, tp, gt = areas_from_histograms(
        np.stack([a for a, _ in hists]), np.stack([b for _, b in hists])
    )
    curve = dice_table(pred[:, 0], tp[:, 0], gt[:, 0]).mean(0)
    level = int(np.argmax(curve))
    return level / 255, float(curve[level])


def loop(data, steps: int = 100) -> tuple[float, float]:
    best = (0.0, -1.0)
    for t in np.linspace(0, 1, steps, endpoint=False):
        score = np.mean([dice_score(p[0] > t * 255, truth) for p, truth in data])
        if score > best[1]:
            best = (float(t), float(score))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store")
    parser.add_argument("--config")
    parser.add_argument("--synthetic", type=int, default=32)
    args = parser.parse_args()
    data = load_store(args.store, args.config) if args.store else synthetic(args.synthetic)
    pixels = sum(t.size for _, t in data)
    exact(data[:1])  # compile the Numba kernel outside the timing
    start = time.perf_counter()
    t_exact_thr, s_exact = exact(data)
    t_exact = time.perf_counter() - start
    start = time.perf_counter()
    t_loop_thr, s_loop = loop(data)
    t_loop = time.perf_counter() - start
    print(f"{len(data)} images, {pixels / 1e6:.1f} Mpixels")
    print(f"exact (256 levels): threshold {t_exact_thr:.4f} Dice {s_exact:.6f} in {t_exact:.3f}s")
    print(
        f"numpy loop (100 thresholds): threshold {t_loop_thr:.4f} Dice {s_loop:.6f} in "
        f"{t_loop:.3f}s"
    )
    assert s_exact >= s_loop - 1e-9, "the exact search must be at least as good as the coarse grid"
    assert abs(t_exact_thr - t_loop_thr) <= 0.01 + 1e-9 or s_exact - s_loop < 1e-4, (
        "optima disagree"
    )
    print(f"ratio = {t_loop / t_exact:.1f}")


if __name__ == "__main__":
    main()
