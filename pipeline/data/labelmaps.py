"""Label maps: dataset label ids or colours -> project class ids.

Built in: Cityscapes ``labelIds`` -> the 8 categories, or -> the 19 ``trainIds`` (ignore = 255),
from the official table (cityscapesScripts ``helpers/labels.py``). Generic: a CSV with columns
``source,class`` where ``source`` is a label id (0..255) or a colour (``#rrggbb`` / ``r g b``) and
``class`` a project class name or ``ignore``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.data.palette import Palette, parse_color
from pipeline.errors import PipelineError

UNMAPPED = 254  # LUT sentinel: a label value the map does not know

# (name, labelId, trainId, category) — cityscapesScripts helpers/labels.py
CITYSCAPES_LABELS = [
    ("unlabeled", 0, 255, "void"),
    ("ego vehicle", 1, 255, "void"),
    ("rectification border", 2, 255, "void"),
    ("out of roi", 3, 255, "void"),
    ("static", 4, 255, "void"),
    ("dynamic", 5, 255, "void"),
    ("ground", 6, 255, "void"),
    ("road", 7, 0, "flat"),
    ("sidewalk", 8, 1, "flat"),
    ("parking", 9, 255, "flat"),
    ("rail track", 10, 255, "flat"),
    ("building", 11, 2, "construction"),
    ("wall", 12, 3, "construction"),
    ("fence", 13, 4, "construction"),
    ("guard rail", 14, 255, "construction"),
    ("bridge", 15, 255, "construction"),
    ("tunnel", 16, 255, "construction"),
    ("pole", 17, 5, "object"),
    ("polegroup", 18, 255, "object"),
    ("traffic light", 19, 6, "object"),
    ("traffic sign", 20, 7, "object"),
    ("vegetation", 21, 8, "nature"),
    ("terrain", 22, 9, "nature"),
    ("sky", 23, 10, "sky"),
    ("person", 24, 11, "human"),
    ("rider", 25, 12, "human"),
    ("car", 26, 13, "vehicle"),
    ("truck", 27, 14, "vehicle"),
    ("bus", 28, 15, "vehicle"),
    ("caravan", 29, 255, "vehicle"),
    ("trailer", 30, 255, "vehicle"),
    ("train", 31, 16, "vehicle"),
    ("motorcycle", 32, 17, "vehicle"),
    ("bicycle", 33, 18, "vehicle"),
]
CITYSCAPES_CATEGORIES = [
    "void",
    "flat",
    "construction",
    "object",
    "nature",
    "sky",
    "human",
    "vehicle",
]
CITYSCAPES_TRAIN_CLASSES = [
    name
    for name, _, train_id, _ in sorted(CITYSCAPES_LABELS, key=lambda r: r[2])
    if train_id != 255
]


@dataclass
class IdMap:
    """A 256-entry lookup table from raw label values to class ids (``UNMAPPED`` = unknown)."""

    lut: np.ndarray
    classes: list[str]
    ignore_index: int | None = None

    def apply(self, raw: np.ndarray, source: str) -> np.ndarray:
        out = self.lut[raw]
        if (out == UNMAPPED).any():
            bad, counts = np.unique(raw[out == UNMAPPED], return_counts=True)
            listed = ", ".join(
                f"{int(v)} ({int(c)} px)" for v, c in zip(bad[:5], counts[:5], strict=True)
            )
            raise PipelineError(
                f"{source}: label values {listed} are not in the label map; add them to the map"
            )
        return out

    def inverse(self) -> np.ndarray:
        """Class id -> the smallest raw value mapping to it (to write dataset-native PNGs)."""
        inv = np.zeros(256, np.uint8)
        for raw in range(255, -1, -1):
            if self.lut[raw] < len(self.classes):
                inv[self.lut[raw]] = raw
        return inv


def cityscapes_map(kind: str) -> IdMap:
    """``categories``: 8 classes (void included); ``trainids``: 19 classes,
    everything else ignored (255)."""
    lut = np.full(256, UNMAPPED, np.uint8)
    if kind == "categories":
        for _, label_id, _, category in CITYSCAPES_LABELS:
            lut[label_id] = CITYSCAPES_CATEGORIES.index(category)
        return IdMap(lut, list(CITYSCAPES_CATEGORIES))
    if kind == "trainids":
        for _, label_id, train_id, _ in CITYSCAPES_LABELS:
            lut[label_id] = train_id
        return IdMap(lut, list(CITYSCAPES_TRAIN_CLASSES), 255)
    raise PipelineError(
        f"cityscapes label map '{kind}' is unknown; use categories, trainids or a CSV path"
    )


def read_label_map_csv(path: Path) -> list[tuple[str, str]]:
    if not Path(path).is_file():
        raise PipelineError(f"label map {path}: file not found")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:  # -sig: Excel's byte-order mark
            reader = csv.DictReader(fh)
            if not {"source", "class"} <= set(reader.fieldnames or []):
                raise PipelineError(
                    f"{path}: header must have columns source,class; found {reader.fieldnames}"
                )
            return [((row["source"] or "").strip(), (row["class"] or "").strip()) for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise PipelineError(
            f"label map {path}: cannot read CSV ({err}); save it as a UTF-8 CSV"
        ) from None


def _target(name: str, classes: list[str], ignore_index: int | None, where: str) -> int:
    if name == "ignore":
        if ignore_index is None:
            raise PipelineError(f"{where}: maps to 'ignore' but the dataset has no ignore_index")
        return ignore_index
    if name not in classes:
        raise PipelineError(f"{where}: class '{name}' is not one of the dataset classes {classes}")
    return classes.index(name)


def csv_id_map(path: Path, classes: list[str], ignore_index: int | None) -> IdMap:
    """A label-id map from a CSV (``source`` = integer ids)."""
    lut = np.full(256, UNMAPPED, np.uint8)
    for n, (source, name) in enumerate(read_label_map_csv(path), start=2):
        try:
            value = int(source)
        except ValueError:
            raise PipelineError(
                f"{path} line {n}: source {source!r} is not a label id 0..255"
            ) from None
        if not 0 <= value <= 255:
            raise PipelineError(f"{path} line {n}: source {value} is not a label id 0..255")
        lut[value] = _target(name, classes, ignore_index, f"{path} line {n}")
    return IdMap(lut, list(classes), ignore_index)


def csv_color_map(
    path: Path, classes: list[str], ignore_index: int | None
) -> tuple[Palette, np.ndarray]:
    """A colour map from a CSV: the palette of source colours and, per palette entry,
    its class id."""
    colors, targets = [], []
    for n, (source, name) in enumerate(read_label_map_csv(path), start=2):
        colors.append(parse_color(source))
        targets.append(_target(name, classes, ignore_index, f"{path} line {n}"))
    return Palette(colors), np.array(targets, np.uint8)
