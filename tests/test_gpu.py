"""The CUDA paths: AMP and channels_last training, CUDA inference, the CUDA RNG in checkpoints.

Marked ``gpu`` (left out of ``make test``) and skipped without a CUDA device. Run them where one
exists: ``pytest -m gpu``.
"""

import contextlib

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.decide.store import ProbStore
from pipeline.model import checkpoint
from tests.conftest import copy_project, tiny_train_config

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

RUN = "tiny_64x96"


def run_cli(*args):
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def cuda_run(tiny_carvana, tmp_path_factory):
    """Fold 0 trained on CUDA with AMP and channels_last;
    what the first convolution saw in training."""
    from pipeline.train import loop

    work = tmp_path_factory.mktemp("cuda")
    cfg = tiny_train_config(
        work / "tiny.yaml", tiny_carvana, epochs=2, device="cuda", amp="true", channels_last="true"
    )
    seen = []
    original = loop.FoldTrainer.__init__

    def spy(self, setup, reporter=None):
        original(self, setup, reporter)
        conv = next(m for m in self.model.modules() if isinstance(m, torch.nn.Conv2d))

        def hook(module, inputs, output):
            if module.training:
                seen.append(
                    (
                        inputs[0].device.type,
                        output.dtype,
                        inputs[0].is_contiguous(memory_format=torch.channels_last),
                        module.weight.is_contiguous(memory_format=torch.channels_last),
                    )
                )

        conv.register_forward_hook(hook)

    with pytest.MonkeyPatch.context() as mp, contextlib.chdir(work):
        mp.setattr(loop.FoldTrainer, "__init__", spy)
        run_cli("folds", str(cfg))
        run_cli("train", str(cfg), "--fold", "0")
    return work, seen


def test_amp_and_channels_last_training(cuda_run):
    work, seen = cuda_run
    assert seen and all(s == ("cuda", torch.float16, True, True) for s in seen), seen[:3]
    last = checkpoint.load(work / "artifacts" / "runs" / RUN / "fold0" / "last.pt")
    assert last["epoch"] == 2 and "scale" in last["scaler"]  # an enabled GradScaler was saved
    for value in last["model"].values():
        assert torch.isfinite(value.float()).all()
    assert all(np.isfinite(r["train_loss"]) for r in last["history"])


def test_checkpoint_restores_the_cuda_rng(cuda_run):
    work, _ = cuda_run
    saved = checkpoint.load(work / "artifacts" / "runs" / RUN / "fold0" / "last.pt")["rng"]
    assert len(saved["cuda"]) == torch.cuda.device_count()
    checkpoint.set_rng_state(saved)  # what FoldTrainer.resume does
    first = torch.rand(1000, device="cuda")
    torch.cuda.manual_seed_all(12345)  # move on
    checkpoint.set_rng_state(saved)
    assert torch.equal(torch.rand(1000, device="cuda"), first)
    state = checkpoint.rng_state()  # and a fresh state round-trips through a file
    path = work / "rng.pt"
    checkpoint.save(path, {"rng": state})
    expected = torch.rand(1000, device="cuda")
    torch.cuda.manual_seed_all(54321)
    checkpoint.set_rng_state(checkpoint.load(path)["rng"])
    assert torch.equal(torch.rand(1000, device="cuda"), expected)


def test_resume_on_cuda_restores_the_cuda_rng(cuda_run, monkeypatch):
    from pipeline.train import loop

    work, _ = cuda_run
    fold_dir = work / "artifacts" / "runs" / RUN / "fold0"
    saved = checkpoint.load(fold_dir / "last.pt")["rng"]["cuda"]
    (fold_dir / "summary.json").unlink()  # unfinished again: the next run resumes from last.pt
    after_resume = []
    original = loop.FoldTrainer.resume

    def spy(self):
        torch.cuda.manual_seed_all(999)  # whatever the process had before
        resumed = original(self)
        after_resume.append(torch.cuda.get_rng_state_all())
        return resumed

    monkeypatch.setattr(loop.FoldTrainer, "resume", spy)
    with contextlib.chdir(work):
        run_cli("train", "tiny.yaml", "--fold", "0", "--set", "train.epochs=2")
    assert after_resume and all(
        torch.equal(a, b) for a, b in zip(after_resume[0], saved, strict=True)
    )


def test_cuda_inference_matches_cpu(tiny_project, tmp_path):
    stores = {}
    for device in ("cpu", "cuda"):
        work = copy_project(tiny_project, tmp_path / device)
        with contextlib.chdir(work):
            run_cli(
                "predict",
                "tiny.yaml",
                "--split",
                "test",
                "--tta",
                "flip",
                "--set",
                f"predict.device={device}",
            )
        stores[device] = ProbStore.open(work / "artifacts" / "runs" / RUN / "test")
    cpu, cuda = stores["cpu"], stores["cuda"]
    assert sorted(cpu.ids()) == sorted(cuda.ids())
    for image_id in cpu.ids():
        diff = np.abs(cpu.read(image_id).astype(int) - cuda.read(image_id).astype(int))
        assert diff.max() <= 2, image_id  # TF32/cuDNN rounding only


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="DDP with nccl needs two CUDA devices")
def test_ddp_nccl_two_gpus(tiny_carvana, tmp_path):
    import os
    import subprocess
    import sys

    from tests.test_train import _free_port

    work = tmp_path / "ddp"
    work.mkdir()
    cfg = tiny_train_config(work / "tiny.yaml", tiny_carvana, epochs=1, device="cuda")
    with contextlib.chdir(work):
        run_cli("folds", str(cfg))
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
    ]
    result = subprocess.run(
        [*torchrun, "-m", "pipeline", "train", str(cfg), "--fold", "0"],
        cwd=work,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-6000:]
    assert (work / "artifacts" / "runs" / RUN / "fold0" / "summary.json").is_file()
