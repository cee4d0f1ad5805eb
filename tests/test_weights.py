"""Offline pretrained encoders: package sources mapped onto timm/smp, local files, normalisation."""

import contextlib
import socket

import pytest
import timm
import torch
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.config.schema import ModelConfig
from pipeline.errors import PipelineError
from pipeline.model import checkpoint
from pipeline.model.networks import build_model, load_trained
from pipeline.model.weights import HALF, SOURCES, Normalization, lite_to_timm
from tests.conftest import tiny_train_config

NATIVE = {"efficientnet-lite0": 224, "efficientnet-lite1": 240, "efficientnet-lite2": 260}


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_mapped_source_gives_the_reference_logits(name):
    """timm's network with the mapped keys == the package's own reference implementation, at its
    native size (the reference pads statically for that size)."""
    reference_impl = pytest.importorskip("efficientnet_lite_pytorch")
    source = SOURCES[name]
    net = timm.create_model(source.encoders[0][3:], pretrained=False).eval()
    net.load_state_dict(source.timm_state_dict(), strict=True)
    ref = reference_impl.EfficientNet.from_pretrained(name, weights_path=str(source.path())).eval()
    x = torch.randn(2, 3, NATIVE[name], NATIVE[name], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(net(x), ref(x), atol=1e-5, rtol=0)


def test_smp_encoder_receives_every_mapped_weight():
    source = SOURCES["efficientnet-lite0"]
    model = build_model(
        ModelConfig(encoder="tu-tf_efficientnet_lite0", encoder_weights="efficientnet-lite0"), 1
    )
    mapped = source.timm_state_dict()
    got = model.net.encoder.state_dict()
    assert got and all(torch.equal(v, mapped[k[len("model.") :]]) for k, v in got.items())
    assert model.normalization == HALF  # TF-ported weights expect [-1, 1] inputs


def test_block_roles_follow_the_network_shape():
    """Stage-0 blocks (no expansion) and inverted residuals map to different timm role names."""
    state = {
        "_blocks.0._depthwise_conv.weight": torch.zeros(1),
        "_blocks.0._bn2.bias": torch.zeros(1),
        "_blocks.1._expand_conv.weight": torch.zeros(1),
        "_blocks.1._bn2.bias": torch.zeros(1),
        "_blocks.2._project_conv.weight": torch.zeros(1),
        "_conv_head.weight": torch.zeros(1),
    }
    out = lite_to_timm(state, (1, 1, 1))
    assert set(out) == {
        "blocks.0.0.conv_dw.weight",
        "blocks.0.0.bn2.bias",
        "blocks.1.0.conv_pw.weight",
        "blocks.1.0.bn3.bias",
        "blocks.2.0.conv_pw.weight",
        "conv_head.weight",
    }


@pytest.mark.parametrize(
    "weights, encoder, expected",
    [
        ("nosuch-weights", "resnet18", "is unknown"),
        ("efficientnet-lite0", "resnet18", "does not fit model.encoder 'resnet18'"),
        ("efficientnet-lite1", "tu-tf_efficientnet_lite0", "valid pairs"),
    ],
)
def test_wrong_source_is_a_one_line_error(weights, encoder, expected):
    with pytest.raises(PipelineError, match=expected) as err:
        build_model(ModelConfig(encoder=encoder, encoder_weights=weights), 1)
    assert "\n" not in str(err.value)


def test_local_file_with_a_key_map(tmp_path):
    donor = build_model(ModelConfig(encoder="resnet18"), 1)
    path = tmp_path / "backbone.pth"
    torch.save(
        {
            "state_dict": {
                f"module.backbone.{k}": v for k, v in donor.net.encoder.state_dict().items()
            }
        },
        path,
    )
    with pytest.raises(PipelineError, match=r"have no match \(first: "):
        build_model(ModelConfig(encoder="resnet18", encoder_weights=str(path)), 1)
    model = build_model(
        ModelConfig(
            encoder="resnet18", encoder_weights=str(path), encoder_key_map={"module.backbone.": ""}
        ),
        1,
    )
    for k, v in donor.net.encoder.state_dict().items():
        assert torch.equal(model.net.encoder.state_dict()[k], v)


def _block_sockets(monkeypatch):
    def refuse(*_a, **_k):
        raise OSError("network blocked in this test")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="module")
def lite_project(tiny_carvana, tmp_path_factory):
    """Fold 0 of a short training from the efficientnet-lite0 package source, sockets blocked."""
    work = tmp_path_factory.mktemp("lite")
    cfg = tiny_train_config(work / "lite.yaml", tiny_carvana, epochs=1)
    text = (
        cfg.read_text()
        .replace("encoder: resnet18", "encoder: tu-tf_efficientnet_lite0")
        .replace("encoder_weights: null", "encoder_weights: efficientnet-lite0")
        .replace(
            "kwargs: {encoder_depth: 3, decoder_channels: [16, 8, 4]}",
            "kwargs: {decoder_channels: [32, 16, 8, 8, 4]}",
        )
    )
    cfg.write_text(text)
    with pytest.MonkeyPatch.context() as mp, contextlib.chdir(work):
        _block_sockets(mp)
        for args in (["folds", str(cfg)], ["train", str(cfg), "--fold", "0"]):
            result = CliRunner().invoke(cli, args)
            assert result.exit_code == 0, result.output
    return work / "artifacts" / "runs" / "tiny_64x96" / "fold0" / "model.pt"


def test_training_from_a_package_source_runs_offline_and_saves_its_normalisation(lite_project):
    payload = checkpoint.load(lite_project)
    assert payload["normalization"] == HALF.to_dict()
    model, _ = load_trained(lite_project)
    assert model.normalization == HALF
    assert torch.allclose(model.mean.flatten(), torch.full((3,), 127.5))


def test_the_checkpoint_normalisation_is_applied_at_predict_time(
    lite_project, tmp_path, monkeypatch
):
    """Loading needs neither the weights package nor the network, and uses the saved mean/std."""
    import pipeline.model.weights as weights_module

    _block_sockets(monkeypatch)
    monkeypatch.setattr(
        weights_module.WeightSource, "path", lambda self: (_ for _ in ()).throw(AssertionError)
    )
    model, payload = load_trained(lite_project)
    x = torch.rand(1, 3, 64, 96) * 255
    with torch.no_grad():
        expected = model.net((x / 255 - 0.5) / 0.5)
        assert torch.allclose(model(x), expected, atol=1e-5)
    # The same weights fed ImageNet-normalised pixels predict something else: the saved one matters.
    patched = tmp_path / "imagenet.pt"
    checkpoint.save(
        patched,
        {
            **{k: v for k, v in payload.items() if k != "format"},
            "normalization": Normalization().to_dict(),
        },
    )
    other, _ = load_trained(patched)
    with torch.no_grad():
        assert not torch.allclose(other(x), model(x), atol=1e-3)


def test_old_checkpoints_without_normalisation_read_as_imagenet():
    assert Normalization.from_dict(None) == Normalization()
