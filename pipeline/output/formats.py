"""Submission formats (``FORMATS``), row building and validation.

A format fixes the CSV header, how a row id is made from an image id (and class), the RLE pixel
order and the token for an empty mask. Validation checks a submission's rows against the ids
expected in order and the image sizes, and reports every violation with its row number.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from pipeline.config import names
from pipeline.errors import PipelineError
from pipeline.ops.rle import check_runs, parse_rle, rle_decode, rle_encode


@dataclass(frozen=True)
class SubmissionFormat:
    name: str
    header: tuple[str, str]
    id_template: str  # {image_id}, and {class_id} for per-class formats
    order: str  # "C" row-major, "F" column-major
    empty: str  # token for an empty mask
    per_class: bool  # one row per (image, foreground class)
    default_size: tuple[int, int] | None = None  # (H, W) when no dataset is at hand
    kind: str = "csv"  # "csv", or a mask-image output of pipeline.output.masks (a folder of PNGs)

    def row_ids(self, image_id: str, classes: int) -> list[str]:
        """Row ids of one image: one row, or one per foreground class 1..classes-1."""
        if not self.per_class:
            return [self.id_template.format(image_id=image_id)]
        return [self.id_template.format(image_id=image_id, class_id=c) for c in range(1, classes)]


FORMATS: dict[str, SubmissionFormat] = {
    # Kaggle Carvana: img,rle_mask; "<id>.jpg"; row-major
    # (verified against the official train_masks.csv).
    "carvana": SubmissionFormat(
        "carvana", ("img", "rle_mask"), "{image_id}.jpg", "C", "", False, (1280, 1918)
    ),
    # Severstal-style multi-class: ImageId_ClassId,EncodedPixels; column-major; one row per class.
    "severstal": SubmissionFormat(
        "severstal",
        ("ImageId_ClassId", "EncodedPixels"),
        "{image_id}.jpg_{class_id}",
        "F",
        "",
        True,
    ),
    # Mask images in a folder submissions/<name>/<image_id>.png: class ids, colours,
    # Cityscapes labelIds.
    "png-index": SubmissionFormat(
        "png-index", ("", ""), "{image_id}.png", "C", "", False, kind="png-index"
    ),
    "png-colour": SubmissionFormat(
        "png-colour", ("", ""), "{image_id}.png", "C", "", False, kind="png-colour"
    ),
    "cityscapes": SubmissionFormat(
        "cityscapes", ("", ""), "{image_id}_gtFine_labelIds.png", "C", "", False, kind="cityscapes"
    ),
}


assert tuple(FORMATS) == names.FORMATS


def get_format(name: str) -> SubmissionFormat:
    if name not in FORMATS:
        raise PipelineError(
            f"submission format '{name}' is unknown; choose one of {sorted(FORMATS)}"
        )
    return FORMATS[name]


def encode_rows(
    fmt: SubmissionFormat, image_id: str, masks: list[np.ndarray]
) -> list[tuple[str, str]]:
    """Rows for one image from its binary masks (one mask, or one per foreground class)."""
    ids = fmt.row_ids(image_id, len(masks) + 1) if fmt.per_class else fmt.row_ids(image_id, 2)
    if len(ids) != len(masks):
        raise ValueError(f"{fmt.name}: {len(ids)} rows per image but {len(masks)} masks")
    return [
        (row_id, rle_encode(mask, fmt.order) or fmt.empty)
        for row_id, mask in zip(ids, masks, strict=True)
    ]


def validate_rows(
    rows: Iterable[tuple[int, list[str]]],
    fmt: SubmissionFormat,
    expected: list[str],
    sizes: dict[str, tuple[int, int]],
    spot_check: int = 20,
    limit: int = 50,
) -> list[str]:
    """Violations (one message each, with the CSV line number) of ``rows`` = (line, fields).

    Checks: exactly two fields; every expected id once, in order; RLE well-formed (integers,
    sorted, non-overlapping, positive lengths, inside H*W); decode->encode round trip on the
    first ``spot_check`` non-empty rows.
    """
    problems: list[str] = []
    seen: dict[str, int] = {}
    position, checked = 0, 0
    for line, fields in rows:
        if len(problems) >= limit:
            problems.append(f"... stopped after {limit} problems")
            return problems
        if len(fields) != 2:
            problems.append(f"line {line}: expected 2 fields, got {len(fields)}")
            continue
        row_id, rle = fields
        if row_id in seen:
            problems.append(f"line {line}: id '{row_id}' repeats line {seen[row_id]}")
            continue
        seen[row_id] = line
        if position < len(expected) and row_id != expected[position]:
            problems.append(
                f"line {line}: id '{row_id}' out of order or unknown; "
                f"expected '{expected[position]}'"
            )
        position += 1
        size = sizes.get(row_id)
        if size is None:
            continue
        problem = _check_rle(rle, fmt, size)
        if problem:
            problems.append(f"line {line}: id '{row_id}': {problem}")
        elif rle != fmt.empty and checked < spot_check:
            checked += 1
            again = rle_encode(rle_decode(rle, size, fmt.order), fmt.order)
            if again != rle:
                problems.append(
                    f"line {line}: id '{row_id}': RLE is not canonical "
                    f"(decode+encode gives '{again[:40]}')"
                )
    missing = [i for i in expected if i not in seen]
    if missing:
        problems.append(f"{len(missing)} expected ids are missing, first '{missing[0]}'")
    return problems


def _check_rle(rle: str, fmt: SubmissionFormat, size: tuple[int, int]) -> str | None:
    if rle == fmt.empty or not rle.strip():
        return None
    try:
        starts, lengths = parse_rle(rle)
    except ValueError as err:
        return str(err)
    return check_runs(starts, lengths, size[0] * size[1])
