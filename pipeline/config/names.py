"""Registry names, declared once: the config schema validates against them when a config loads
(a typo is an error listing these), and each registry is built from (or checked against) them.

The registries themselves live with their code: ``ARCHS`` (``pipeline.model.networks``),
``LOSSES`` / ``MULTICLASS_LOSSES`` (``pipeline.model.losses``), ``AUGMENTS``
(``pipeline.model.augment``), ``FORMATS`` (``pipeline.output.formats``), ``TTA``
(``pipeline.predict.tta``).
"""

from __future__ import annotations

import functools
import inspect

# segmentation-models-pytorch architectures (those missing from the installed smp fail when built)
ARCHS = (
    "Unet",
    "UnetPlusPlus",
    "FPN",
    "DeepLabV3",
    "DeepLabV3Plus",
    "Linknet",
    "PSPNet",
    "PAN",
    "MAnet",
    "UPerNet",
    "Segformer",
)
# what the pipeline decides for every architecture itself, and why:
# not settable through model.kwargs
ARCH_FIXED_ARGS = {
    "encoder_name": "set model.encoder instead",
    "encoder_weights": "set model.encoder_weights instead",
    "classes": "the dataset's classes decide it",
    "in_channels": "images are read as 3-channel RGB",
    "activation": "the losses and the stores expect raw logits",
    "aux_params": "the pipeline trains and predicts masks only (no classification head)",
}
BINARY_LOSSES = ("bce", "dice", "bce_dice", "bce_logdice", "border_bce_dice", "lovasz")
MULTICLASS_LOSSES = ("ce", "dice", "focal", "ce_dice")
LOSSES = tuple(dict.fromkeys(BINARY_LOSSES + MULTICLASS_LOSSES))
AUGMENT_PRESETS = ("none", "carvana", "light", "driving")
FORMATS = ("carvana", "severstal", "png-index", "png-colour", "cityscapes")
TTA_MODES = ("none", "hflip", "flip", "d4")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # pipeline.model.precision
FULL = "full"  # the full-data refit's key beside fold numbers (pipeline train --fold full)


@functools.cache
def arch_kwargs(arch: str) -> tuple[str, ...] | None:
    """The named arguments of an smp architecture that ``model.kwargs`` may set
    (``inspect.signature`` of its class; nothing is built or downloaded). smp passes unknown ones on
    to the encoder, which drops them silently, so anything else is refused. None when the installed
    smp lacks ``arch`` (building it says so). Imports smp on the first call only,
    so configs without ``model.kwargs`` load without it."""
    import segmentation_models_pytorch as smp

    cls = getattr(smp, arch, None)
    if cls is None:
        return None
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return tuple(
        p.name
        for p in inspect.signature(cls).parameters.values()
        if p.kind in named and p.name not in ARCH_FIXED_ARGS
    )
