"""Multi-class end to end on generated driving scenes:
folds -> train -> predict -> tune -> ensemble."""

import contextlib
import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from pipeline.cli import cli
from pipeline.data.palette import COMMA10K_COLORS
from pipeline.decide.store import ProbStore
from pipeline.stages.driving_data import DrivingSpec, write_driving
from tests.conftest import write_config

RUN = "drive_64x96"


def invoke(*args):
    result = CliRunner().invoke(cli, list(args))
    return result


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    work = tmp_path_factory.mktemp("drive")
    write_driving(work / "data", DrivingSpec(frames=12, test_frames=3, size=(96, 64), seed=2))
    write_config(
        work / "drive.yaml",
        f"""name: drive
dataset: {{layout: comma10k, name: drive, root: {work / "data"}, test_dir: test_imgs}}
folds: {{k: 3, seed: 0, area_bins: 1}}
model: {{arch: Unet, encoder: resnet18, kwargs: {{encoder_depth: 3, decoder_channels: [16, 8, 4]}}}}
augment: {{preset: driving}}
loss: {{name: ce_dice}}
optim: {{lr: 0.003, scheduler: cosine}}
train: {{resolutions: [[64, 96]], geometry: pad, epochs: 2, batch_size: 4}}
""",
    )
    with contextlib.chdir(work):
        for args in (["folds", "drive.yaml"], ["train", "drive.yaml"], ["predict", "drive.yaml"]):
            result = invoke(*args)
            assert result.exit_code == 0, result.output
    return work


def test_training_history_has_multiclass_metrics(project):
    with open(project / "artifacts" / "runs" / RUN / "fold0" / "history.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {"val_dice", "val_miou", "val_acc", "val_ce"} <= set(rows[0]) and len(rows) == 2
    assert all(0 <= float(r["val_miou"]) <= 1 and float(r["val_ce"]) > 0 for r in rows)


def test_stores_have_one_channel_per_class(project):
    store = ProbStore.open(project / "artifacts" / "runs" / RUN / "oof")
    probs = store.read(store.ids()[0])
    assert probs.shape == (6, 64, 96)
    assert np.abs(probs.astype(int).sum(0) - 255).max() <= 6  # softmax sums to 1 (up to rounding)
    report = json.loads((project / "artifacts" / "runs" / RUN / "predict_report.json").read_text())
    assert report["oof"]["metric"] == "miou" and set(report["oof"]["iou"]) >= {"road", "my_car"}


def test_tune_gives_per_class_thresholds(project, monkeypatch):
    monkeypatch.chdir(project)
    result = invoke("tune", "--run", RUN)
    assert result.exit_code == 0, result.output
    tuned = json.loads((project / "artifacts" / "runs" / RUN / "thresholds.json").read_text())
    assert [c["class"] for c in tuned["channels"]][:2] == ["road", "lane_markings"] and len(
        tuned["channels"]
    ) == 6


@pytest.mark.parametrize(
    "fmt, decision", [("png-colour", "argmax"), ("png-index", "argmax"), ("severstal", "threshold")]
)
def test_ensemble_outputs(project, monkeypatch, fmt, decision):
    monkeypatch.chdir(project)
    write_config(
        project / "ens.yaml",
        f"name: drive-{fmt}\nmembers: [{{run: {RUN}}}]\nformat: {fmt}\n"
        f"decision: {decision}\nworkers: 0\n",
    )
    result = invoke("ensemble", "ens.yaml", "--overwrite")
    assert result.exit_code == 0, result.output
    out = project / "submissions" / (f"drive-{fmt}.csv" if fmt == "severstal" else f"drive-{fmt}")
    if fmt == "severstal":
        rows = list(csv.reader(open(out)))
        assert rows[0] == ["ImageId_ClassId", "EncodedPixels"] and len(rows) == 1 + 3 * 5
    else:
        files = sorted(out.iterdir())
        assert len(files) == 3
        image = np.array(Image.open(files[0]))
        if fmt == "png-colour":
            colours = {tuple(c) for c in image.reshape(-1, 3)}
            assert image.shape == (64, 96, 3) and colours <= set(COMMA10K_COLORS.values())
        else:
            assert image.shape == (64, 96) and image.max() < 6
    assert invoke("validate", str(out)).exit_code == 0
