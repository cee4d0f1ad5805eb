"""Multi-class recipes from data to test masks: generated driving frames (folder layout, class-index
masks; comma10k layout, colour masks) and generated Cityscapes-layout data (``label_map:
categories``), each through ``pipeline run`` with folds, refit and an ensemble writing mask PNGs."""

import contextlib
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from pipeline.cli import cli
from pipeline.data.labelmaps import CITYSCAPES_LABELS
from pipeline.data.palette import COMMA10K_COLORS
from pipeline.stages.driving_data import DrivingSpec, write_driving
from tests.conftest import save_png, write_config
from tests.killing import kill_during_write

MODEL = """model: {arch: Unet, encoder: resnet18, \
kwargs: {encoder_depth: 3, decoder_channels: [16, 8, 4]}}
augment: {preset: driving}
loss: {name: ce_dice, class_balance: 0.5}  # exercises the class weights from the masks
optim: {lr: 0.003, scheduler: cosine}
train: {resolutions: [[64, 96]], geometry: pad, epochs: 1, batch_size: 4}
predict: {tta: hflip, test_from: all}
"""
RECIPE = """name: r
steps:
  - folds: {cfg}
  - train: {cfg}
    full: true
  - ensemble: {ens}
"""


def run_cli(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def write_recipe(
    work, dataset: str, fmt: str, folds: str = "{k: 3, seed: 0, area_bins: 1}", extra: str = ""
):
    cfg = write_config(work / "c.yaml", f"name: m\ndataset: {dataset}\nfolds: {folds}\n{MODEL}")
    ens = write_config(
        work / "e.yaml",
        f"name: m-masks\nmembers: [{{run: m_64x96}}]\n"
        f"decision: argmax\nformat: {fmt}\nworkers: 0\n{extra}",
    )
    return write_config(work / "r.yaml", RECIPE.format(cfg=cfg, ens=ens))


@pytest.mark.slow
def test_driving_recipe_writes_one_index_png_per_test_image_and_resumes_after_a_kill(tmp_path):
    write_driving(
        tmp_path / "data",
        DrivingSpec(frames=12, test_frames=3, size=(96, 64), seed=4, layout="folder"),
    )
    dataset = (
        f"{{layout: folder, name: d, root: {tmp_path / 'data'}, mask_mode: index, test_dir: test, "
        "group_pattern: '^\\d+_([0-9a-f]+_[0-9-]+--[0-9-]+)', "
        "classes: [road, lane_markings, undrivable, movable, my_car]}"
    )
    recipe = write_recipe(tmp_path, dataset, "png-index", extra="class_weights: tune\n")
    # killed while the refit writes its checkpoint: the rerun finishes from there
    kill_during_write(["run", str(recipe)], tmp_path, "model.pt", skip=3, timeout=900)
    assert not (tmp_path / "submissions" / "m-masks").exists()
    with contextlib.chdir(tmp_path):
        out = run_cli("run", recipe)
        assert "done before" in out
        masks = sorted((tmp_path / "submissions" / "m-masks").iterdir())
        tests = sorted((tmp_path / "data" / "test").iterdir())
        assert [m.name for m in masks] == [t.name for t in tests] and len(masks) == 3
        for m in masks:
            image = np.array(Image.open(m))
            assert image.shape == (64, 96) and image.dtype == np.uint8 and image.max() < 5
        assert run_cli("validate", tmp_path / "submissions" / "m-masks")
        summary = run_cli("summary", "m_64x96", "--ensemble", "m-masks")
    for cls in ("road", "lane_markings", "undrivable", "movable", "my_car"):
        assert cls in summary
    assert "per-class OOF IoU" in summary and "(fused)" in summary and "cross-entropy" in summary
    # per-class weights tuned on the fused OOF: applied, recorded, and never below the plain argmax
    record = json.loads((tmp_path / "artifacts/ensembles/m-masks/decision.json").read_text())
    search = json.loads((tmp_path / "artifacts/ensembles/m-masks/thresholds.json").read_text())
    assert len(record["decision"]["weights"]) == 5
    assert record["oof_score"] >= search["miou_plain_argmax"] - 1e-12
    assert set(record["per_class_iou"]) == {
        "road",
        "lane_markings",
        "undrivable",
        "movable",
        "my_car",
    }


def test_comma10k_recipe_writes_palette_pngs(tmp_path):
    write_driving(tmp_path / "data", DrivingSpec(frames=12, test_frames=2, size=(96, 64), seed=5))
    dataset = f"{{layout: comma10k, name: c, root: {tmp_path / 'data'}, test_dir: test_imgs}}"
    recipe = write_recipe(tmp_path, dataset, "png-colour")
    with contextlib.chdir(tmp_path):
        run_cli("run", recipe)
    masks = sorted((tmp_path / "submissions" / "m-masks").iterdir())
    assert len(masks) == 2
    for m in masks:
        image = np.array(Image.open(m).convert("RGB"))
        colours = {tuple(c) for c in image.reshape(-1, 3)}
        assert image.shape == (64, 96, 3) and colours <= set(COMMA10K_COLORS.values())


def _cityscapes(root, rng):
    """2 cities x 3 frames (train) + 1 (val) + 2 test frames, labelIds drawn from real ids."""
    ids = np.array([label_id for _, label_id, _, _ in CITYSCAPES_LABELS if label_id >= 7], np.uint8)
    frames = [("train", "aachen", i) for i in range(3)] + [("train", "bremen", i) for i in range(3)]
    frames += [("val", "bonn", 0)]
    for split, city, i in frames:
        stem = f"{city}_{i:06d}_000019"
        label = np.repeat(rng.choice(ids, (8, 12)), 8, axis=0).repeat(8, axis=1)
        image = (label[..., None] * np.array([3, 5, 7])).astype(np.uint8) % 255
        save_png(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", image)
        save_png(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", label)
    for i in range(2):
        save_png(
            root / "leftImg8bit" / "test" / "berlin" / f"berlin_{i:06d}_000019_leftImg8bit.png",
            rng.integers(0, 255, (64, 96, 3), dtype=np.uint8),
        )


def test_cityscapes_categories_recipe_writes_label_id_pngs(tmp_path):
    _cityscapes(tmp_path / "cs", np.random.default_rng(0))
    dataset = f"{{layout: cityscapes, name: cs, root: {tmp_path / 'cs'}, label_map: categories}}"
    recipe = write_recipe(tmp_path, dataset, "cityscapes", folds="{k: 2, seed: 0, area_bins: 1}")
    with contextlib.chdir(tmp_path):
        run_cli("run", recipe)
        report = json.loads((tmp_path / "artifacts/runs/m_64x96/predict_report.json").read_text())
    assert report["oof"]["metric"] == "miou" and len(report["oof"]["iou"]) == 8
    masks = sorted((tmp_path / "submissions" / "m-masks").iterdir())
    assert [m.name for m in masks] == [
        f"berlin_{i:06d}_000019_gtFine_labelIds.png" for i in range(2)
    ]
    valid = {label_id for _, label_id, _, _ in CITYSCAPES_LABELS}
    for m in masks:
        assert set(np.unique(np.array(Image.open(m)))) <= valid
