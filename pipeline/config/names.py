"""Registry names, declared once: the config schema validates against them when a config loads
(a typo is an error listing these), and each registry is built from (or checked against) them.

The registries themselves live with their code: ``ARCHS`` (``pipeline.model.networks``),
``LOSSES`` / ``MULTICLASS_LOSSES`` (``pipeline.model.losses``), ``AUGMENTS``
(``pipeline.model.augment``), ``FORMATS`` (``pipeline.output.formats``), ``TTA``
(``pipeline.predict.tta``).
"""
from __future__ import annotations

# segmentation-models-pytorch architectures (those missing from the installed smp fail when built)
ARCHS = ("Unet", "UnetPlusPlus", "FPN", "DeepLabV3", "DeepLabV3Plus", "Linknet", "PSPNet", "PAN", "MAnet",
         "UPerNet", "Segformer")
BINARY_LOSSES = ("bce", "dice", "bce_dice", "bce_logdice", "border_bce_dice", "lovasz")
MULTICLASS_LOSSES = ("ce", "dice", "focal", "ce_dice")
LOSSES = tuple(dict.fromkeys(BINARY_LOSSES + MULTICLASS_LOSSES))
AUGMENT_PRESETS = ("none", "carvana", "light", "driving")
FORMATS = ("carvana", "severstal", "png-index", "png-colour", "cityscapes")
TTA_MODES = ("none", "hflip", "flip", "d4")
