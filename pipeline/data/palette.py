"""Colour <-> class-id palettes and label maps (id or colour -> project class).

``Palette`` decodes RGB masks exactly: a pixel whose colour is not in the palette is an error
naming the file, the colour and its pixel count, unless ``snap`` maps it to the nearest palette
colour (and reports how many pixels changed). Anti-aliased edges from paint tools are the usual
cause of such pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.errors import PipelineError

COMMA10K_COLORS = {  # comma10k README: class ids 1..5 (+ the driver-camera class); ours are 0-based
    "road": (0x40, 0x20, 0x20),
    "lane_markings": (0xFF, 0x00, 0x00),
    "undrivable": (0x80, 0x80, 0x60),
    "movable": (0x00, 0xFF, 0x66),
    "my_car": (0xCC, 0x00, 0xFF),
    "movable_in_my_car": (0x00, 0xCC, 0xFF),
}


def parse_color(text: str) -> tuple[int, int, int]:
    """'#rrggbb', 'rrggbb' or 'r g b' / 'r,g,b' -> (r, g, b)."""
    value = text.strip()
    try:
        if value.startswith("#") or (
            len(value) == 6 and all(c in "0123456789abcdefABCDEF" for c in value)
        ):
            value = value.lstrip("#")
            return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)
        parts = [int(p) for p in value.replace(",", " ").split()]
    except ValueError:
        raise PipelineError(f"colour {text!r}: expected '#rrggbb' or 'r g b'") from None
    if len(parts) != 3 or not all(0 <= p <= 255 for p in parts):
        raise PipelineError(f"colour {text!r}: expected three values 0..255")
    return parts[0], parts[1], parts[2]


def _keys(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.uint32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def hex_color(key: int) -> str:
    return f"#{key:06x}"


@dataclass
class Palette:
    """Ordered colours; colour i is class id i."""

    colors: list[tuple[int, int, int]]

    def __post_init__(self):
        keys = _keys(np.array(self.colors, np.uint32).reshape(-1, 3))
        if len(set(keys.tolist())) != len(keys):
            raise PipelineError("palette has a repeated colour")
        self.order = np.argsort(keys)
        self.sorted_keys = keys[self.order]

    def encode(self, mask: np.ndarray) -> np.ndarray:
        """(H, W) class ids -> (H, W, 3) uint8 RGB. Ids outside the palette are an error."""
        if mask.size and int(mask.max()) >= len(self.colors):
            raise ValueError(
                f"class id {int(mask.max())} has no colour (palette has {len(self.colors)})"
            )
        return np.array(self.colors, np.uint8)[mask]

    def decode(
        self, rgb: np.ndarray, source: str = "mask", snap: bool = False
    ) -> tuple[np.ndarray, int]:
        """(H, W, 3) RGB -> ((H, W) uint8 class ids, pixels snapped). Unknown colours: error,
        or snapped."""
        keys = _keys(rgb[..., :3])
        pos = np.clip(np.searchsorted(self.sorted_keys, keys), 0, len(self.sorted_keys) - 1)
        known = self.sorted_keys[pos] == keys
        ids = self.order[pos].astype(np.uint8)
        unknown = int(np.count_nonzero(~known))
        if unknown == 0:
            return ids, 0
        if not snap:
            values, counts = np.unique(keys[~known], return_counts=True)
            top = np.argsort(-counts)[:3]
            listed = ", ".join(f"{hex_color(int(values[i]))} ({int(counts[i])} px)" for i in top)
            raise PipelineError(
                f"{source}: {unknown} pixels have colours outside the palette: {listed}"
                f"{' ...' if len(values) > 3 else ''}; fix the mask or set snap_to_palette: true"
            )
        ids[~known] = self.nearest(rgb[..., :3][~known])
        return ids, unknown

    def nearest(self, rgb: np.ndarray) -> np.ndarray:
        """Class id of the nearest palette colour (Euclidean in RGB) for (N, 3) colours."""
        colors = np.array(self.colors, np.int32)
        dist = ((rgb.astype(np.int32)[:, None, :] - colors[None]) ** 2).sum(-1)
        return np.argmin(dist, axis=1).astype(np.uint8)


COMMA10K_PALETTE = Palette(list(COMMA10K_COLORS.values()))
