"""Submission throughput: fuse + threshold + RLE + write for 4 members, project vs a
straightforward script, on the same stores in the same run; then peak RSS for 500 vs 5,000 images.

The straightforward script loads each member's probabilities, averages them in float32,
thresholds, encodes with the numpy Kaggle encoder and writes all rows with the csv module at the
end (pandas is not a project dependency; ``to_csv`` would only be slower).

    .venv/bin/python bench/submission.py [--images 64] [--rss-small 500 --rss-large 5000]

Last line: ``ratio = <project img/s / straightforward img/s>`` (target >= 5).
"""
from __future__ import annotations

import argparse
import csv
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from pipeline.decide.decision import Decision
from pipeline.decide.store import ProbStore
from pipeline.output.formats import get_format
from pipeline.output.writers import SubmissionWriter
from pipeline.stages.ensemble import stream_test

HEADER = {"run": "m", "split": "test", "folds": [0], "tta": "hflip", "classes": ["bg", "car"],
          "checkpoints": {}, "resolution": "original"}


def make_stores(root: Path, images: int, size: tuple[int, int], members: int = 4) -> list[str]:
    """Smooth car-like probability maps (what a trained model writes), slightly different per member."""
    height, width = size
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    stores = [ProbStore.create(root / f"member{m}", {**HEADER, "run": f"m{m}"}) for m in range(members)]
    ids = [f"img{i:05d}" for i in range(images)]
    for image_id in ids:
        cy, cx = rng.uniform(0.4, 0.6) * height, rng.uniform(0.4, 0.6) * width
        ry, rx = rng.uniform(0.2, 0.3) * height, rng.uniform(0.25, 0.4) * width
        for m, store in enumerate(stores):
            dist = ((yy - cy) / (ry * (1 + 0.01 * m))) ** 2 + ((xx - cx) / rx) ** 2
            probs = cv2.GaussianBlur((dist < 1).astype(np.float32), (15, 15), 4)
            store.write(image_id, np.rint(probs * 255).astype(np.uint8)[None])
    return ids


def kaggle_numpy(mask: np.ndarray) -> str:
    pixels = np.concatenate([[0], mask.flatten(), [0]])
    runs = np.where(pixels[1:] != pixels[:-1])[0] + 1
    runs[1::2] -= runs[::2]
    return " ".join(str(x) for x in runs)


def straightforward(stores: list[ProbStore], ids: list[str], out: Path) -> float:
    start = time.perf_counter()
    rows = []
    for image_id in ids:
        probs = [s.read(image_id)[0].astype(np.float32) / 255 for s in stores]
        mean = sum(probs) / len(probs)
        rows.append((f"{image_id}.jpg", kaggle_numpy((mean > 0.5).astype(np.uint8))))
    with open(out, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["img", "rle_mask"])
        writer.writerows(rows)
    return len(ids) / (time.perf_counter() - start)


def project(stores: list[ProbStore], ids: list[str], folder: Path, workers: int) -> float:
    state = {"member_paths": [str(s.path) for s in stores], "fused_path": None,
             "weights": np.ones(len(stores)) / len(stores), "fusion": "mean", "decision": Decision(0.5),
             "format": get_format("carvana")}
    start = time.perf_counter()
    with SubmissionWriter(folder, f"bench{workers}", get_format("carvana"), False, True) as writer:
        stream_test(ids, state, workers, writer)
        writer.commit()
    return len(ids) / (time.perf_counter() - start)


def rss_child(images: int, root: str) -> None:
    ids = make_stores(Path(root), images, (320, 480))
    stores = [ProbStore.open(Path(root) / f"member{m}") for m in range(4)]
    project(stores, ids, Path(root), workers=0)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rss-small", type=int, default=500)
    parser.add_argument("--rss-large", type=int, default=5000)
    parser.add_argument("--rss-child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--root", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        return rss_child(args.rss_child, args.root)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ids = make_stores(root, args.images, (1280, 1918))
        stores = [ProbStore.open(root / f"member{m}") for m in range(4)]
        project(stores, ids[:4], root, 0)  # compile the kernels
        base, ours = [], []
        for _ in range(2):
            base.append(straightforward(stores, ids, root / "plain.csv"))
            ours.append(project(stores, ids, root, args.workers))
        print(f"{len(ids)} test images 1918x1280, 4 members")
        print(f"straightforward: {max(base):.1f} img/s   project ({args.workers} workers): {max(ours):.1f} img/s")
        rss = {}
        for n in (args.rss_small, args.rss_large):
            with tempfile.TemporaryDirectory() as sub:
                out = subprocess.run([sys.executable, __file__, "--rss-child", str(n), "--root", sub],
                                     capture_output=True, text=True, check=True)
                rss[n] = int(out.stdout.strip().splitlines()[-1]) / 1024
            print(f"peak RSS, {n} images (480x320, in-process): {rss[n]:.0f} MB")
        print(f"RSS ratio {args.rss_large} / {args.rss_small} images = {rss[args.rss_large] / rss[args.rss_small]:.3f}")
        print(f"ratio = {max(ours) / max(base):.2f}")


if __name__ == "__main__":
    main()
