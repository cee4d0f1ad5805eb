"""Mixed precision: what ``auto`` resolves to, bf16 checkpoints predicting in fp32, stores alike."""

import contextlib

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.decide.store import ProbStore
from pipeline.errors import PipelineError
from pipeline.model import precision as precision_module
from pipeline.model.networks import load_trained
from pipeline.model.precision import resolve_precision
from tests.conftest import tiny_train_config

CPU = torch.device("cpu")


@pytest.fixture
def native_bf16(monkeypatch):
    """Pretend the CPU does (True) or does not (False) compute bf16 natively."""

    def set_(value: bool):
        monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: value)

    return set_


@pytest.mark.parametrize("native, expected", [(True, "bf16"), (False, "fp32")])
def test_auto_on_cpu_follows_native_bf16(native_bf16, native, expected):
    native_bf16(native)
    resolved = resolve_precision("auto", CPU)
    assert resolved.name == expected
    assert resolved.mixed == (expected == "bf16")
    assert not resolved.needs_scaler


@pytest.mark.parametrize("requested", ["fp32", "bf16"])
def test_explicit_precision_is_kept_on_cpu(native_bf16, requested):
    native_bf16(False)
    assert resolve_precision(requested, CPU).name == requested


def test_fp16_on_cpu_is_one_clear_error():
    with pytest.raises(PipelineError, match="train.precision: fp16 runs on CUDA devices only"):
        resolve_precision("fp16", CPU, "train.precision")


def test_cpuinfo_flags_are_read(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16 amx_tile\n")
    assert "avx512_bf16" in precision_module._cpu_flags(info)
    assert precision_module._cpu_flags(tmp_path / "missing") == set()


def test_bf16_autocast_runs_the_forward_pass_in_bf16():
    conv = torch.nn.Conv2d(3, 2, 3)
    with resolve_precision("bf16", CPU).autocast():
        out = conv(torch.randn(1, 3, 8, 8))
    assert out.dtype == torch.bfloat16
    with resolve_precision("fp32", CPU).autocast():
        assert conv(torch.randn(1, 3, 8, 8)).dtype == torch.float32


def _run(*args):
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result


def test_bf16_trained_checkpoint_predicts_in_fp32_and_stores_match(tiny_carvana, tmp_path):
    """Train under bf16, predict under bf16 and fp32: same ids and shapes, close probabilities."""
    cfg = tiny_train_config(tmp_path / "tiny.yaml", tiny_carvana, epochs=1, precision="bf16")
    with contextlib.chdir(tmp_path):
        _run("folds", str(cfg))
        _run("train", str(cfg))
        model, meta = load_trained(tmp_path / "artifacts/runs/tiny_64x96/fold0/model.pt")
        assert meta["precision"] == "bf16"
        assert all(p.dtype == torch.float32 for p in model.parameters())
        stores = {}
        for precision in ("bf16", "fp32"):
            _run("predict", str(cfg), "--set", f"predict.precision={precision}", "--force")
            for split in ("oof", "test"):
                store = ProbStore.open(tmp_path / f"artifacts/runs/tiny_64x96/{split}")
                stores[precision, split] = {i: store.read(i) for i in store.ids()}
    for split in ("oof", "test"):
        bf16, fp32 = stores["bf16", split], stores["fp32", split]
        assert sorted(bf16) == sorted(fp32) and bf16
        for image_id, probs in fp32.items():
            assert probs.shape == bf16[image_id].shape and probs.dtype == np.uint8
            diff = np.abs(probs.astype(int) - bf16[image_id].astype(int))
            assert diff.mean() < 3  # bf16 keeps 8 bits of mantissa: a few uint8 levels at most


def test_fp32_runs_keep_the_fingerprint_of_runs_trained_before_precision_existed(
    tiny_carvana, tmp_path, native_bf16
):
    from pipeline.config import load_config
    from pipeline.stages.train import fingerprint
    from pipeline.train.loop import config_hash
    from tests.conftest import dump_before_added_keys

    native_bf16(False)
    cfg = load_config(tiny_train_config(tmp_path / "c.yaml", tiny_carvana))
    before = dump_before_added_keys(cfg)
    old = config_hash({"config": before, "train": [], "val": [], "pseudo": []})
    assert fingerprint(cfg, [], [], []) == old  # auto = fp32 on this CPU: what old runs were
    native_bf16(True)
    assert fingerprint(cfg, [], [], []) != old  # auto = bf16: another computation, not reused
