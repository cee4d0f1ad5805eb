"""Training throughput: the project's fold loop vs a bare ~20-line smp loop, same run.

Same model (architecture, encoder, seed), same images (cached uint8 arrays, no augmentation),
same batch size and torch threads. Prints both img/s and, last, ``ratio = project / bare``.
``--precision bf16``: the project's loop at fp32 and at bf16 (``train.precision``), the bare loop
at bf16 (``torch.autocast("cpu", dtype=torch.bfloat16)``); the last two lines are
``ratio project/bare = <x>`` (both bf16) and ``ratio bf16/fp32 = <y>`` (the project's loop).
bf16 pays only on CPUs that compute it natively (AVX512-BF16/AMX): elsewhere it is emulated.

    .venv/bin/python bench/train_throughput.py [--size 128x192] [--images 48] [--epochs 2]
        [--compare tu-tf_efficientnet_lite0,tu-tf_efficientnet_lite1]  (img/s of those vs --encoder)
        [--precision bf16] [--encoder tu-tf_efficientnet_lite0 --compare ""]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from segmentation_models_pytorch.losses import DiceLoss

from pipeline.config.schema import CarvanaData, Config
from pipeline.data import open_dataset
from pipeline.model.augment import Geometry
from pipeline.model.losses import make_loss
from pipeline.model.networks import build_model
from pipeline.model.task import make_task
from pipeline.stages.demo_data import DemoSpec, write_demo
from pipeline.train.data import ArrayCache, SegmentationSet
from pipeline.train.dist import DistContext
from pipeline.train.loop import FoldSetup, FoldTrainer


def project_loop(cfg: Config, dataset, cache: ArrayCache, epochs: int) -> float:
    torch.manual_seed(0)
    task = make_task(["background", "car"], None, 0.5)
    setup = FoldSetup(
        cfg=cfg,
        run="bench",
        fold=0,
        last_path=Path(tempfile.mkdtemp()) / "last.pt",
        model_path=Path(tempfile.mkdtemp()) / "model.pt",
        model=build_model(cfg.model, 1),
        loss_fn=make_loss("bce_dice"),
        task=task,
        train_set=SegmentationSet(dataset.train, cache, "none", 0),
        val_set=SegmentationSet([], cache, "none", 0),
        cache=cache,
        device=torch.device("cpu"),
        ctx=DistContext(),
    )
    trainer = FoldTrainer(setup)
    trainer.train_epoch(1)  # warm-up
    start = time.perf_counter()
    for epoch in range(2, epochs + 2):
        trainer.train_epoch(epoch)
    return epochs * len(dataset.train) / (time.perf_counter() - start)


def bare_loop(
    cfg: Config, dataset, cache: ArrayCache, epochs: int, batch: int, precision: str = "fp32"
) -> float:
    torch.manual_seed(0)
    model = build_model(cfg.model, 1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    dice = DiceLoss("binary", from_logits=True)
    pad = cache.geometry.pad()
    data = [pad(image=cache.image(s), mask=cache.mask(s)) for s in dataset.train]
    images = torch.stack([torch.from_numpy(d["image"]).permute(2, 0, 1) for d in data])
    masks = torch.stack([torch.from_numpy(d["mask"]) for d in data]).unsqueeze(1).float()

    def epoch() -> None:
        model.train()
        for i in torch.randperm(len(images)).split(batch):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                logits = model(images[i].float())
            logits = logits.float()
            loss = F.binary_cross_entropy_with_logits(logits, masks[i]) + dice(logits, masks[i])
            opt.zero_grad()
            loss.backward()
            opt.step()

    epoch()  # warm-up
    start = time.perf_counter()
    for _ in range(epochs):
        epoch()
    return epochs * len(images) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="128x192", help="network HxW")
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--encoder", default="resnet18")
    parser.add_argument(
        "--precision",
        choices=["fp32", "bf16"],
        default="fp32",
        help="bf16: also time both loops under bf16 autocast",
    )
    parser.add_argument(
        "--compare",
        default="tu-tf_efficientnet_lite0,tu-tf_efficientnet_lite1",
        help="encoders whose project img/s is compared with --encoder's (empty: skip)",
    )
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        write_demo(
            root,
            DemoSpec(cars=max(1, args.images // 8), views=8, test_cars=0, size=(width, height)),
        )
        cfg = Config.model_validate(
            {
                "dataset": CarvanaData(name="bench", root=str(root)).model_dump(),
                "model": {"encoder": args.encoder},
                "train": {
                    "batch_size": args.batch,
                    "resolutions": [[height, width]],
                    "geometry": "pad",
                },
            }
        )
        dataset = open_dataset(cfg.dataset)
        cache = ArrayCache(dataset, Geometry(height, width, "pad"), Path(tmp) / "cache")
        print(
            f"{len(dataset.train)} images {height}x{width}, batch {args.batch}, {args.encoder}, "
            f"{torch.get_num_threads()} threads"
        )
        project, bare = [], []
        for _ in range(2):  # interleave to share the machine's noise
            project.append(project_loop(cfg, dataset, cache, args.epochs))
            bare.append(bare_loop(cfg, dataset, cache, args.epochs, args.batch))
        p, b = max(project), max(bare)
        for encoder in filter(
            None, args.compare.split(",")
        ):  # same loop, resolution and batch size
            other = cfg.model_copy(
                update={"model": cfg.model.model_copy(update={"encoder": encoder})}
            )
            speed = max(project_loop(other, dataset, cache, args.epochs) for _ in range(2))
            print(
                f"U-Net/{encoder}: {speed:.2f} img/s = {speed / p:.2f} x U-Net/{args.encoder} "
                f"({p:.2f} img/s)"
            )
        print(f"project: {p:.2f} img/s   bare smp loop: {b:.2f} img/s")
        if args.precision == "fp32":
            print(f"ratio = {p / b:.3f}")
            return
        bf16_cfg = cfg.model_copy(
            update={"train": cfg.train.model_copy(update={"precision": "bf16"})}
        )
        pb, bb = [], []
        for _ in range(2):
            pb.append(project_loop(bf16_cfg, dataset, cache, args.epochs))
            bb.append(bare_loop(cfg, dataset, cache, args.epochs, args.batch, "bf16"))
        print(f"bf16 project: {max(pb):.2f} img/s   bf16 bare smp loop: {max(bb):.2f} img/s")
        print(f"ratio project/bare = {max(pb) / max(bb):.3f}")
        print(f"ratio bf16/fp32 = {max(pb) / p:.3f}")


if __name__ == "__main__":
    main()
