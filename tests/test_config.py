import contextlib
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.config import load_config
from pipeline.config.loader import parse_overrides
from pipeline.config.recipe import Recipe
from pipeline.config.schema import EnsembleConfig
from pipeline.errors import PipelineError
from tests.conftest import write_config

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))


def test_configs_folder_is_not_empty():
    assert len(CONFIGS) >= 3


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_config_loads(path):
    if path.name.startswith("ensemble_"):
        assert load_config(path, schema=EnsembleConfig).members
    elif path.name.startswith("recipe_"):
        # a recipe loads, and every config it names exists and loads too
        # (paths relative to the repo root)
        recipe = load_config(path, schema=Recipe)
        root = Path(__file__).parents[1]
        for step in recipe.steps:
            for key, schema in (("folds", None), ("train", None), ("ensemble", EnsembleConfig)):
                value = getattr(step, key, None)
                if isinstance(value, str) and value.endswith(".yaml"):
                    assert load_config(root / value, **({"schema": schema} if schema else {}))
    else:
        assert load_config(path).dataset.name


BASE = "name: base\ndataset: {layout: carvana, name: d, root: data}\nfolds: {k: 3, seed: 7}\n"


def test_base_inheritance_and_override(tmp_path):
    write_config(tmp_path / "base.yaml", BASE)
    child = write_config(tmp_path / "child.yaml", "base: base.yaml\nname: child\nfolds: {k: 4}\n")
    cfg = load_config(child)
    assert (cfg.name, cfg.folds.k, cfg.folds.seed, cfg.dataset.root) == ("child", 4, 7, "data")
    cfg = load_config(child, ["folds.seed=11", "dataset.root=elsewhere"])
    assert (cfg.folds.seed, cfg.dataset.root) == (11, "elsewhere")


def test_base_cycle_is_an_error(tmp_path):
    write_config(tmp_path / "a.yaml", "base: b.yaml\n")
    write_config(tmp_path / "b.yaml", "base: a.yaml\n")
    with pytest.raises(PipelineError, match="cycle"):
        load_config(tmp_path / "a.yaml")


@pytest.mark.parametrize(
    "override, message",
    [
        ("folds.kk=3", r"unknown key 'folds.kk'; valid keys here: k, seed"),
        ("dataset.colour=1", r"unknown key 'dataset.colour'; valid keys here: layout, name, root"),
        ("extra=1", r"unknown key 'extra'; valid keys here: name, dataset, folds"),
        ("folds.k=abc", r"key 'folds.k': .*integer.*got 'abc'"),
        ("folds.k=1", r"key 'folds.k': .*greater than or equal to 2"),
        (
            "dataset.layout=zip",
            r"key 'dataset.layout' must be one of 'carvana', 'folder', 'comma10k', 'cityscapes', "
            r"got 'zip'",
        ),
        ("name=a/b", r"key 'name'"),
        ("augment.crop=[100, 64]", r"key 'augment.crop'.*multiples of 32"),
        (
            "augment.crop=[512, 64]",
            r"augment.crop \[512, 64\] is larger than train.resolutions entry \[256, 256\]",
        ),
    ],
)
def test_bad_keys_and_types_name_the_key(tmp_path, override, message):
    cfg = write_config(tmp_path / "c.yaml", BASE)
    with pytest.raises(PipelineError, match=message) as info:
        load_config(cfg, [override])
    assert "\n" not in str(info.value) and str(cfg) in str(info.value)


@pytest.mark.parametrize("text", ["folds.k", "=3", "a..b=1"])
def test_malformed_set_is_an_error(text):
    with pytest.raises(PipelineError, match="KEY=VALUE"):
        parse_overrides([text])


def test_set_values_are_yaml_typed():
    assert parse_overrides(["a.b=3", "c=null", "d=[1, 2]", "e=x"]) == [
        (["a", "b"], 3),
        (["c"], None),
        (["d"], [1, 2]),
        (["e"], "x"),
    ]


def test_cli_prints_config_error_as_one_line(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", BASE)
    result = CliRunner().invoke(cli, ["folds", str(cfg), "--set", "folds.bogus=1"])
    assert result.exit_code == 1
    assert result.output.strip().count("\n") == 0
    assert "folds.bogus" in result.output and "Traceback" not in result.output


def test_config_command_prints_resolved_yaml(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", BASE)
    result = CliRunner().invoke(cli, ["config", str(cfg), "--set", "folds.k=5"])
    assert result.exit_code == 0, result.output
    assert "k: 5" in result.output and "area_bins: 4" in result.output


def test_missing_config_file(tmp_path):
    with pytest.raises(PipelineError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    "override, names",
    [
        ("model.arch=Unett", "'Unet', 'UnetPlusPlus'"),
        ("loss.name=bcedice", "'bce_dice'"),
        ("augment.preset=carvanna", "'carvana'"),
        ("predict.tta=flips", "'hflip', 'flip' or 'd4'"),
    ],
)
def test_config_command_rejects_a_registry_typo_listing_the_valid_names(override, names):
    """Registry names are checked when the config loads, not when the stage that uses them runs."""
    config = Path(__file__).parents[1] / "configs" / "demo.yaml"
    result = CliRunner().invoke(cli, ["config", str(config), "--set", override])
    key = override.split("=")[0]
    assert result.exit_code == 1 and f"key '{key}'" in result.output and names in result.output, (
        result.output
    )


def test_ensemble_format_typo_is_rejected_when_the_config_loads(tmp_path):
    path = write_config(tmp_path / "e.yaml", "name: e\nmembers: [{run: a}]\nformat: carvanna\n")
    with pytest.raises(PipelineError, match="key 'format'.*'carvana', 'severstal'"):
        load_config(path, schema=EnsembleConfig)


def test_model_kwargs_the_architecture_does_not_accept_are_rejected_when_the_config_loads():
    """smp would hand an unknown name to the encoder, which drops it:
    `pipeline config` already says so."""
    config = Path(__file__).parents[1] / "configs" / "demo.yaml"
    result = CliRunner().invoke(
        cli, ["config", str(config), "--set", "model.kwargs={decoder_chanels: [16, 8]}"]
    )
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert (
        "key 'model.kwargs'" in lines[0]
        and "Unet does not accept 'decoder_chanels'; it accepts " in lines[0]
    )
    assert (
        "decoder_channels" in lines[0]
        and "encoder_depth" in lines[0]
        and "encoder_name" not in lines[0]
    )
    # another architecture, another signature: FPN has no decoder_channels
    result = CliRunner().invoke(
        cli,
        [
            "config",
            str(config),
            "--set",
            "model.arch=FPN",
            "--set",
            "model.kwargs={decoder_channels: [16, 8]}",
        ],
    )
    assert result.exit_code == 1 and "FPN does not accept 'decoder_channels'" in result.output, (
        result.output
    )
    assert "decoder_pyramid_channels" in result.output
    result = CliRunner().invoke(
        cli, ["config", str(config), "--set", "model.kwargs={encoder_depth: 3}"]
    )
    assert result.exit_code == 0 and "encoder_depth: 3" in result.output, result.output
    # arguments smp accepts but the pipeline decides (they would break training or the stores)
    for key, why in (
        ("in_channels: 1", "3-channel RGB"),
        ("activation: sigmoid", "raw logits"),
        ("aux_params: {classes: 2}", "masks only"),
        ("classes: 3", "dataset's classes"),
    ):
        result = CliRunner().invoke(
            cli, ["config", str(config), "--set", f"model.kwargs={{{key}}}"]
        )
        lines = result.output.strip().splitlines()
        assert result.exit_code == 1 and len(lines) == 1 and why in lines[0], result.output
        assert f"'{key.split(':')[0]}' is not settable here" in lines[0]


def test_model_kwargs_check_covers_configs_built_in_code():
    from pydantic import ValidationError

    from pipeline.config.schema import ModelConfig

    with pytest.raises(ValidationError, match="Unet does not accept 'decoder_chanels'"):
        ModelConfig(encoder="resnet18", kwargs={"decoder_chanels": [16, 8, 4, 2, 1]})


CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_config_command_prints_every_shipped_config_and_the_output_loads_again(
    path, tmp_path, monkeypatch
):
    """Experiment configs, ensemble configs (members) and recipes (steps) each load
    with their schema."""
    monkeypatch.chdir(
        path.parents[1]
    )  # a recipe's step configs are relative to the repository root
    result = CliRunner().invoke(cli, ["config", str(path)])
    assert result.exit_code == 0, result.output
    dumped = write_config(tmp_path / path.name, result.output)
    assert load_config(dumped, schema=None) == load_config(path, schema=None)


def test_config_command_resolves_an_ensemble_config_and_a_recipe(tmp_path):
    ensemble = write_config(
        tmp_path / "e.yaml", "name: e\nmembers: [{run: a}, {run: b, weight: 2}]\n"
    )
    result = CliRunner().invoke(cli, ["config", str(ensemble), "--set", "threshold=0.4"])
    assert result.exit_code == 0, result.output
    assert (
        "threshold: 0.4\n" in result.output and "min_area: tune\n" in result.output
    )  # defaults resolved
    assert "weight: 2.0" in result.output and "format: carvana" in result.output
    assert isinstance(load_config(ensemble, schema=None), EnsembleConfig)
    recipe = write_config(
        tmp_path / "r.yaml", "name: r\nsteps:\n  - train: configs/demo.yaml\n    full: true\n"
    )
    with contextlib.chdir(Path(__file__).parents[1]):  # step configs are checked too, cwd-relative
        result = CliRunner().invoke(cli, ["config", str(recipe)])
    assert result.exit_code == 0, result.output
    assert "full: true" in result.output and "predict: true" in result.output
    assert isinstance(load_config(recipe, schema=None), Recipe)


@pytest.mark.parametrize(
    "text, message",
    [
        ("name: e\nmembers: [{run: a}]\nformat: carvanna\n", "key 'format'"),
        (
            "name: e\nmembers: [{run: a}]\nthreshhold: 0.4\n",
            "unknown key 'threshhold'; valid keys here: name, members",
        ),
        (
            "name: r\nsteps:\n  - train: x.yaml\n    ful: true\n",
            "unknown key 'steps[0].ful'; valid keys here: train, full",
        ),
    ],
)
def test_config_command_checks_ensembles_and_recipes_against_their_schema(tmp_path, text, message):
    path = write_config(tmp_path / "c.yaml", text)
    result = CliRunner().invoke(cli, ["config", str(path)])
    assert (
        result.exit_code == 1
        and message in result.output
        and len(result.output.strip().splitlines()) == 1
    ), result.output
