import contextlib
import csv
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.errors import PipelineError
from pipeline.model import checkpoint
from pipeline.model.networks import build_model, load_trained
from tests.conftest import dump_before_added_keys, tiny_train_config
from tests.killing import kill_during_write

RUN = "tiny_64x96"


def run_cli(*args):
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result


def history(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def weights(path):
    return checkpoint.load(path)["model"]


@pytest.fixture(scope="module")
def reference(tiny_carvana, tmp_path_factory):
    """One uninterrupted 3-epoch run of fold 0, in its own working directory."""
    work = tmp_path_factory.mktemp("ref")
    cfg = tiny_train_config(work / "tiny.yaml", tiny_carvana)
    with contextlib.chdir(work):
        run_cli("folds", str(cfg))
        run_cli("train", str(cfg), "--fold", "0")
    return work


def test_run_writes_every_artifact_and_learns(reference):
    fold_dir = reference / "artifacts" / "runs" / RUN / "fold0"
    for name in ("model.pt", "last.pt", "history.csv", "curve.png", "config.yaml", "summary.json"):
        assert (fold_dir / name).is_file(), name
    rows = history(fold_dir / "history.csv")
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert {"epoch", "train_loss", "val_loss", "val_dice", "lr"} <= set(rows[0])
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    assert 0.0 <= float(rows[-1]["val_dice"]) <= 1.0
    assert not (reference / "artifacts" / "runs" / RUN / "fold1").exists()  # --fold 0 only


def test_same_seed_same_history_and_weights(reference, tiny_carvana, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(reference / "folds", tmp_path / "folds")
    cfg = tiny_train_config(tmp_path / "tiny.yaml", tiny_carvana)
    run_cli("train", str(cfg), "--fold", "0")
    ours, theirs = (d / "artifacts" / "runs" / RUN / "fold0" for d in (tmp_path, reference))
    cols = ("epoch", "train_loss", "val_loss", "val_dice", "lr")
    assert [[r[c] for c in cols] for r in history(ours / "history.csv")] == [
        [r[c] for c in cols] for r in history(theirs / "history.csv")
    ]
    for key, value in weights(theirs / "last.pt").items():
        assert torch.equal(value, weights(ours / "last.pt")[key]), key


@pytest.mark.slow
def test_sigkill_while_writing_a_checkpoint_keeps_the_old_one(reference, tiny_carvana, tmp_path):
    shutil.copytree(reference / "folds", tmp_path / "folds")
    cfg = tiny_train_config(tmp_path / "tiny.yaml", tiny_carvana)
    # killed while epoch 2's last.pt is on disk but not yet committed; resume redoes epoch 2 from
    # epoch 1's state (model, optimiser, scheduler, RNG) and must end with the uninterrupted weights
    info = kill_during_write(["train", str(cfg), "--fold", "0"], tmp_path, "last.pt", skip=1)
    fold_dir = tmp_path / "artifacts" / "runs" / RUN / "fold0"
    assert (
        info["bytes"] > 0
        and Path(info["path"]).parent == fold_dir
        and Path(info["path"]).name != "last.pt"
    )
    assert checkpoint.load(fold_dir / "last.pt")["epoch"] == 1  # the old file, whole
    assert (
        checkpoint.load(fold_dir / "model.pt")["epoch"] in (1, 2)
        and not (fold_dir / "summary.json").exists()
    )
    resumed = subprocess.run(
        [sys.executable, "-m", "pipeline", "train", str(cfg), "--fold", "0"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert [r["epoch"] for r in history(fold_dir / "history.csv")] == ["1", "2", "3"]
    ref = reference / "artifacts" / "runs" / RUN / "fold0" / "last.pt"
    for key, value in weights(ref).items():
        assert torch.equal(value, weights(fold_dir / "last.pt")[key]), key


def test_finished_folds_are_skipped_and_force_retrains(
    reference, tiny_carvana, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(reference / "folds", tmp_path / "folds")
    shutil.copytree(reference / "artifacts", tmp_path / "artifacts")
    cfg = tiny_train_config(tmp_path / "tiny.yaml", tiny_carvana)
    model = tmp_path / "artifacts" / "runs" / RUN / "fold0" / "model.pt"
    before = model.stat().st_mtime_ns
    assert "done before" in run_cli("train", str(cfg), "--fold", "0").output
    assert model.stat().st_mtime_ns == before
    changed = CliRunner().invoke(cli, ["train", str(cfg), "--fold", "0", "--set", "optim.lr=0.01"])
    assert (
        changed.exit_code == 1
        and "another config" in changed.output
        and "--force" in changed.output
    )
    run_cli("train", str(cfg), "--fold", "0", "--force", "--set", "train.epochs=1")
    assert len(history(model.parent / "history.csv")) == 1


def test_changed_config_does_not_resume_silently(reference, tiny_carvana, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(reference / "folds", tmp_path / "folds")
    shutil.copytree(reference / "artifacts", tmp_path / "artifacts")
    (tmp_path / "artifacts" / "runs" / RUN / "fold0" / "summary.json").unlink()
    cfg = tiny_train_config(tmp_path / "tiny.yaml", tiny_carvana)
    result = CliRunner().invoke(cli, ["train", str(cfg), "--fold", "0", "--set", "optim.lr=0.01"])
    assert (
        result.exit_code == 1 and "different config" in result.output and "--force" in result.output
    )


DOWNLOADERS = (
    "load_state_dict_from_url",
    "download_url_to_file",
    "load_url",
    "hf_hub_download",
    "snapshot_download",
    "cached_download",
    "urlopen",
    "urlretrieve",
)


@pytest.fixture()
def no_downloads(tmp_path, monkeypatch):
    """Every weights cache points at an empty folder and every download function raises.

    Independent of how pipeline.model.networks fetches weights: each of these names is patched in
    every loaded module that holds it (``from x import hf_hub_download`` copies included). Yields
    the list of attempted downloads and the cache folder (which must stay empty).
    """
    import huggingface_hub.constants as hf_constants
    import segmentation_models_pytorch  # noqa: F401 - load the libraries whose copies we patch
    import timm  # noqa: F401

    cache = tmp_path / "empty_cache"
    cache.mkdir()
    for var in (
        "TORCH_HOME",
        "HF_HOME",
        "HF_HUB_CACHE",
        "HUGGINGFACE_HUB_CACHE",
        "XDG_CACHE_HOME",
        "TIMM_CACHE_DIR",
    ):
        monkeypatch.setenv(var, str(cache / var.lower()))
    monkeypatch.setattr(torch.hub, "_hub_dir", str(cache / "torch_hub"))
    for name in ("HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if hasattr(hf_constants, name):
            monkeypatch.setattr(hf_constants, name, str(cache / name.lower()))
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args[:1])
        raise OSError("network disabled in this test")

    for module in list(sys.modules.values()):
        for name in DOWNLOADERS:
            if callable(getattr(module, name, None)):
                monkeypatch.setattr(module, name, refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    yield attempts, cache
    assert not [p for p in cache.rglob("*") if p.is_file()], (
        "something was written to a weights cache"
    )


def test_checkpoint_loads_without_any_download(reference, no_downloads):
    attempts, _ = no_downloads
    path = reference / "artifacts" / "runs" / RUN / "fold0" / "model.pt"
    payload = checkpoint.load(path)
    payload["config"]["model"]["encoder_weights"] = "imagenet"  # the smp re-download pitfall
    patched = path.parent / "imagenet_model.pt"
    checkpoint.save(patched, {k: v for k, v in payload.items() if k != "format"})
    model, meta = load_trained(patched)
    assert attempts == []
    for key, value in payload["state_dict"].items():  # the checkpoint's own weights, nothing else
        assert torch.equal(model.state_dict()[key], value), key
    x = torch.rand(1, 3, 64, 96) * 255
    assert model(x).shape == (1, 1, 64, 96) and meta["fold"] == 0


def test_imagenet_offline_is_a_clear_error(no_downloads):
    from pipeline.config.schema import ModelConfig

    with pytest.raises(PipelineError, match="encoder_weights"):
        build_model(
            ModelConfig(
                encoder="resnet18",
                encoder_weights="imagenet",
                kwargs={"encoder_depth": 3, "decoder_channels": [16, 8, 4]},
            ),
            1,
        )


def test_local_encoder_weights_file(tmp_path):
    from pipeline.config.schema import ModelConfig

    kw = {"encoder_depth": 3, "decoder_channels": [16, 8, 4]}
    torch.manual_seed(1)
    donor = build_model(ModelConfig(encoder="resnet18", kwargs=kw), 1)
    torch.save(donor.net.encoder.state_dict(), tmp_path / "r18.pth")
    model = build_model(
        ModelConfig(encoder="resnet18", encoder_weights=str(tmp_path / "r18.pth"), kwargs=kw), 1
    )
    for key, value in donor.net.encoder.state_dict().items():
        assert torch.equal(value, model.net.encoder.state_dict()[key])
    with pytest.raises(PipelineError, match="not found"):
        build_model(
            ModelConfig(encoder="resnet18", encoder_weights=str(tmp_path / "none.pth"), kwargs=kw),
            1,
        )


def test_two_resolutions_make_two_runs(tiny_carvana, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = tiny_train_config(
        tmp_path / "tiny.yaml", tiny_carvana, resolutions=[[32, 64], [64, 96]], epochs=1
    )
    run_cli("folds", str(cfg))
    out = run_cli("train", str(cfg), "--fold", "1").output
    assert "tiny_32x64" in out and "tiny_64x96" in out
    for run in ("tiny_32x64", "tiny_64x96"):
        assert (tmp_path / "artifacts" / "runs" / run / "fold1" / "model.pt").is_file()


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.resolutions=[[60, 96]]", "multiples of 32"),
        ("model.arch=Nope", "key 'model.arch': Input should be 'Unet'"),
        ("augment.preset=wild", "key 'augment.preset': Input should be 'none', 'carvana'"),
    ],
)
def test_bad_training_config(reference, tiny_carvana, tmp_path, monkeypatch, override, message):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(reference / "folds", tmp_path / "folds")
    cfg = tiny_train_config(tmp_path / "tiny.yaml", tiny_carvana)
    result = CliRunner().invoke(cli, ["train", str(cfg), "--fold", "0", "--set", override])
    assert result.exit_code == 1 and message in result.output, result.output


# Logs every file a process opens for writing under the working directory (audit hook "open"),
# one log per rank, then runs the CLI: shows which ranks write.
_WRITE_LOGGER = """
import os, sys
_log = open(
    os.path.join(sys.argv[1], f"writes_rank{os.environ.get('RANK', '0')}.txt"), "a", buffering=1
)
_root = os.getcwd()
def _hook(event, args):
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        path, mode, flags = os.path.abspath(os.fsdecode(args[0])), args[1] or "", args[2] or 0
        writes = any(c in mode for c in "wax+") or flags & (os.O_WRONLY | os.O_RDWR)
        if path.startswith(_root) and writes:
            _log.write(os.path.relpath(path, _root) + "\\n")
sys.addaudithook(_hook)
from pipeline.cli import cli
cli(sys.argv[2:])
"""

# BatchNorm-free network (ConvNeXt: LayerNorm; decoder without norm), BCE, no augmentation, SGD
# (Adam turns rounding noise in near-zero gradients into lr-sized steps): then
# DDP over 2 x 4 images must equal one process over the same 8 images, up to float rounding.
_DDP_SETTINGS = [
    "--set",
    "model.encoder=tu-convnext_atto",
    "--set",
    "loss.name=bce",
    "--set",
    "augment.preset=none",
    "--set",
    "optim.name=sgd",
    "--set",
    "optim.lr=0.05",
    "--set",
    "model.kwargs={encoder_depth: 4, decoder_channels: [16, 8, 8, 4], decoder_use_norm: false}",
    "--set",
    "train.epochs=2",
]


def _final_name(path: str) -> str:
    """``.last.pt.<pid>.<random>.tmp`` (an atomic write's temp file, fsio.make_temp) ->
    ``last.pt``."""
    name = path.split("/")[-1]
    return name[1:].rsplit(".", 3)[0] if name.startswith(".") and name.endswith(".tmp") else name


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_ddp_two_processes_equal_one_process_with_the_same_global_batch(
    reference, tiny_carvana, tmp_path
):
    logger = tmp_path / "log_writes.py"
    logger.write_text(_WRITE_LOGGER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    dirs = {}
    for world, batch in ((1, 8), (2, 4)):
        work = tmp_path / f"world{world}"
        logs = tmp_path / f"logs{world}"
        logs.mkdir()
        shutil.copytree(reference / "folds", work / "folds")
        cfg = tiny_train_config(work / "tiny.yaml", tiny_carvana, batch_size=batch)
        launch = (
            [sys.executable]
            if world == 1
            else [
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
        )
        result = subprocess.run(
            [*launch, str(logger), str(logs), "train", str(cfg), "--fold", "0", *_DDP_SETTINGS],
            cwd=work,
            capture_output=True,
            text=True,
            env=env,
        )
        assert result.returncode == 0, result.stderr[-6000:]
        dirs[world] = (work / "artifacts" / "runs" / RUN / "fold0", logs)
    (single, _), (ddp, logs) = dirs[1], dirs[2]
    # rank 0 writes the run; rank 1 writes only entries of the shared array cache (each rank caches
    # the images it reads, atomically under content-keyed names), never a run file
    rank0, rank1 = ((logs / f"writes_rank{r}.txt").read_text().split() for r in (0, 1))
    assert {"last.pt", "model.pt", "history.csv", "summary.json", "config.yaml", "curve.png"} <= {
        _final_name(p) for p in rank0 if p.startswith(f"artifacts/runs/{RUN}/fold0/")
    }
    assert all(
        p.startswith("artifacts/cache/") and p.split("/")[-1].startswith(".") and p.endswith(".tmp")
        for p in rank1
    ), rank1
    assert [r["epoch"] for r in history(ddp / "history.csv")] == ["1", "2"]
    # the data is split and the gradients averaged: the same weights as one process
    ours, theirs = weights(ddp / "last.pt"), weights(single / "last.pt")
    assert ours.keys() == theirs.keys()
    for key, value in theirs.items():
        torch.testing.assert_close(ours[key], value, rtol=1e-4, atol=1e-5, msg=key)
    for a, b in zip(history(ddp / "history.csv"), history(single / "history.csv"), strict=True):
        assert float(a["train_loss"]) == pytest.approx(float(b["train_loss"]), rel=1e-4)
        assert float(a["val_dice"]) == pytest.approx(float(b["val_dice"]), abs=1e-4)


def test_crop_trains_on_random_crops_and_validates_on_whole_images(tiny_carvana, tmp_path):
    from pipeline.config import load_config
    from pipeline.data import open_dataset
    from pipeline.model.augment import Geometry
    from pipeline.train.data import ArrayCache, SegmentationSet

    cfg = load_config(tiny_train_config(tmp_path / "c.yaml", tiny_carvana))
    dataset = open_dataset(cfg.dataset)
    samples = dataset.train[:2]
    cache = ArrayCache(dataset, Geometry(64, 96, "pad"), None)
    whole = SegmentationSet(samples, cache, "none", 0)[0]
    crops = SegmentationSet(samples, cache, "none", 0, crop=(32, 64))
    assert whole["image"].shape == (3, 64, 96)
    items = [crops[0], crops[1]]
    assert all(it["image"].shape == (3, 32, 64) and it["mask"].shape == (32, 64) for it in items)
    # a crop is a window of the whole padded input, image and mask aligned
    img, mask = items[0]["image"].numpy(), items[0]["mask"].numpy()
    full_img, full_mask = whole["image"].numpy(), whole["mask"].numpy()
    hits = [
        (y, x)
        for y in range(64 - 32 + 1)
        for x in range(96 - 64 + 1)
        if (full_img[:, y : y + 32, x : x + 64] == img).all()
    ]
    assert hits and any((full_mask[y : y + 32, x : x + 64] == mask).all() for y, x in hits)
    # different epochs give different windows
    windows = set()
    for epoch in range(6):
        crops.set_epoch(epoch)
        windows.add(crops[0]["image"].numpy().tobytes())
    assert len(windows) > 1


def test_an_unset_new_key_keeps_old_fingerprints_and_a_set_one_changes_them(tiny_carvana, tmp_path):
    from pipeline.config import load_config
    from pipeline.stages.train import fingerprint
    from pipeline.train.loop import config_hash

    cfg = load_config(tiny_train_config(tmp_path / "c.yaml", tiny_carvana))
    old = config_hash({"config": dump_before_added_keys(cfg), "train": [], "val": [], "pseudo": []})
    assert fingerprint(cfg, [], [], []) == old
    for section, key, value in (
        ("augment", "crop", [32, 64]),
        ("train", "swa_epochs", 2),
        ("train", "average", "none"),
        ("loss", "class_balance", 0.5),
    ):
        changed = cfg.model_copy(deep=True)
        setattr(getattr(changed, section), key, value)
        assert fingerprint(changed, [], [], []) != old, key
