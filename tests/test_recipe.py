"""Fine-tuning controls, the full-data refit, and `pipeline run RECIPE` on generated data."""

import contextlib
import json

import pytest
import torch
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.config.schema import ModelConfig, OptimConfig
from pipeline.model import checkpoint
from pipeline.model.networks import build_model
from pipeline.train.optim import build_optimizer
from tests.conftest import copy_project, tiny_train_config

RUN = "tiny_64x96"


def run_cli(*args, code=0):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result


def test_encoder_learning_rate_multiplier():
    model = build_model(
        ModelConfig(
            encoder="resnet18", kwargs={"encoder_depth": 3, "decoder_channels": [16, 8, 4]}
        ),
        1,
    )
    opt = build_optimizer(model, OptimConfig(lr=1e-3, encoder_lr_mult=0.1))
    groups = {g["name"]: g for g in opt.param_groups}
    assert groups["encoder"]["lr"] == pytest.approx(1e-4) and groups["decoder"][
        "lr"
    ] == pytest.approx(1e-3)
    enc = {id(p) for p in model.net.encoder.parameters()}
    assert {id(p) for p in groups["encoder"]["params"]} == enc
    assert not enc & {id(p) for p in groups["decoder"]["params"]}
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))


def test_frozen_encoder_warm_up_keeps_encoder_and_its_batchnorm(tiny_carvana, tmp_path):
    cfg = tiny_train_config(tmp_path / "c.yaml", tiny_carvana, epochs=1, freeze_encoder_epochs=1)
    with contextlib.chdir(tmp_path):
        run_cli("folds", cfg)
        torch.manual_seed(
            3
        )  # build_model is seeded by the stage; read the initial weights the same way
        run_cli("train", cfg, "--fold", "0")
        state = checkpoint.load(tmp_path / "artifacts" / "runs" / RUN / "fold0" / "last.pt")[
            "model"
        ]
        run_cli("train", cfg, "--fold", "1", "--set", "train.freeze_encoder_epochs=0")
        moved = checkpoint.load(tmp_path / "artifacts" / "runs" / RUN / "fold1" / "last.pt")[
            "model"
        ]
    torch.manual_seed(3 + 0)
    initial = build_model(
        ModelConfig.model_validate(
            {"encoder": "resnet18", "kwargs": {"encoder_depth": 3, "decoder_channels": [16, 8, 4]}}
        ),
        1,
    ).state_dict()
    enc = [k for k in state if k.startswith("net.encoder.")]
    dec = [k for k in state if k.startswith("net.decoder.") and k.endswith("weight")]
    assert enc and all(torch.equal(state[k], initial[k]) for k in enc)  # weights and BN statistics
    assert any(not torch.equal(state[k], initial[k]) for k in dec)
    assert any(
        not torch.equal(moved[k], initial[k]) for k in enc
    )  # without warm-up the encoder learns


def test_select_last_keeps_the_last_epoch(tiny_project, tmp_path):
    work = copy_project(tiny_project, tmp_path / "w")
    with contextlib.chdir(work):
        run_cli(
            "train",
            "tiny.yaml",
            "--fold",
            "0",
            "--force",
            "--set",
            "train.select=last",
            "--set",
            "train.epochs=3",
        )
    fold = work / "artifacts" / "runs" / RUN / "fold0"
    assert checkpoint.load(fold / "model.pt")["epoch"] == 3
    assert json.loads((fold / "summary.json").read_text())["best_epoch"] == 3


def test_full_refit_trains_on_every_image_for_the_cv_epoch_count(tiny_project, tmp_path):
    work = copy_project(tiny_project, tmp_path / "w")
    folds = [
        json.loads((work / "artifacts" / "runs" / RUN / f"fold{k}" / "summary.json").read_text())[
            "best_epoch"
        ]
        for k in (0, 1)
    ]
    with contextlib.chdir(work):
        out = run_cli("train", "tiny.yaml", "--fold", "full").output
        assert "full" in out
        full = work / "artifacts" / "runs" / RUN / "full"
        payload = checkpoint.load(full / "model.pt")
        assert payload["fold"] == "full"
        assert payload["epoch"] == sorted(folds)[len(folds) // 2 - 1 + len(folds) % 2] or payload[
            "epoch"
        ] == int(sum(folds) / len(folds))  # median of two = their mean, rounded down
        assert len((full / "history.csv").read_text().splitlines()) == 1 + payload["epoch"]
        run_cli("predict", "tiny.yaml", "--split", "test", "--set", "predict.test_from=full")
        manifest = json.loads(
            (work / "artifacts" / "runs" / RUN / "test" / "manifest.json").read_text()
        )
        assert list(manifest["checkpoints"]) == ["full"] and manifest["complete"]
        run_cli("predict", "tiny.yaml", "--split", "test", "--set", "predict.test_from=all")
        manifest = json.loads(
            (work / "artifacts" / "runs" / RUN / "test" / "manifest.json").read_text()
        )
        assert sorted(manifest["checkpoints"]) == ["0", "1", "full"]


def test_full_refit_before_the_folds_says_what_to_do(tiny_carvana, tmp_path):
    cfg = tiny_train_config(tmp_path / "c.yaml", tiny_carvana, epochs=1)
    with contextlib.chdir(tmp_path):
        run_cli("folds", cfg)
        out = run_cli("train", cfg, "--fold", "full", code=1).output
        assert "train the folds first" in out and len(out.strip().splitlines()) == 1
        out = run_cli(
            "predict", cfg, "--split", "test", "--set", "predict.test_from=full", code=1
        ).output
        assert "not trained yet" in out


RECIPE = """name: tiny-recipe
steps:
  - folds: {cfg}
  - train: {cfg}
    full: true
  - ensemble: {ens}
    members: trained
"""
ENSEMBLE = """name: tiny-ens
members: [{run: placeholder}]
threshold: tune
min_area: 0
cleanup: false
format: carvana
workers: 0
qa: false
"""


def test_run_recipe_end_to_end_resumes_and_applies_set(tiny_carvana, tmp_path):
    cfg = tiny_train_config(tmp_path / "c.yaml", tiny_carvana, epochs=1)
    (tmp_path / "e.yaml").write_text(ENSEMBLE)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(RECIPE.format(cfg=cfg, ens=tmp_path / "e.yaml"))
    with contextlib.chdir(tmp_path):
        out = run_cli(
            "run", recipe, "--set", "predict.test_from=full", "--set", "name=tinyr"
        ).output
        assert "tinyr_64x96" in out and "full-data refit" in out and "validated" in out
        sub = tmp_path / "submissions" / "tiny-ens.csv"
        assert len(sub.read_text().splitlines()) == 1 + 4  # one test car x 4 views
        manifest = json.loads(
            (tmp_path / "artifacts" / "runs" / "tinyr_64x96" / "test" / "manifest.json").read_text()
        )
        assert list(manifest["checkpoints"]) == ["full"]
        again = run_cli(
            "run", recipe, "--set", "predict.test_from=full", "--set", "name=tinyr"
        ).output
        assert "reusing" in again and again.count("done before") == 3  # 2 folds + the refit


@pytest.mark.parametrize(
    "text, expected",
    [
        ("name: r\nsteps: [{trian: c.yaml}]\n", "each step needs one of the keys"),
        ("name: r\nsteps: [{train: nosuch.yaml}]\n", "config file not found"),
        ("name: r\nsteps: [{train: c.yaml, fulll: true}]\n", "fulll"),
    ],
)
def test_bad_recipes_are_one_line_errors(tmp_path, text, expected, tiny_carvana):
    tiny_train_config(tmp_path / "c.yaml", tiny_carvana)
    (tmp_path / "r.yaml").write_text(text)
    with contextlib.chdir(tmp_path):
        out = run_cli("run", "r.yaml", code=1).output
    assert expected in out and out.startswith("Error")


def test_predict_settings_keep_finished_folds_but_training_settings_do_not(tiny_project, tmp_path):
    work = copy_project(tiny_project, tmp_path / "w")
    with contextlib.chdir(work):
        out = run_cli(
            "train", "tiny.yaml", "--set", "predict.tta=none", "--set", "predict.test_from=all"
        ).output
        assert out.count("done before") == 2
        out = run_cli("train", "tiny.yaml", "--set", "optim.encoder_lr_mult=0.5", code=1).output
        assert "another config" in out
