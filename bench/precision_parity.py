"""bf16 vs fp32 inference of one trained fold model on its own held-out images: does bf16 change
the Dice? The numbers of bf16 are the same whether the CPU computes it natively (AVX512-BF16/AMX)
or emulates it (only slower), so this answers on any machine.

For the first ``--images`` OOF images of ``--fold``: the mean Dice against the true masks at
threshold 0.5 (original size, no TTA) in fp32 and in bf16, the Dice between the two masks and the
largest probability difference. Last line: ``dice bf16 - fp32 = <x>``.

    .venv/bin/python bench/precision_parity.py carvana-unet-lite0-crop-bce-dice_448x672 --images 8
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from pipeline.config import load_config
from pipeline.data import open_dataset
from pipeline.data.splits import rows_from_csv
from pipeline.model.networks import load_trained
from pipeline.model.task import make_task
from pipeline.ops.metrics import dice_score
from pipeline.paths import Layout
from pipeline.predict.engine import Predictor, make_geometry
from pipeline.predict.runmodel import RunModel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--images", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(2)
    layout = Layout()
    folder = layout.run(args.run)
    cfg = load_config(folder.config())
    dataset = open_dataset(cfg.dataset)
    table = layout.folds_csv(cfg.dataset.name)
    rows = rows_from_csv(table.read_text(encoding="utf-8"), str(table))
    held_out = [r.image_id for r in rows if r.fold == args.fold][: args.images]
    samples = [dataset.sample(i) for i in held_out]
    model, meta = load_trained(folder.model(args.fold), torch.device("cpu"))
    task = make_task(list(meta["classes"]), None)
    probs, seconds = {}, {}
    for precision in ("fp32", "bf16"):
        predictor = Predictor([model], task, "none", torch.device("cpu"), precision=precision)
        runner = RunModel(
            args.run,
            list(meta["classes"]),
            make_geometry(meta),
            predictor,
            None,
            "",
            cfg,
            [args.fold],
            "none",
            4,
        )
        started = time.perf_counter()
        probs[precision] = runner.predict([dataset.read_image(s) for s in samples])
        seconds[precision] = time.perf_counter() - started
    dice = {p: [] for p in probs}
    agree, diff = [], 0.0
    for i, s in enumerate(samples):
        truth = dataset.read_mask(s) > 0
        masks = {p: probs[p][i][0] > 0.5 for p in probs}
        for p in probs:
            dice[p].append(dice_score(masks[p], truth))
        agree.append(dice_score(masks["bf16"], masks["fp32"]))
        diff = max(diff, float(np.abs(probs["bf16"][i] - probs["fp32"][i]).max()))
    print(f"bench/precision_parity: {args.run} fold {args.fold}, {len(samples)} held-out images")
    for p in probs:
        print(f"{p}: mean Dice {np.mean(dice[p]):.5f} ({seconds[p]:.0f}s)")
    print(f"mask agreement (Dice bf16 vs fp32) {np.mean(agree):.5f}; max |p diff| {diff:.4f}")
    print(f"dice bf16 - fp32 = {np.mean(dice['bf16']) - np.mean(dice['fp32']):+.5f}")


if __name__ == "__main__":
    main()
