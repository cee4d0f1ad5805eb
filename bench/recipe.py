"""Recipe vs a bare smp loop, fold by fold, on the real Carvana subset (../shared/data/carvana).

For each fold of ``folds/<dataset>.csv`` a bare ~60-line loop trains the same network (architecture,
encoder, pretrained weights, batch size) on whole frames at the run's resolution with plain
horizontal flips, Adam and BCE + Dice, then scores its held-out cars at threshold 0.5 at the
original 1918x1280 size, no TTA. At equal time (the default): the bare loop gets the wall-clock the
recipe's fold took (its ``summary.json``: training and validation) and trains as many whole-frame
epochs as fit in it; ``--epochs N`` gives it a fixed count instead. Both times are printed.
The recipe's figure for the same fold is its OOF Dice under its own decision (tuned threshold, min
area and clean-up; TTA), from the run's OOF store (``pipeline run``/``pipeline tune`` must have run
first). Last line: ``ratio = recipe OOF Dice / bare OOF Dice``. A recipe that loses
to the bare loop is a bug.

    .venv/bin/python bench/recipe.py --config configs/carvana_unet-lite0_bce-dice_256x384.yaml
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from segmentation_models_pytorch.losses import DiceLoss

from pipeline.config import load_config
from pipeline.data import open_dataset
from pipeline.data.splits import rows_from_csv
from pipeline.decide.store import ProbStore
from pipeline.fsio import read_json
from pipeline.model.augment import Geometry, resize_image, resize_mask, restore_size
from pipeline.model.networks import build_model
from pipeline.ops.metrics import dice_score
from pipeline.paths import Layout
from pipeline.predict.runmodel import load_decision


def fitted_arrays(dataset, samples, geometry: Geometry):
    """(N, 3, H, W) uint8 images and (N, H, W) masks,
    scaled to fit and zero-padded to the geometry."""
    images = np.zeros((len(samples), 3, geometry.height, geometry.width), np.uint8)
    masks = np.zeros((len(samples), geometry.height, geometry.width), np.uint8)
    for i, s in enumerate(samples):
        image = dataset.read_image(s)
        h, w = geometry.fitted(*image.shape[:2])
        images[i, :, :h, :w] = resize_image(image, (h, w)).transpose(2, 0, 1)
        masks[i, :h, :w] = resize_mask(dataset.read_mask(s), (h, w))
    return torch.from_numpy(images), torch.from_numpy(masks)


def bare_fold(
    cfg, dataset, train, val, epochs: int | None, budget: float, seed: int, size: list[int]
) -> tuple[float, float, int]:
    """Train on ``train`` for ``epochs`` (None: as many whole epochs as fit in ``budget``
    seconds), return (mean Dice over ``val`` at original size, seconds, epochs)."""
    torch.manual_seed(seed)
    geometry = Geometry(*size, "pad")
    images, masks = fitted_arrays(dataset, train, geometry)
    model = build_model(cfg.model, 1).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    dice = DiceLoss("binary", from_logits=True)
    batch, started, done, last = cfg.train.batch_size, time.perf_counter(), 0, 0.0
    while (done < epochs) if epochs else (time.perf_counter() - started + last <= budget):
        epoch_started = time.perf_counter()
        model.train()
        for idx in torch.randperm(len(train)).split(batch):
            x, y = images[idx].float(), masks[idx].float().unsqueeze(1)
            flip = torch.rand(len(idx)) < 0.5
            x[flip], y[flip] = x[flip].flip(-1), y[flip].flip(-1)
            logits = model(x.contiguous(memory_format=torch.channels_last))
            loss = F.binary_cross_entropy_with_logits(logits, y) + dice(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        done, last = done + 1, time.perf_counter() - epoch_started
    seconds = time.perf_counter() - started
    model.eval()
    scores = []
    with torch.no_grad():
        for s in val:
            image = dataset.read_image(s)
            h, w = geometry.fitted(*image.shape[:2])
            x = torch.zeros(1, 3, geometry.height, geometry.width)
            x[0, :, :h, :w] = torch.from_numpy(
                resize_image(image, (h, w)).transpose(2, 0, 1)
            ).float()
            probs = torch.sigmoid(model(x))[0].numpy()
            full = restore_size(probs, (h, w), image.shape[:2])[0]
            scores.append(dice_score(full > 0.5, dataset.read_mask(s) > 0))
    return float(np.mean(scores)), seconds, done


def recipe_seconds(layout: Layout, run: str, fold: int) -> float:
    """The wall-clock the recipe's fold trained (and validated) for, from its summary.json."""
    return float(read_json(layout.run(run).fold(fold).summary())["seconds"])


def recipe_folds(layout: Layout, run: str, dataset, rows) -> dict[int, float]:
    """The recipe's per-fold OOF Dice under its own decision (``decision.json``: threshold, min
    area, clean-up), computed from its OOF store (TTA included) against the masks."""
    decision, _ = load_decision(layout.run(run), multiclass=False)
    store = ProbStore.open(layout.run(run).store("oof"))
    by_id = {s.image_id: s for s in dataset.train}
    scores: dict[int, list[float]] = {}
    for r in rows:
        if r.fold >= 0:
            mask = decision.mask(store.read(r.image_id)[0])
            scores.setdefault(r.fold, []).append(
                dice_score(mask > 0, dataset.read_mask(by_id[r.image_id]) > 0)
            )
    return {k: float(np.mean(v)) for k, v in scores.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="a fixed epoch count for the bare loop; default: as many as fit in the recipe "
        "fold's time",
    )
    parser.add_argument(
        "--size",
        type=int,
        nargs=2,
        default=None,
        metavar=("H", "W"),
        help="the bare loop's whole-frame network size; default: the run's resolution",
    )
    parser.add_argument("--folds", default="all", help="comma-separated fold numbers, or all")
    args = parser.parse_args()
    torch.set_num_threads(2)
    cfg = load_config(args.config, args.overrides)
    layout = Layout()
    dataset = open_dataset(cfg.dataset)
    table = layout.folds_csv(cfg.dataset.name)
    rows = rows_from_csv(table.read_text(encoding="utf-8"), str(table))
    by_id = {s.image_id: s for s in dataset.train}
    folds = (
        sorted({r.fold for r in rows if r.fold >= 0})
        if args.folds == "all"
        else [int(k) for k in args.folds.split(",")]
    )
    run = cfg.run_names()[0]
    recipe = recipe_folds(layout, run, dataset, rows)
    epochs, size = args.epochs, args.size or list(cfg.train.resolutions[0])
    budget = f"{epochs} epochs" if epochs else "the recipe fold's time"
    print(
        f"bench/recipe: {run} vs a bare smp loop ({cfg.model.arch}/{cfg.model.encoder}, "
        f"{cfg.model.encoder_weights}, whole frames {size[0]}x{size[1]}, {budget}, "
        "hflip, Adam 1e-3, threshold 0.5)"
    )
    bare_all, recipe_all = [], []
    for k in folds:
        train = [by_id[r.image_id] for r in rows if r.fold != k]
        val = [by_id[r.image_id] for r in rows if r.fold == k]
        allowed = recipe_seconds(layout, run, k)
        bare, seconds, done = bare_fold(
            cfg, dataset, train, val, epochs, allowed, seed=k, size=size
        )
        bare_all.append(bare)
        recipe_all.append(recipe[k])
        print(
            f"fold {k}: recipe {recipe[k]:.5f} in {allowed:.0f}s  bare {bare:.5f} in "
            f"{seconds:.0f}s ({done} epochs)  ({recipe[k] - bare:+.5f})",
            flush=True,
        )
    print(f"mean: recipe {np.mean(recipe_all):.5f}  bare {np.mean(bare_all):.5f}")
    print(f"ratio = {np.mean(recipe_all) / np.mean(bare_all):.4f}")


if __name__ == "__main__":
    main()
