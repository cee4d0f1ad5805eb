"""Weight averaging (train.ema, train.swa_epochs, train.average): the SWA weights a fold keeps are
the mean of its last epochs' weights, every candidate is scored after the last epoch, and an
interrupted fold resumes to the same averages."""

import contextlib
import json
import shutil
from types import SimpleNamespace

import pytest
import torch
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.model import checkpoint
from pipeline.train.averaging import kept_average
from pipeline.train.loop import FoldTrainer
from tests.conftest import tiny_train_config

RUN = "tiny_64x96"
AVERAGED = {"epochs": 3, "ema": 0.9, "swa_epochs": 2}  # SWA = mean of epochs 2 and 3


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def fold0(work):
    return work / "artifacts" / "runs" / RUN / "fold0"


@pytest.fixture(scope="module")
def averaged(tiny_carvana, tmp_path_factory):
    """Fold 0 trained with EMA and SWA (SWA kept), and the raw weights after every epoch."""
    work = tmp_path_factory.mktemp("averaged")
    cfg = tiny_train_config(work / "tiny.yaml", tiny_carvana, **AVERAGED)
    raw = {}
    save_last = FoldTrainer._save_last

    def recording(self, epoch):
        raw[epoch] = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        save_last(self, epoch)

    with contextlib.chdir(work), pytest.MonkeyPatch.context() as patch:
        patch.setattr(FoldTrainer, "_save_last", recording)
        for args in (["folds", cfg], ["train", cfg, "--fold", "0"]):
            result = invoke(*args)
            assert result.exit_code == 0, result.output
    return SimpleNamespace(work=work, cfg=cfg, raw=raw)


def test_kept_swa_weights_are_the_mean_of_the_last_epochs_weights(averaged):
    kept = checkpoint.load(fold0(averaged.work) / "model.pt")["state_dict"]
    compared = 0
    for key, value in kept.items():
        if torch.is_floating_point(value):
            mean = (averaged.raw[2][key] + averaged.raw[3][key]) / 2
            torch.testing.assert_close(value, mean, rtol=1e-5, atol=1e-6, msg=key)
            compared += 1
    assert compared > 20  # weights and BatchNorm statistics, not a handful of tensors
    # and they are not simply the last epoch's weights
    weight = next(k for k in kept if k.endswith("weight") and kept[k].dim() == 4)
    assert not torch.allclose(kept[weight], averaged.raw[3][weight])


def test_every_candidate_is_scored_after_the_last_epoch(averaged):
    summary = json.loads((fold0(averaged.work) / "summary.json").read_text())
    scores = summary["averages"]
    assert set(scores) == {"none", "ema", "swa"}
    assert all(0.0 <= v <= 1.0 for v in scores.values())
    assert summary["best_score"] == scores["swa"]  # the kept weights' score is the fold's score
    assert "averages" not in summary["metrics"]


def test_summary_prints_the_averaging_table(averaged, monkeypatch):
    monkeypatch.chdir(averaged.work)
    result = invoke("summary", RUN)
    assert result.exit_code == 0, result.output
    assert "weight averaging" in result.output
    assert "swa" in result.output and "ema" in result.output and "raw" in result.output


def test_an_interrupted_fold_resumes_to_the_same_averages(averaged, tiny_carvana, tmp_path):
    shutil.copytree(averaged.work / "folds", tmp_path / "folds")
    cfg = tiny_train_config(tmp_path / "tiny.yaml", tiny_carvana, **AVERAGED)
    save_last = FoldTrainer._save_last

    def stop_after_epoch_2(self, epoch):
        save_last(self, epoch)
        if epoch == 2:
            raise KeyboardInterrupt  # as a kill between epochs 2 and 3 would leave it

    with contextlib.chdir(tmp_path):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(FoldTrainer, "_save_last", stop_after_epoch_2)
            assert invoke("train", cfg, "--fold", "0").exit_code != 0
        assert checkpoint.load(fold0(tmp_path) / "last.pt")["epoch"] == 2
        result = invoke("train", cfg, "--fold", "0")
        assert result.exit_code == 0, result.output
    resumed = checkpoint.load(fold0(tmp_path) / "model.pt")["state_dict"]
    uninterrupted = checkpoint.load(fold0(averaged.work) / "model.pt")["state_dict"]
    for key, value in uninterrupted.items():
        torch.testing.assert_close(resumed[key], value, rtol=1e-5, atol=1e-6, msg=key)


@pytest.mark.parametrize(
    ("train", "resolved"),
    [
        ({"average": "auto", "swa_epochs": None, "ema": None}, "none"),
        ({"average": "auto", "swa_epochs": None, "ema": 0.99}, "ema"),
        ({"average": "auto", "swa_epochs": 3, "ema": 0.99}, "swa"),
        ({"average": "ema", "swa_epochs": 3, "ema": 0.99}, "ema"),
        ({"average": "none", "swa_epochs": 3, "ema": 0.99}, "none"),
    ],
)
def test_auto_keeps_swa_then_ema_then_the_raw_weights(train, resolved):
    assert kept_average(SimpleNamespace(**train)) == resolved


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"average": "swa"}, "train.swa_epochs is not set"),
        ({"average": "ema"}, "train.ema is not set"),
        ({"swa_epochs": 5}, "more than train.epochs"),
    ],
)
def test_an_average_without_its_setting_is_one_clear_line(
    tiny_carvana, tmp_path, monkeypatch, overrides, message
):
    monkeypatch.chdir(tmp_path)
    cfg = tiny_train_config(tmp_path / "tiny.yaml", tiny_carvana, **overrides)
    result = invoke("train", cfg, "--fold", "0")
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
