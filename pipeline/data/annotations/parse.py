"""Polygon / RLE annotations (COCO, VGG Image Annotator) -> class-index masks. Pure: writes no file.

Each converter first parses and validates the whole annotation file (every error is raised before
the first mask comes out), then renders one ``(H, W)`` uint8 class-index mask per image on demand:

- polygons are filled by pixel centres (``ops.polygon``: even-odd, exact; COCO and VIA use pixel
  units with x right, y down); several polygons of one annotation are united (as pycocotools'
  ``merge``). This can differ from pycocotools' own rasteriser by a pixel along edges;
- COCO RLE (uncompressed list or compressed string) is validated, then decoded by pycocotools
  (``coco_rle``);
- annotations are painted **largest first**, so a smaller object lying on a larger one stays on top
  (a person in front of a bus); equal areas keep file order (the later one on top). Area is the
  rendered pixel count, not COCO's ``area`` field, which exporters often get wrong;
- unannotated pixels, and images without annotations, are 0 (the background class by convention).

Malformed input is a ``PipelineError`` naming the file, the annotation (COCO annotation id / VIA
region index and image file name) and the fix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from pipeline.data.annotations.category_map import LabelMap, load_label_map
from pipeline.data.annotations.coco_rle import (
    coco_rle,
    coco_rle_decode,
    coco_rle_encode,
    coco_rle_mask,
)
from pipeline.errors import PipelineError
from pipeline.ops.polygon import check_polygon, polygon_area, rasterize_polygon

__all__ = [
    "ImageShapes",
    "LabelMap",
    "Shape",
    "coco_rle_decode",
    "coco_rle_encode",
    "coco_to_masks",
    "load_label_map",
    "paint",
    "parse_coco",
    "parse_via",
    "rasterize_polygon",
    "via_to_masks",
]

ImageSizes = Callable[[str], tuple[int, int]]  # image file name -> (H, W)
MaskItem = tuple[
    str, int, int, np.ndarray
]  # (image file name, H, W, (H, W) uint8 class-index mask)


@dataclass(frozen=True)
class Shape:
    """One validated annotation: ``value`` painted over polygons (each ``(N, 2)`` x, y)
    or a COCO RLE.

    ``rle`` is the validated, compressed form ``coco_rle`` returns (its size is the image's).
    """

    value: int
    polygons: tuple[np.ndarray, ...] = ()
    rle: Optional[dict] = None

    def render(self, height: int, width: int) -> np.ndarray:
        """``(H, W)`` uint8 {0,1} coverage."""
        if self.rle is not None:
            return coco_rle_mask(self.rle)
        mask = np.zeros((height, width), np.uint8)
        for points in self.polygons:
            mask |= rasterize_polygon(points, height, width)
        return mask


@dataclass(frozen=True)
class ImageShapes:
    """An image's validated annotations; ``mask()`` renders them (``paint``)."""

    file_name: str
    height: int
    width: int
    shapes: tuple[Shape, ...]

    def mask(self) -> np.ndarray:
        return paint(self.shapes, self.height, self.width)


def paint(shapes: tuple[Shape, ...], height: int, width: int) -> np.ndarray:
    """``(H, W)`` uint8 class-index mask: 0 where nothing is drawn, shapes painted largest first."""
    rendered = []
    for order, shape in enumerate(shapes):
        cover = shape.render(height, width)
        rows, cols = np.flatnonzero(cover.any(axis=1)), np.flatnonzero(cover.any(axis=0))
        if rows.size:  # keep only the bounding box: memory grows with object size, not image count
            crop = cover[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].astype(bool)
            rendered.append(
                (-int(crop.sum()), order, int(rows[0]), int(cols[0]), crop, shape.value)
            )
    mask = np.zeros((height, width), np.uint8)
    for _, _, y, x, crop, value in sorted(rendered, key=lambda item: item[:2]):
        mask[y : y + crop.shape[0], x : x + crop.shape[1]][crop] = value
    return mask


def _fail(where: str, problem: str, fix: str) -> PipelineError:
    return PipelineError(f"{where}: {problem}; {fix}")


def _polygon(points: Any, where: str, label: str) -> np.ndarray:
    """Validated ``(N, 2)`` polygon; a degenerate (zero-area) one is an error too."""
    try:
        pts = check_polygon(points)
    except ValueError as err:
        raise _fail(
            where, f"{label}: {err}", "fix the coordinates or delete the annotation"
        ) from None
    if polygon_area(pts) == 0:
        raise _fail(
            where, f"{label} has zero area (all points on a line)", "fix or delete the annotation"
        )
    return pts


# ---- COCO ---------------------------------------------------------------------------------------


def _coco_list(coco: dict, key: str, file: str) -> list:
    value = coco.get(key, [] if key == "annotations" else None)
    if not isinstance(value, list):
        raise PipelineError(
            f"{file}: COCO key '{key}' is missing or not a list; is this a COCO instances file?"
        )
    return value


def _coco_images(coco: dict, file: str) -> dict[Any, tuple[str, int, int]]:
    images: dict[Any, tuple[str, int, int]] = {}
    names: set[str] = set()
    for index, img in enumerate(_coco_list(coco, "images", file)):
        where = f"{file}: images[{index}]"
        if not isinstance(img, dict) or not {"id", "file_name", "height", "width"} <= img.keys():
            raise _fail(where, "needs id, file_name, height and width", "fix the COCO file")
        name, h, w = img["file_name"], img["height"], img["width"]
        if not (isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0):
            raise _fail(
                where,
                f"'{name}' has size {w}x{h} (WxH)",
                "height and width must be positive integers",
            )
        if img["id"] in images or name in names:
            raise _fail(
                where,
                f"image id {img['id']} / file '{name}' appears twice",
                "keep one entry per image",
            )
        images[img["id"]] = (name, h, w)
        names.add(name)
    return images


def _coco_categories(coco: dict, file: str) -> dict[Any, str]:
    cats = _coco_list(coco, "categories", file)
    if not all(isinstance(c, dict) and "id" in c and "name" in c for c in cats):
        raise PipelineError(
            f"{file}: every COCO category needs an 'id' and a 'name'; fix 'categories'"
        )
    return {c["id"]: str(c["name"]) for c in cats}


def _coco_segmentation(seg: Any, h: int, w: int, where: str) -> dict:
    """``Shape`` keyword arguments for a polygon list or an (un)compressed RLE object."""
    if isinstance(seg, dict):
        try:
            return {"rle": coco_rle(seg, h, w)}
        except ValueError as err:
            raise _fail(
                where, f"RLE segmentation: {err}", "re-export the mask or delete the annotation"
            ) from None
    if not isinstance(seg, list) or not seg or not all(isinstance(p, list) for p in seg):
        raise _fail(
            where,
            "segmentation is empty or not a list of polygons [[x1, y1, x2, y2, ...], ...] or RLE",
            "fix or delete the annotation",
        )
    polygons = []
    for k, flat in enumerate(seg):
        if len(flat) % 2:
            raise _fail(
                where,
                f"polygon {k} has an odd number of coordinates ({len(flat)})",
                "COCO polygons are flat [x1, y1, x2, y2, ...] lists: fix or delete it",
            )
        polygons.append(
            _polygon(np.asarray(flat, dtype=object).reshape(-1, 2), where, f"polygon {k}")
        )
    return {"polygons": tuple(polygons)}


def parse_coco(
    coco: dict,
    source_name: str,
    label_map: LabelMap,
    file: str = "<coco>",
    crowd_value: Optional[int] = None,
) -> list[ImageShapes]:
    """Validate a COCO instances dict into per-image shapes, in the order of ``coco["images"]``.

    Args:
        coco: parsed JSON with ``images`` (id, file_name, height, width), ``categories`` (id, name)
            and ``annotations`` (id, image_id, category_id, segmentation, optional iscrowd).
        source_name: the ``source`` the label map matches this file's categories under.
        label_map: control sheet resolving categories to class indices.
        file: the JSON path, for error messages.
        crowd_value: None paints ``iscrowd`` annotations with their category's class like any other;
            an int paints them with this value instead (e.g. the dataset's ``ignore_index``, 255).
    """
    if not isinstance(coco, dict):
        raise PipelineError(
            f"{file}: expected a COCO JSON object with 'images', 'annotations', 'categories'"
        )
    images, categories = _coco_images(coco, file), _coco_categories(coco, file)
    shapes: dict[Any, list[Shape]] = {image_id: [] for image_id in images}
    if crowd_value is not None and not 0 <= crowd_value <= 255:
        raise PipelineError(
            f"crowd value {crowd_value} does not fit a uint8 mask; use 0..255 (e.g. 255 = ignore)"
        )
    for index, ann in enumerate(_coco_list(coco, "annotations", file)):
        ann_id = ann.get("id", f"#{index}") if isinstance(ann, dict) else f"#{index}"
        where = f"{file}: annotation id {ann_id}"
        if not isinstance(ann, dict) or ann.get("image_id") not in images:
            raise _fail(
                where, "has no image_id listed in 'images'", "fix its image_id or add the image"
            )
        name, h, w = images[ann["image_id"]]
        where += f" (image '{name}')"
        if ann.get("category_id") not in categories:
            raise _fail(
                where,
                f"category_id {ann.get('category_id')} is not in 'categories'",
                "fix the COCO file",
            )
        value = label_map.lookup(
            source_name, ann["category_id"], categories[ann["category_id"]], where
        )
        if ann.get("iscrowd") and crowd_value is not None:
            value = crowd_value
        shapes[ann["image_id"]].append(
            Shape(value, **_coco_segmentation(ann.get("segmentation"), h, w, where))
        )
    return [
        ImageShapes(name, h, w, tuple(shapes[image_id]))
        for image_id, (name, h, w) in images.items()
    ]


def coco_to_masks(
    coco: dict,
    source_name: str,
    label_map: LabelMap,
    file: str = "<coco>",
    crowd_value: Optional[int] = None,
) -> Iterator[MaskItem]:
    """Yield ``(file_name, H, W, mask)`` per COCO image (``mask``: (H, W) uint8 class indices).

    The whole file is validated before the first item (see ``parse_coco`` for the arguments).
    """
    for image in parse_coco(coco, source_name, label_map, file, crowd_value):
        yield image.file_name, image.height, image.width, image.mask()


# ---- VGG Image Annotator ------------------------------------------------------------------------


def _via_entries(via: dict, file: str) -> list[dict]:
    """Image entries of a VIA 2 project (``_via_img_metadata``) or a plain VIA 1/2 JSON export."""
    meta = via.get("_via_img_metadata", via) if isinstance(via, dict) else None
    if not isinstance(meta, dict) or not all(
        isinstance(e, dict) and "filename" in e for e in meta.values()
    ):
        raise PipelineError(
            f"{file}: not a VIA file; expected a project with '_via_img_metadata' or an export "
            "{key: {filename, regions}} (Annotation > Export annotations (as json))"
        )
    return list(meta.values())


def _via_regions(entry: dict, where: str) -> list[tuple[str, dict]]:
    regions = entry.get("regions") or []
    if isinstance(regions, dict):  # VIA 1 exports: {"0": region, "1": ...}; JSON keeps their order
        return [(str(k), r) for k, r in regions.items()]
    if not isinstance(regions, list):
        raise _fail(
            where, "'regions' is neither a list nor an object", "re-export the annotations from VIA"
        )
    return [(str(i), r) for i, r in enumerate(regions)]


def _via_points(shape: dict, where: str) -> np.ndarray:
    kind = shape.get("name")
    if kind == "polygon":
        xs, ys = shape.get("all_points_x"), shape.get("all_points_y")
        if not isinstance(xs, list) or not isinstance(ys, list) or len(xs) != len(ys):
            raise _fail(
                where,
                "polygon needs all_points_x and all_points_y lists of equal length",
                "fix or delete the region",
            )
        return _polygon(np.array([xs, ys], dtype=object).T, where, "polygon")
    if kind == "rect":
        try:
            x, y, w, h = (float(shape[k]) for k in ("x", "y", "width", "height"))
        except (KeyError, TypeError, ValueError):
            raise _fail(
                where, "rect needs numeric x, y, width, height", "fix or delete the region"
            ) from None
        return _polygon([(x, y), (x + w, y), (x + w, y + h), (x, y + h)], where, "rect")
    raise _fail(
        where,
        f"shape '{kind}' is not supported (polygon, rect)",
        "redraw it as a polygon in VIA or delete the region",
    )


def _via_class(region: dict, attribute: str, where: str) -> str:
    attrs = region.get("region_attributes") or {}
    value = attrs.get(attribute)
    if isinstance(value, dict):  # checkbox attribute: {"option": true, ...}
        chosen = [k for k, v in value.items() if v]
        value = chosen[0] if len(chosen) == 1 else None
    if not isinstance(value, str) or not value.strip():
        raise _fail(
            where,
            f"region attribute '{attribute}' is missing or not one value (attributes: "
            f"{sorted(attrs)})",
            "set it in VIA, or name the attribute that holds the class (--attribute)",
        )
    return value.strip()


def parse_via(
    via: dict,
    source_name: str,
    label_map: LabelMap,
    image_sizes: ImageSizes,
    attribute: str = "class",
    file: str = "<via>",
) -> list[ImageShapes]:
    """Validate a VIA JSON dict into per-image shapes, in file order.

    Args:
        via: a VIA 2 project (``{"_via_img_metadata": {...}, ...}``) or a plain export
            (``{"<key>": {"filename": ..., "regions": [...] or {...}}}``). Regions are
            ``polygon`` (all_points_x/y) or ``rect`` (x, y, width, height) shapes in pixel units.
        source_name: the ``source`` the label map matches the class names under.
        label_map: control sheet; VIA has no category ids, so rows match by ``source_name``.
        image_sizes: file name -> ``(H, W)``: VIA stores no image size, so the caller reads headers.
        attribute: the region attribute holding the class name (a text/dropdown/radio value, or a
            checkbox with exactly one option ticked).
        file: the JSON path, for error messages.
    """
    images, seen = [], set()
    for entry in _via_entries(via, file):
        name = entry["filename"]
        if not isinstance(name, str) or not name or name in seen:
            raise PipelineError(
                f"{file}: image file name {name!r} is empty or listed twice; "
                "keep one entry per image"
            )
        seen.add(name)
        shapes = []
        for index, region in _via_regions(entry, f"{file}: image '{name}'"):
            where = f"{file}: region {index} of '{name}'"
            if not isinstance(region, dict):
                raise _fail(where, "is not an object", "re-export the annotations from VIA")
            points = _via_points(region.get("shape_attributes") or {}, where)
            value = label_map.lookup(source_name, None, _via_class(region, attribute, where), where)
            shapes.append(Shape(value, polygons=(points,)))
        height, width = image_sizes(name)
        images.append(ImageShapes(name, height, width, tuple(shapes)))
    return images


def via_to_masks(
    via: dict,
    source_name: str,
    label_map: LabelMap,
    image_sizes: ImageSizes,
    attribute: str = "class",
    file: str = "<via>",
) -> Iterator[MaskItem]:
    """Yield ``(file_name, H, W, mask)`` per VIA image (``mask``: (H, W) uint8 class indices).

    The whole file is validated before the first item (see ``parse_via`` for the arguments).
    """
    for image in parse_via(via, source_name, label_map, image_sizes, attribute, file):
        yield image.file_name, image.height, image.width, image.mask()
