"""Mask image outputs: class-index PNGs,
colour PNGs (dataset palette) and Cityscapes labelId PNGs."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from pipeline.errors import PipelineError

PNG_KINDS = ("png-index", "png-colour", "cityscapes")


def default_palette(classes: int) -> np.ndarray:
    """Distinct colours (tab20 first, then a deterministic spread) for datasets without one."""
    import matplotlib

    tab = (np.array(matplotlib.colormaps["tab20"].colors) * 255).round().astype(np.uint8)
    rng = np.random.default_rng(0)
    extra = rng.integers(0, 256, (max(0, classes - len(tab)), 3), dtype=np.uint8)
    return np.concatenate([tab, extra])[:classes]


def output_lut(dataset, kind: str) -> np.ndarray:
    """Class id -> output value: (256,) ids for index/labelId PNGs,
    (C, 3) colours for colour PNGs."""
    if kind == "png-index":
        return np.arange(256, dtype=np.uint8)
    if kind == "cityscapes":
        id_map = getattr(dataset, "id_map", None)
        if id_map is None:
            raise PipelineError("format 'cityscapes' needs a Cityscapes dataset (its labelId map)")
        return id_map.inverse()
    if kind == "png-colour":
        palette = getattr(dataset, "palette", None)
        if palette is not None and getattr(dataset, "palette_classes", None) is not None:
            colours = np.zeros((dataset.num_classes, 3), np.uint8)
            for index, cls in enumerate(dataset.palette_classes):
                if cls < dataset.num_classes and not colours[cls].any():
                    colours[cls] = palette.colors[index]
            return colours
        return default_palette(dataset.num_classes)
    raise PipelineError(f"mask output '{kind}' is unknown; choose one of {list(PNG_KINDS)}")


def mask_png(label: np.ndarray, kind: str, lut: np.ndarray) -> bytes:
    """PNG bytes of a (h, w) class-id mask in the output ``kind``."""
    image = (
        Image.fromarray(lut[label])
        if kind == "png-colour"
        else Image.fromarray(lut[label], mode="L")
    )
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()
