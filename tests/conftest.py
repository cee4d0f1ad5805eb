"""Shared fixtures: tiny generated datasets (tests never read ../shared)."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.stages.demo_data import DemoSpec, write_demo

TINY = (96, 64)  # width, height: non-square on purpose


@pytest.fixture(scope="session")
def tiny_carvana(tmp_path_factory) -> Path:
    """A Carvana-layout dataset: 6 cars x 4 views (+1 test car), 96x64. Treat as read-only."""
    root = tmp_path_factory.mktemp("carvana") / "data"
    write_demo(root, DemoSpec(cars=6, views=4, test_cars=1, size=TINY, seed=1))
    return root


def save_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def make_folder_dataset(
    root: Path, n: int = 6, classes: int = 2, mask_scale: int = 1, seed: int = 0
) -> Path:
    """images/<seq>_<i>.png + masks/<seq>_<i>.png with values 0..classes-1 (times mask_scale)."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        stem = f"seq{i % 3}_{i:03d}"
        save_png(
            root / "images" / f"{stem}.png",
            rng.integers(0, 255, (TINY[1], TINY[0], 3), dtype=np.uint8),
        )
        mask = rng.integers(0, classes, (TINY[1], TINY[0])).astype(np.uint8) * mask_scale
        save_png(root / "masks" / f"{stem}.png", mask)
    return root


def write_config(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def tiny_train_config(path: Path, data_root: Path, **train) -> Path:
    """A config that trains a small Unet on the tiny dataset in seconds."""
    options = {
        "resolutions": [[64, 96]],
        "geometry": "pad",
        "epochs": 3,
        "batch_size": 4,
        "seed": 3,
    }
    options.update(train)
    train_yaml = "\n".join(f"  {k}: {v}" for k, v in options.items())
    return write_config(
        path,
        f"""name: tiny
dataset: {{layout: carvana, name: tiny, root: {data_root}}}
folds: {{k: 2, seed: 0}}
model:
  arch: Unet
  encoder: resnet18
  encoder_weights: null
  kwargs: {{encoder_depth: 3, decoder_channels: [16, 8, 4]}}
augment: {{preset: carvana}}
loss: {{name: bce_dice}}
optim: {{name: adam, lr: 0.003, scheduler: plateau}}
train:
{train_yaml}
""",
    )


@pytest.fixture(scope="session")
def tiny_project(tiny_carvana, tmp_path_factory) -> Path:
    """A working directory with folds and both folds of run ``tiny_64x96`` trained (2 epochs).

    Treat as read-only: copy it (``copy_project``) before running commands that write.
    """
    from click.testing import CliRunner

    from pipeline.cli import cli

    work = tmp_path_factory.mktemp("project")
    cfg = tiny_train_config(work / "tiny.yaml", tiny_carvana, epochs=2)
    with contextlib.chdir(work):
        for args in (["folds", str(cfg)], ["train", str(cfg)]):
            result = CliRunner().invoke(cli, args)
            assert result.exit_code == 0, result.output
    return work


def copy_project(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, dirs_exist_ok=True)
    return dst


def dump_before_added_keys(cfg) -> dict:
    """The training config as dumped before the keys added later existed (unset, they must
    keep old runs' fingerprints): augment.crop, train.precision/swa_epochs/average and
    loss.class_balance."""
    before = cfg.model_dump(mode="json", exclude={"predict"})
    del before["augment"]["crop"]
    for key in ("precision", "swa_epochs", "average"):
        del before["train"][key]
    del before["loss"]["class_balance"]
    return before
