"""Cost of hflip TTA: prediction time with hflip TTA / without, same images and model, same run.

"Prediction" is the test-split work of ``pipeline predict`` per image: the fold model under TTA,
restoring probabilities to the original 1918x1280, quantising and writing the store entry.

    .venv/bin/python bench/tta_cost.py [--size 256x384] [--images 32] [--encoder resnet34]

Last line: ``ratio = <TTA time / plain time>`` (target <= 2.1: the two copies go through one
forward pass, and the per-image work around the network is shared).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from pipeline.config.schema import ModelConfig
from pipeline.decide.store import ProbStore, quantize
from pipeline.model.networks import build_model
from pipeline.model.task import BinaryTask
from pipeline.predict.engine import Predictor


def timed(predictor: Predictor, batches: list[dict], store: ProbStore) -> float:
    start = time.perf_counter()
    for b, batch in enumerate(batches):
        for j, (probs, _) in enumerate(predictor(batch)):
            store.write(f"img{b}_{j}", quantize(probs))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="256x384")
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--encoder", default="resnet34")
    parser.add_argument(
        "--original", default="1280x1918", help="size the probabilities are restored to"
    )
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split("x"))
    oh, ow = (int(v) for v in args.original.split("x"))
    torch.manual_seed(0)
    model = build_model(ModelConfig(encoder=args.encoder), 1).eval()
    batches = [
        {
            "image": torch.randint(0, 255, (args.batch, 3, height, width), dtype=torch.uint8),
            "fitted": torch.tensor([[height, width]] * args.batch),
            "original": torch.tensor([[oh, ow]] * args.batch),
        }
        for _ in range(max(1, args.images // args.batch))
    ]
    plain = Predictor([model], BinaryTask(), "none", torch.device("cpu"), batch_size=args.batch)
    tta = Predictor([model], BinaryTask(), "hflip", torch.device("cpu"), batch_size=args.batch)
    header = {
        "run": "bench",
        "split": "test",
        "folds": [0],
        "tta": "-",
        "classes": ["bg", "fg"],
        "checkpoints": {},
        "resolution": "original",
    }
    with tempfile.TemporaryDirectory() as tmp:
        store = ProbStore.create(Path(tmp) / "store", header)
        timed(plain, batches[:1], store)
        timed(tta, batches[:1], store)  # warm-up
        t_plain, t_tta = [], []
        for _ in range(3):  # interleaved repeats; the minimum is the least disturbed
            t_plain.append(timed(plain, batches, store))
            t_tta.append(timed(tta, batches, store))
    n = len(batches) * args.batch
    print(
        f"{n} images {height}x{width} -> {oh}x{ow}, {args.encoder}, "
        f"{torch.get_num_threads()} threads"
    )
    print(
        f"plain: {min(t_plain):.2f}s ({n / min(t_plain):.2f} img/s)   hflip TTA: {min(t_tta):.2f}s "
        f"({n / min(t_tta):.2f} img/s)"
    )
    print(f"ratio = {min(t_tta) / min(t_plain):.3f}")


if __name__ == "__main__":
    main()
