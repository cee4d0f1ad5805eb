"""Model registry ``ARCHS`` (segmentation-models-pytorch) and checkpoint-safe construction.

The network takes float images in 0..255 (N, 3, H, W) and normalises them itself with the
ImageNet mean/std that smp encoders expect, so every caller (train, predict, serve) feeds raw pixels.

A model is always *built* with ``encoder_weights=None``; pretrained weights are then loaded
explicitly (smp's ``imagenet`` hub download, or a local file). Loading a checkpoint therefore never
touches the network, whatever ``encoder_weights`` its saved config names (a known smp pitfall).
"""
from __future__ import annotations

from pathlib import Path

import segmentation_models_pytorch as smp
import torch
from torch import nn

from pipeline.errors import PipelineError

ARCHS: dict[str, type[nn.Module]] = {
    name: getattr(smp, name)
    for name in ("Unet", "UnetPlusPlus", "FPN", "DeepLabV3", "DeepLabV3Plus", "Linknet", "PSPNet", "PAN", "MAnet",
                 "UPerNet", "Segformer")
    if hasattr(smp, name)
}
IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)


class SegModel(nn.Module):
    """Pixel normalisation + an smp network; ``forward`` returns logits (N, C, H, W)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net((images - self.mean) / self.std)


def _smp_network(arch: str, encoder: str, outputs: int, kwargs: dict) -> nn.Module:
    if arch not in ARCHS:
        raise PipelineError(f"model.arch '{arch}' is unknown; choose one of {sorted(ARCHS)}")
    try:
        return ARCHS[arch](encoder_name=encoder, encoder_weights=None, classes=outputs, **kwargs)
    except (KeyError, ValueError, TypeError, AttributeError, RuntimeError) as err:
        raise PipelineError(f"model: cannot build {arch} with encoder '{encoder}' ({err}); "
                            "check model.encoder and model.kwargs") from None


def load_encoder_file(net: nn.Module, path: Path) -> None:
    """Load a local encoder weights file (raw encoder state dict, or keys prefixed ``encoder.``)."""
    if not path.is_file():
        raise PipelineError(f"model.encoder_weights: file {path} not found (use null, 'imagenet' or a weights file)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a bad file
        raise PipelineError(f"{path}: not a torch weights file ({err})") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if any(k.startswith("encoder.") for k in state):
        state = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    expected = net.encoder.state_dict()
    missing = sorted(set(expected) - set(state))
    if missing:
        raise PipelineError(f"{path}: {len(missing)} encoder weights missing (first: {missing[0]}); "
                            "is it the weights file of this encoder?")
    # Extra keys (an ImageNet classifier head) are expected; load exactly the encoder's own.
    nn.Module.load_state_dict(net.encoder, {k: state[k] for k in expected}, strict=True)


def load_pretrained(net: nn.Module, arch: str, encoder: str, weights: str | None) -> None:
    """Put pretrained encoder weights into ``net``: ``imagenet`` from smp's hub, or a local file."""
    if weights is None:
        return
    if weights != "imagenet" and ("/" in weights or Path(weights).suffix):
        load_encoder_file(net, Path(weights))
        return
    try:  # the hub download, for users online
        reference = ARCHS[arch](encoder_name=encoder, encoder_weights=weights, classes=1)
    except Exception as err:  # noqa: BLE001 - network/hub errors vary by library version
        raise PipelineError(f"model.encoder_weights '{weights}': download failed ({type(err).__name__}: {err}); "
                            "offline, point encoder_weights at a local weights file") from None
    net.encoder.load_state_dict(reference.encoder.state_dict())


def build_model(model_cfg, outputs: int, pretrained: bool = True) -> SegModel:
    """A fresh model with ``outputs`` channels; ``pretrained`` loads ``model_cfg.encoder_weights``."""
    net = _smp_network(model_cfg.arch, model_cfg.encoder, outputs, dict(model_cfg.kwargs))
    if pretrained:
        load_pretrained(net, model_cfg.arch, model_cfg.encoder, model_cfg.encoder_weights)
    return SegModel(net)


def output_channels(num_classes: int) -> int:
    """Binary tasks use one sigmoid channel; multi-class tasks one softmax channel per class."""
    return 1 if num_classes == 2 else num_classes


def load_trained(path: Path, device: str | torch.device = "cpu") -> tuple[SegModel, dict]:
    """A trained model from ``model.pt`` plus its checkpoint metadata; never downloads anything.

    The saved config may say ``encoder_weights: imagenet``: the network is still built with
    ``encoder_weights=None`` and then receives the checkpoint's own weights.
    """
    from pipeline.config.schema import ModelConfig
    from pipeline.train import checkpoint

    payload = checkpoint.load(Path(path))
    if "state_dict" not in payload:
        raise PipelineError(f"{path}: holds no model weights (use a fold's model.pt)")
    model_cfg = ModelConfig.model_validate(payload["config"]["model"])
    model = build_model(model_cfg, output_channels(len(payload["classes"])), pretrained=False)
    model.load_state_dict(payload["state_dict"])
    return model.to(device).eval(), payload
