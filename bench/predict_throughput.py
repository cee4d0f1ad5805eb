"""Prediction throughput: ``pipeline predict``'s test pass vs a bare loop, fp32 and bf16, same run.

Both do the whole per-image work of a test prediction: decode the 1918x1280 JPEG, resize and pad
it to the network size, run every model under the TTA (the copies of a batch in one forward pass),
average the probabilities, quantise and write the entry. The project's side is the code
``pipeline predict`` runs (``PredictSet`` + ``Predictor`` + the probability store); the bare loop is
~20 lines of PIL + OpenCV + torch + ``np.save``. Same models (untrained U-Net/Lite0: speed does not
depend on the weights), same TTA, batch size and threads. Prints img/s of each, the projection of
the project's figure to Kaggle's 100,064 Carvana test images, and last two lines
``ratio project/bare = <x>`` (at --precision) and ``ratio bf16/fp32 = <y>`` (the project's).

    .venv/bin/python bench/predict_throughput.py [--size 448x672] [--models 5] [--tta hflip]
        [--images 16] [--batch 4] [--precision bf16]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from pipeline.config.schema import CarvanaData, ModelConfig
from pipeline.data import open_dataset
from pipeline.decide.store import ProbStore, quantize
from pipeline.model.augment import Geometry
from pipeline.model.networks import build_model
from pipeline.model.task import BinaryTask
from pipeline.predict.engine import Predictor, PredictSet
from pipeline.stages.demo_data import DemoSpec, write_demo
from pipeline.train.data import ArrayCache

KAGGLE_TEST_IMAGES = 100_064
HEADER = {
    "run": "bench",
    "split": "test",
    "folds": [0],
    "tta": "-",
    "classes": ["bg", "car"],
    "checkpoints": {},
    "resolution": "model",
}


def project(
    models, dataset, geometry: Geometry, tta: str, batch: int, precision: str, out: Path
) -> float:
    """img/s of the project's test pass
    (the loader, predictor and store ``pipeline predict`` uses)."""
    store = ProbStore.create(out, HEADER, force=True)
    predictor = Predictor(
        models, BinaryTask(), tta, torch.device("cpu"), batch_size=batch, precision=precision
    )
    loader = torch.utils.data.DataLoader(
        PredictSet(dataset.test, ArrayCache(dataset, geometry, None)), batch_size=batch
    )
    start = time.perf_counter()
    for data in loader:
        for j, (probs, _) in enumerate(predictor(data, restore=False)):
            store.write(
                dataset.test[int(data["index"][j])].image_id,
                quantize(probs),
                tuple(data["original"][j].tolist()),
            )
    return len(dataset.test) / (time.perf_counter() - start)


def bare(
    models, dataset, geometry: Geometry, tta: str, batch: int, precision: str, out: Path
) -> float:
    """img/s of a bare loop doing the same work."""
    out.mkdir(parents=True, exist_ok=True)
    models = [m.eval().to(memory_format=torch.channels_last) for m in models]
    start = time.perf_counter()
    samples = dataset.test
    for first in range(0, len(samples), batch):
        part = samples[first : first + batch]
        x = torch.zeros(len(part), 3, geometry.height, geometry.width)
        sizes = []
        for i, s in enumerate(part):
            image = np.asarray(Image.open(s.image_path).convert("RGB"))
            h, w = geometry.fitted(*image.shape[:2])
            x[i, :, :h, :w] = torch.from_numpy(
                cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA).transpose(2, 0, 1)
            )
            sizes.append((h, w))
        x = x.contiguous(memory_format=torch.channels_last)
        views = torch.cat([x, x.flip(-1)]) if tta == "hflip" else x
        total = 0
        with (
            torch.no_grad(),
            torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"),
        ):
            for m in models:
                p = torch.sigmoid(m(views).float())
                total = (
                    total + (p[: len(part)] + p[len(part) :].flip(-1)) / 2
                    if tta == "hflip"
                    else total + p
                )
        probs = (total / len(models)).numpy()
        for i, s in enumerate(part):
            h, w = sizes[i]
            np.save(out / f"{s.image_id}.npy", np.round(probs[i, :, :h, :w] * 255).astype(np.uint8))
    return len(samples) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="448x672", help="network HxW")
    parser.add_argument(
        "--models", type=int, default=5, help="models averaged (the recipe: 4 folds + refit)"
    )
    parser.add_argument("--tta", choices=["none", "hflip"], default="hflip")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--encoder", default="tu-tf_efficientnet_lite0")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="bf16")
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split("x"))
    geometry = Geometry(height, width, "pad")
    torch.manual_seed(0)
    models = [
        build_model(ModelConfig(encoder=args.encoder, encoder_weights=None), 1)
        for _ in range(args.models)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        write_demo(
            root, DemoSpec(cars=2, views=8, test_cars=max(1, args.images // 8), size=(1918, 1280))
        )
        dataset = open_dataset(CarvanaData(name="bench", root=str(root)))
        print(
            f"{len(dataset.test)} test JPEGs 1918x1280 -> {height}x{width}, {args.models} x "
            f"{args.encoder}, TTA {args.tta}, batch {args.batch}, {torch.get_num_threads()} threads"
        )
        run = {}
        for precision in dict.fromkeys(["fp32", args.precision]):
            for name, fn in (("project", project), ("bare", bare)):
                fn(
                    models, dataset, geometry, args.tta, args.batch, precision, Path(tmp) / "warm"
                )  # warm-up
                run[name, precision] = max(
                    fn(
                        models,
                        dataset,
                        geometry,
                        args.tta,
                        args.batch,
                        precision,
                        Path(tmp) / f"{name}{k}",
                    )
                    for k in range(2)
                )
                print(f"{name:8s} {precision}: {run[name, precision]:.2f} img/s")
    speed = run["project", args.precision]
    hours = KAGGLE_TEST_IMAGES / speed / 3600
    print(
        f"projection: {KAGGLE_TEST_IMAGES:,} test images x {args.models} models at {speed:.2f} "
        f"img/s ({args.precision}) = {hours:.1f} h on this machine"
    )
    print(f"ratio project/bare = {speed / run['bare', args.precision]:.3f}")
    print(
        f"ratio bf16/fp32 = {run['project', 'bf16'] / run['project', 'fp32']:.3f}"
        if args.precision == "bf16"
        else "ratio bf16/fp32 = n/a (--precision fp32)"
    )


if __name__ == "__main__":
    main()
