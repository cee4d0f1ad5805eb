"""Submission throughput at Carvana size (1918x1280, 4 members): the project's streamed
``pipeline ensemble`` test pass against the flow Carvana's winners ran, with the same number of
worker processes; then a scale run with its projection to the real test set (100,064 images).

Members: car-like probability maps made at a 256x384 model resolution (a blurred ellipse per
image, slightly different per member). The project reads them from its stores (format 2: the
model's resolution, zstd), fuses them at that size, resizes the fused map once, thresholds and
RLE-encodes it in one pass and streams the row into the CSV. The winners' flow reads each
member's probabilities as one 1918x1280 uint8 PNG per image (``cv2.imread``), averages them in
float, thresholds, encodes with the numpy Kaggle encoder and writes ``csv`` rows; it runs in a
``multiprocessing`` pool of the same size as the project's (``--workers``), rows in order.

The scale run (``--scale N``, default 2,000; 0 skips it) writes N images x 4 members and runs
the project's pass as ``pipeline ensemble`` does by default (fused test store written too) in a
fresh process: images/s, CPU time per image (main process and workers), peak RSS of the main
process and of the largest worker, the same for N/10 images (memory must not grow with N), and
the projected minutes for 100,064 images: at the measured rate, and from the CPU time on as many
free cores as workers (on a shared machine the rate reflects the other load too).

    .venv/bin/python bench/submission.py [--images 64] [--workers 2] [--scale 2000]

Last line: ``ratio = <project img/s / winners' flow img/s>`` (target >= 5).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np

from pipeline.decide.decision import Decision
from pipeline.decide.store import ProbStore
from pipeline.ops.rle import rle_decode
from pipeline.output.formats import get_format
from pipeline.output.writers import SubmissionWriter
from pipeline.stages.ensemble import stream_test

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rle import cpu_model  # noqa: E402

SIZE, MODEL = (1280, 1918), (256, 384)
CARVANA_TEST = 100_064
MEMBERS = 4
HEADER = {
    "run": "m",
    "split": "test",
    "folds": [0],
    "tta": "hflip",
    "classes": ["bg", "car"],
    "checkpoints": {},
    "resolution": "model",
}


def member_maps(rng: np.random.Generator) -> list[np.ndarray]:
    """One image's 4 member maps (h, w) uint8 at the model resolution: a soft car-like blob."""
    height, width = MODEL
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    cy, cx = rng.uniform(0.4, 0.6) * height, rng.uniform(0.4, 0.6) * width
    ry, rx = rng.uniform(0.2, 0.3) * height, rng.uniform(0.25, 0.4) * width
    maps = []
    for m in range(MEMBERS):
        dist = ((yy - cy) / (ry * (1 + 0.02 * m))) ** 2 + ((xx - cx) / rx) ** 2
        maps.append(
            np.rint(cv2.GaussianBlur((dist < 1).astype(np.float32), (5, 5), 1.2) * 255).astype(
                np.uint8
            )
        )
    return maps


def make_data(root: Path, images: int, pngs: bool) -> list[str]:
    """Member stores (format 2, model resolution) and, with ``pngs``,
    the winners' full-size PNGs."""
    rng = np.random.default_rng(0)
    stores = [
        ProbStore.create(root / f"member{m}", {**HEADER, "run": f"m{m}"}) for m in range(MEMBERS)
    ]
    ids = [f"img{i:06d}" for i in range(images)]
    for image_id in ids:
        for m, (store, probs) in enumerate(zip(stores, member_maps(rng), strict=True)):
            store.write(image_id, probs[None], SIZE)
            if pngs:
                (root / f"png{m}").mkdir(exist_ok=True)
                full = cv2.resize(probs, SIZE[::-1], interpolation=cv2.INTER_LINEAR)
                cv2.imwrite(str(root / f"png{m}" / f"{image_id}.png"), full)
    for store in stores:
        store.finalize([(i, *SIZE) for i in ids])
    return ids


# ---- the winners' flow ---------------------------------------------------------------------------
def kaggle_numpy(mask: np.ndarray) -> str:
    """The numpy RLE encoder of the Carvana kernels (with the padding fix for the last pixel)."""
    pixels = np.concatenate([[0], mask.flatten(), [0]])
    runs = np.where(pixels[1:] != pixels[:-1])[0] + 1
    runs[1::2] -= runs[::2]
    return " ".join(str(x) for x in runs)


_PNG_ROOT: list[Path] = []


def winners_row(image_id: str) -> tuple[str, str]:
    probs = [
        cv2.imread(str(_PNG_ROOT[0] / f"png{m}" / f"{image_id}.png"), cv2.IMREAD_GRAYSCALE).astype(
            np.float32
        )
        / 255.0
        for m in range(MEMBERS)
    ]
    mean = sum(probs) / len(probs)
    return f"{image_id}.jpg", kaggle_numpy((mean > 0.5).astype(np.uint8))


def _winners_init(root: Path) -> None:
    _PNG_ROOT[:] = [root]


def winners(root: Path, ids: list[str], workers: int) -> float:
    start = time.perf_counter()
    with open(root / "winners.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["img", "rle_mask"])
        if workers <= 1:
            _PNG_ROOT[:] = [root]
            writer.writerows(map(winners_row, ids))
        else:
            with get_context("fork").Pool(
                workers, initializer=_winners_init, initargs=(root,)
            ) as pool:
                writer.writerows(pool.imap(winners_row, ids, chunksize=4))
    return len(ids) / (time.perf_counter() - start)


# ---- the project ---------------------------------------------------------------------------------
def project(
    root: Path, ids: list[str], workers: int, fused_store: bool = False, name: str = "project"
) -> float:
    fused = None
    if fused_store:
        fused = str(ProbStore.create(root / "fused", {**HEADER, "run": "fused"}, force=True).path)
    state = {
        "member_paths": [str(root / f"member{m}") for m in range(MEMBERS)],
        "fused_path": fused,
        "weights": np.full(MEMBERS, 1 / MEMBERS),
        "fusion": "mean",
        "decision": Decision(0.5),
        "format": get_format("carvana"),
    }
    start = time.perf_counter()
    with SubmissionWriter(root, name, get_format("carvana"), False, True) as writer:
        stream_test(ids, state, workers, writer)
        writer.commit()
    return len(ids) / (time.perf_counter() - start)


def scale_child(images: int, workers: int, root: str) -> None:
    """One scale measurement in a fresh process: prints JSON
    (img/s, peak RSS of self and workers)."""
    ids = make_data(Path(root), images, pngs=False)
    project(Path(root), ids[:8], 0, name="warmup")  # compile the kernels outside the timing
    before = cpu_seconds()
    rate = project(Path(root), ids, workers, fused_store=True)
    cpu_ms = (cpu_seconds() - before) / images * 1000
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "images": images,
                "rate": rate,
                "cpu_ms": cpu_ms,
                "rss_main": own,
                "rss_worker": children,
            }
        )
    )


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and its finished children (the pool's workers)."""
    return sum(
        r.ru_utime + r.ru_stime
        for r in (
            resource.getrusage(resource.RUSAGE_SELF),
            resource.getrusage(resource.RUSAGE_CHILDREN),
        )
    )


def scale(images: int, workers: int) -> dict:
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as sub:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--scale-child",
                str(images),
                "--workers",
                str(workers),
                "--root",
                sub,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


def agreement(root: Path) -> float:
    """The lowest per-image Dice between the rows of the two submissions."""
    with open(root / "winners.csv", newline="") as a, open(root / "project.csv", newline="") as b:
        pairs = list(zip(list(csv.reader(a))[1:], list(csv.reader(b))[1:], strict=True))
    dice = []
    for (id_a, rle_a), (id_b, rle_b) in pairs:
        assert id_a == id_b, "rows out of order"
        x, y = rle_decode(rle_a, SIZE).astype(bool), rle_decode(rle_b, SIZE).astype(bool)
        dice.append(2 * np.count_nonzero(x & y) / max(np.count_nonzero(x) + np.count_nonzero(y), 1))
    return min(dice)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--images", type=int, default=64, help="images for the comparison with the winners' flow"
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="worker processes, both flows (0 = in-process)"
    )
    parser.add_argument(
        "--scale", type=int, default=2000, help="images for the scale run (0: skip it)"
    )
    parser.add_argument("--scale-child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--root", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scale_child:
        return scale_child(args.scale_child, args.workers, args.root)
    print(
        f"CPU: {cpu_model()}; {os.cpu_count()} cores; {args.workers} worker processes in both flows"
    )
    if args.scale:
        runs = [scale(n, args.workers) for n in (max(args.scale // 10, 8), args.scale)]
        for r in runs:
            print(
                f"scale run, {r['images']} images x {MEMBERS} members: {r['rate']:.1f} img/s, "
                f"{r['cpu_ms']:.2f} CPU-ms/img; peak RSS main {r['rss_main']:.0f} MB, "
                f"largest worker {r['rss_worker']:.0f} MB"
            )
        small, large = runs
        print(
            f"peak RSS {large['images']} / {small['images']} images: "
            f"main {large['rss_main'] / small['rss_main']:.3f}, "
            f"worker {large['rss_worker'] / small['rss_worker']:.3f}"
        )
        cores = min(max(args.workers, 1), os.cpu_count() or 1)
        print(
            f"projected for Carvana's {CARVANA_TEST:,} test images: "
            f"{CARVANA_TEST / large['rate'] / 60:.1f} min at the measured rate on this machine "
            f"(load {os.getloadavg()[0]:.1f}), "
            f"{CARVANA_TEST * large['cpu_ms'] / 1000 / cores / 60:.1f} min from the CPU time on "
            f"{cores} free cores (target < 10)"
        )
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        root = Path(tmp)
        ids = make_data(root, args.images, pngs=True)
        project(root, ids[:8], 0, name="warmup")  # compile the kernels
        base, ours = [], []
        for _ in range(2):
            base.append(winners(root, ids, args.workers))
            ours.append(project(root, ids, args.workers))
        print(
            f"{len(ids)} test images 1918x1280, {MEMBERS} members; the two submissions agree "
            f"to Dice >= {agreement(root):.5f} per image "
            "(the project fuses before its one resize, the PNGs after)"
        )
        print(f"winners' flow (PNG + float mean + numpy RLE + csv): {max(base):.1f} img/s")
        print(
            "project (store + fixed-point fusion + one resize + fused threshold/RLE): "
            f"{max(ours):.1f} img/s"
        )
        print(f"ratio = {max(ours) / max(base):.2f}")


if __name__ == "__main__":
    main()
