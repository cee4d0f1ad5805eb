"""Model registry ``ARCHS`` (segmentation-models-pytorch) and checkpoint-safe construction.

The network takes float images in 0..255 (N, 3, H, W) and normalises them itself with what its
encoder weights expect (``pipeline.model.weights``), so every caller (train, predict, serve) feeds
raw pixels.

A model is always *built* with ``encoder_weights=None``; pretrained weights are then loaded
explicitly (an offline source, a local file, or smp's ``imagenet`` hub download). Loading a
checkpoint therefore never touches the network nor a weights package, whatever ``encoder_weights``
its saved config names (a known smp pitfall).
"""

from __future__ import annotations

from pathlib import Path

import segmentation_models_pytorch as smp
import torch
from torch import nn

from pipeline.config import names
from pipeline.errors import PipelineError
from pipeline.model.weights import (
    SOURCES,
    Normalization,
    apply_key_map,
    encoder_normalization,
    is_path,
    load_encoder_state,
    read_state_dict,
    source_for,
)

ARCHS: dict[str, type[nn.Module]] = {
    name: getattr(smp, name) for name in names.ARCHS if hasattr(smp, name)
}


class SegModel(nn.Module):
    """Pixel normalisation + an smp network; ``forward`` returns logits (N, C, H, W).

    Takes float images in 0..255 and applies ``normalization`` (what the encoder's weights expect;
    saved in every checkpoint), so every caller (train, predict, serve, video) feeds raw pixels.
    """

    def __init__(self, net: nn.Module, normalization: Normalization | None = None):
        super().__init__()
        self.net = net
        self.normalization = normalization or Normalization()
        mean = [m * 255 for m in self.normalization.mean]
        std = [s * 255 for s in self.normalization.std]
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net((images - self.mean) / self.std)


def accepted_kwargs(arch: str) -> list[str]:
    """The named arguments of an smp architecture that ``model.kwargs`` may set
    (``names.arch_kwargs``)."""
    return list(names.arch_kwargs(arch) or ())


def _smp_network(arch: str, encoder: str, outputs: int, kwargs: dict) -> nn.Module:
    if arch not in ARCHS:
        raise PipelineError(f"model.arch '{arch}' is unknown; choose one of {sorted(ARCHS)}")
    unknown = sorted(set(kwargs) - set(accepted_kwargs(arch)))
    if unknown:
        raise PipelineError(
            f"model.kwargs '{unknown[0]}': {arch} does not accept it; it accepts "
            f"{', '.join(accepted_kwargs(arch))}"
        )
    try:
        return ARCHS[arch](encoder_name=encoder, encoder_weights=None, classes=outputs, **kwargs)
    except (KeyError, ValueError, TypeError, AttributeError, RuntimeError) as err:
        raise PipelineError(
            f"model: cannot build {arch} with encoder '{encoder}' ({err}); "
            "check model.encoder and model.kwargs"
        ) from None


def load_pretrained(net: nn.Module, model_cfg) -> None:
    """Put pretrained encoder weights into ``net``: an offline source, a local file,
    or smp's hub."""
    weights = model_cfg.encoder_weights
    if weights is None:
        return
    if weights in SOURCES:
        source = source_for(weights, model_cfg.encoder)
        load_encoder_state(
            net.encoder, source.timm_state_dict(), f"{source.package} ({source.path().name})"
        )
        return
    if weights != "imagenet" and is_path(weights):
        state = apply_key_map(read_state_dict(Path(weights)), model_cfg.encoder_key_map)
        load_encoder_state(net.encoder, state, weights)
        return
    if weights != "imagenet":
        source_for(weights, model_cfg.encoder)  # raises: unknown name, listing the valid ones
    try:  # the hub download, for users online
        reference = ARCHS[model_cfg.arch](
            encoder_name=model_cfg.encoder, encoder_weights=weights, classes=1
        )
    except Exception as err:  # noqa: BLE001 - network/hub errors vary by library version
        raise PipelineError(
            f"model.encoder_weights '{weights}': download failed ({type(err).__name__}: {err}); "
            f"offline, use a source ({', '.join(SOURCES)}) or a local weights file"
        ) from None
    net.encoder.load_state_dict(reference.encoder.state_dict())


def model_normalization(model_cfg) -> Normalization:
    """``model.normalization`` if set, else what the encoder weights expect."""
    if model_cfg.normalization is not None:
        return Normalization(
            tuple(model_cfg.normalization.mean), tuple(model_cfg.normalization.std)
        )
    return encoder_normalization(model_cfg.encoder, model_cfg.encoder_weights)


def build_model(model_cfg, outputs: int, pretrained: bool = True) -> SegModel:
    """A fresh model with ``outputs`` channels;
    ``pretrained`` loads ``model_cfg.encoder_weights``."""
    net = _smp_network(model_cfg.arch, model_cfg.encoder, outputs, dict(model_cfg.kwargs))
    if pretrained:
        load_pretrained(net, model_cfg)
    return SegModel(net, model_normalization(model_cfg))


def output_channels(num_classes: int) -> int:
    """Binary tasks use one sigmoid channel; multi-class tasks one softmax channel per class."""
    return 1 if num_classes == 2 else num_classes


def load_trained(path: Path, device: str | torch.device = "cpu") -> tuple[SegModel, dict]:
    """A trained model from ``model.pt`` plus its checkpoint metadata; never downloads anything.

    The saved config may say ``encoder_weights: imagenet``: the network is still built with
    ``encoder_weights=None`` and then receives the checkpoint's own weights.
    """
    from pipeline.config.schema import ModelConfig
    from pipeline.model import checkpoint

    payload = checkpoint.load(Path(path))
    if "state_dict" not in payload:
        raise PipelineError(f"{path}: holds no model weights (use a fold's model.pt)")
    model_cfg = ModelConfig.model_validate(payload["config"]["model"])
    net = _smp_network(
        model_cfg.arch,
        model_cfg.encoder,
        output_channels(len(payload["classes"])),
        dict(model_cfg.kwargs),
    )
    # The normalisation the weights were trained with travels in the checkpoint
    # (older ones: ImageNet).
    model = SegModel(net, Normalization.from_dict(payload.get("normalization")))
    model.load_state_dict(payload["state_dict"])
    return model.to(device).eval(), payload
