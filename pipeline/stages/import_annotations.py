"""Stage: polygon/RLE annotations (COCO or VIA JSON) -> a ``folder``-layout dataset.

Writes ``<out>/images/<file name>`` (byte copies: never re-encoded), ``<out>/masks/<stem>.png``
(``L``-mode class-index PNGs, value = index in ``classes``) and ``<out>/import.json`` (what was
imported, with the dataset config section that reads the result). Every check (annotations, label
map, image files and sizes, clashing names) runs before the first file is written; each file is
written atomically, so re-running after a failure simply overwrites.
"""

from __future__ import annotations

import io
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

from pipeline.data import imageio
from pipeline.data.annotations.category_map import LabelMap, load_label_map
from pipeline.data.annotations.parse import ImageShapes, parse_coco, parse_via
from pipeline.errors import PipelineError
from pipeline.fsio import atomic_open, atomic_write_bytes, atomic_write_text

FORMATS = ("coco", "via")


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise PipelineError(f"{path}: annotation file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as err:  # ValueError: bad JSON and bad UTF-8 alike
        raise PipelineError(f"{path}: not valid JSON ({err}); re-export the annotations") from None
    if not isinstance(data, dict):
        raise PipelineError(
            f"{path}: expected a JSON object (COCO or VIA export), found {type(data).__name__}"
        )
    return data


def _image_path(images_dir: Path, name: str, source: Path) -> Path:
    path = images_dir / name
    if not path.is_file():
        raise PipelineError(
            f"{source}: annotations refer to image '{name}' but {path} does not exist; "
            "fix --images or the file name in the annotations"
        )
    return path


def _parse(
    fmt: str,
    data: dict,
    source: Path,
    images_dir: Path,
    label_map: LabelMap,
    source_name: str,
    attribute: str,
    crowd_value: Optional[int],
) -> list[ImageShapes]:
    if fmt == "coco":
        images = parse_coco(data, source_name, label_map, str(source), crowd_value)
        for image in images:  # COCO declares sizes; the files are the truth
            path = _image_path(images_dir, image.file_name, source)
            height, width = imageio.image_size(path)
            if (height, width) != (image.height, image.width):
                raise PipelineError(
                    f"{source}: image '{image.file_name}' is declared {image.width}x{image.height} "
                    f"(WxH) but {path} is {width}x{height}; fix the JSON or use the original image"
                )
        return images

    def sizes(name: str) -> tuple[int, int]:
        return imageio.image_size(_image_path(images_dir, name, source))

    return parse_via(data, source_name, label_map, sizes, attribute, str(source))


def _check_names(images: list[ImageShapes], source: Path) -> None:
    """Output files are named by base name / stem, so two inputs must not share one."""
    if not images:
        raise PipelineError(f"{source}: lists no images; nothing to import")
    stems: dict[str, str] = {}
    for image in images:
        stem = Path(image.file_name).stem
        if stem in stems:
            raise PipelineError(
                f"{source}: images '{stems[stem]}' and '{image.file_name}' would both give "
                f"masks/{stem}.png; rename one of them"
            )
        stems[stem] = image.file_name


def _png(mask: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(mask).save(buf, format="PNG")  # 2-D uint8 -> mode L, values are class indices
    return buf.getvalue()


def _copy(src: Path, dst: Path) -> None:
    """Byte copy (no re-encode, so no JPEG generation loss), atomic;
    a no-op when importing in place."""
    if dst.exists() and dst.resolve() == src.resolve():
        return
    with src.open("rb") as fin, atomic_open(dst, "wb") as fout:
        shutil.copyfileobj(fin, fout)


def _dataset_section(
    out_root: Path, names: list[str], classes: list[str], crowd_value: Optional[int]
) -> dict:
    """The ``dataset:`` config section (``FolderData`` fields) that reads the imported folder."""
    suffixes = {Path(n).suffix for n in names}
    glob = f"*{suffixes.pop()}" if len(suffixes) == 1 else "*"
    name = (
        re.sub(r"[^\w-]", "_", out_root.resolve().name).lstrip("_") or "imported"
    )  # a config SafeName
    section = {
        "layout": "folder",
        "name": name,
        "root": str(out_root),
        "image_dir": "images",
        "mask_dir": "masks",
        "image_glob": glob,
        "mask_name": "{stem}.png",
        "mask_mode": "index",
        "classes": list(classes),
    }
    if crowd_value is not None and crowd_value >= len(
        classes
    ):  # crowd painted with a non-class value
        section["ignore_index"] = crowd_value
    return section


def run_import(
    source_path: str | Path,
    fmt: str,
    images_dir: str | Path,
    out_root: str | Path,
    label_map_path: str | Path,
    classes: list[str],
    attribute: str = "class",
    source_name: Optional[str] = None,
    crowd_value: Optional[int] = None,
    progress: Optional[Callable[[int], None]] = None,
) -> dict:
    """Convert an annotation file into ``<out_root>/{images,masks}`` readable by the
    ``folder`` layout.

    Args:
        source_path: the COCO instances JSON or VIA project/export JSON.
        fmt: ``"coco"`` or ``"via"``.
        images_dir: folder the annotation file names are relative to.
        out_root: dataset root to write (``images/``, ``masks/``, ``import.json``).
        label_map_path: control-sheet CSV (``pipeline.data.annotations.category_map``).
        classes: project class names, background first; mask value = index.
        attribute: VIA region attribute holding the class name.
        source_name: label-map ``source``; default: the annotation file's stem.
        crowd_value: COCO only: value for ``iscrowd`` annotations (None = their category's class).
        progress: called with 1 per written image.

    Returns:
        Summary: ``images``, ``annotations``, ``empty_images`` (no annotation), ``pixels`` (class
        name -> pixel count), ``out_root``, ``dataset`` (the config section reading the output).
    """
    if fmt not in FORMATS:
        raise PipelineError(f"annotation format '{fmt}' is unknown; choose one of {list(FORMATS)}")
    source, images_dir, out_root = Path(source_path), Path(images_dir), Path(out_root)
    source_name = source_name or source.stem
    label_map = load_label_map(label_map_path, classes)
    images = _parse(
        fmt, _read_json(source), source, images_dir, label_map, source_name, attribute, crowd_value
    )
    _check_names(images, source)
    pixels = _write(images, images_dir, out_root, progress)
    classes = label_map.classes
    names = classes + [f"value {v}" for v in range(len(classes), 256)]  # e.g. a crowd/ignore value
    summary = {
        "source": str(source),
        "format": fmt,
        "source_name": source_name,
        "label_map": str(label_map_path),
        "images": len(images),
        "annotations": sum(len(i.shapes) for i in images),
        "empty_images": sum(not i.shapes for i in images),
        "pixels": {names[v]: int(n) for v, n in enumerate(pixels) if n or v < len(classes)},
        "out_root": str(out_root),
        "dataset": _dataset_section(out_root, [i.file_name for i in images], classes, crowd_value),
    }
    atomic_write_text(out_root / "import.json", json.dumps(summary, indent=2) + "\n")
    return summary


def _write(
    images: list[ImageShapes],
    images_dir: Path,
    out_root: Path,
    progress: Optional[Callable[[int], None]],
) -> np.ndarray:
    """Copy each image and write its mask; return the pixel count of every value 0..255 (int64)."""
    pixels = np.zeros(256, np.int64)
    for image in images:
        mask = image.mask()
        pixels += np.bincount(mask.ravel(), minlength=256)
        src = images_dir / image.file_name
        _copy(src, out_root / "images" / src.name)
        atomic_write_bytes(out_root / "masks" / f"{src.stem}.png", _png(mask))
        if progress:
            progress(1)
    return pixels
