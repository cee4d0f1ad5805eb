"""The category label map ("control sheet"): annotation categories of source datasets -> class ids.

For annotation files (COCO categories, VIA attribute values; see ``data.annotations``). Pixel label
maps (label ids or colours of mask images) live in ``data.labelmaps``.

A UTF-8 CSV (an Excel BOM is fine) with the header ``source,source_id,source_name,class`` in any
column order, plus an optional free-text ``note`` column::

    source,source_id,source_name,class,note
    coco,1,person,person,
    coco,3,,vehicle,car by id
    coco,,truck,vehicle,truck by name
    via,,road,background,drop roads
    ,,,background,everything else (catch-all: keep it last)

- ``source``: the dataset the annotation file comes from (the importer's ``source_name``, by
  default the annotation file's stem); ``source_id``: the COCO category id (VIA has none);
  ``source_name``: the category name (COCO ``categories[].name``, VIA attribute value);
  ``class``: a project class NAME; its index in the project's ``classes`` list is the mask value.
- An empty ``source``, ``source_id`` or ``source_name`` is a wildcard. Rows are tried top to bottom
  and the **first** matching row wins (like a firewall): put specific rows before catch-alls.
- Matching is exact (case-sensitive, surrounding spaces ignored). Mapping a category to the
  background class drops it (it paints background, also over what lies below it).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from pipeline.errors import PipelineError

COLUMNS = ("source", "source_id", "source_name", "class")
OPTIONAL = ("note",)


@dataclass(frozen=True)
class LabelRule:
    """One control-sheet row; empty ``source``/``source_name`` and None ``source_id`` match
    anything."""

    line: int
    source: str
    source_id: Optional[int]
    source_name: str
    target: int

    def matches(
        self, source: str, category_id: Optional[int], category_name: Optional[str]
    ) -> bool:
        return (
            (not self.source or self.source == source)
            and (self.source_id is None or self.source_id == category_id)
            and (not self.source_name or self.source_name == category_name)
        )

    def describe(self, classes: list[str]) -> str:
        what = (
            " ".join(
                p
                for p in (
                    f"id {self.source_id}" if self.source_id is not None else "",
                    f"'{self.source_name}'" if self.source_name else "",
                )
                if p
            )
            or "any category"
        )
        return f"{what} -> {classes[self.target]}"


class LabelMap:
    """Resolves ``(source, category id, category name)`` to a project class index
    (first match wins)."""

    def __init__(self, rules: list[LabelRule], classes: list[str], path: Path):
        self.rules, self.classes, self.path = rules, list(classes), Path(path)
        self._cache: dict[tuple, int] = {}

    def lookup(
        self, source: str, category_id: Optional[int], category_name: Optional[str], where: str = ""
    ) -> int:
        """Class index for a category; ``category_id`` None for formats without ids (VIA).

        Args:
            where: optional "file: annotation ..." text naming the first annotation that used the
                category, added to the error message.

        Raises:
            PipelineError: no row matches; the message names the category, its source and the sheet,
                lists the rows known for that source and the row to add.
        """
        key = (source, category_id, category_name)
        if key not in self._cache:
            rule = next((r for r in self.rules if r.matches(*key)), None)
            if rule is None:
                raise PipelineError(self._unknown(source, category_id, category_name, where))
            self._cache[key] = rule.target
        return self._cache[key]

    def _unknown(
        self, source: str, category_id: Optional[int], category_name: Optional[str], where: str
    ) -> str:
        desc = " ".join(
            p
            for p in (
                f"id {category_id}" if category_id is not None else "",
                f"'{category_name}'" if category_name is not None else "",
            )
            if p
        )
        known = [r.describe(self.classes) for r in self.rules if not r.source or r.source == source]
        listed = "; ".join(known[:12]) + (f"; ... ({len(known)} rows)" if len(known) > 12 else "")
        row = f"{source},{'' if category_id is None else category_id},{category_name or ''},<class>"
        used = f" (used by {where})" if where else ""
        return (
            f"{self.path}: no row maps category {desc} of source '{source}'{used}; "
            f"rows for this source: {listed or 'none'}; add a row '{row}' "
            f"(class one of {self.classes})"
        )


def check_classes(classes: list[str]) -> list[str]:
    """Validate project class names (index = mask value, so at most 256 for uint8 masks)."""
    classes = [str(c).strip() for c in classes]
    if len(classes) < 2 or len(classes) > 256 or not all(classes):
        raise PipelineError(
            f"classes {classes}: give 2 to 256 non-empty names, background first "
            "(index = mask value)"
        )
    duplicates = sorted({c for c in classes if classes.count(c) > 1})
    if duplicates:
        raise PipelineError(
            f"classes {classes}: {duplicates} appear twice; class names must be unique"
        )
    return classes


def load_label_map(path: str | Path, classes: list[str]) -> LabelMap:
    """Read a control sheet (format in the module docstring) against the project ``classes``.

    Raises:
        PipelineError: missing file, wrong header, a non-integer ``source_id`` or an unknown target
            class; the message names the file and the row (line number).
    """
    path, classes = Path(path), check_classes(classes)
    if not path.is_file():
        raise PipelineError(
            f"{path}: label map (control sheet) not found; "
            f"create a CSV with header {','.join(COLUMNS)}"
        )
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            _check_header(path, reader.fieldnames)
            rules = [
                _rule(path, reader.line_num, row, classes) for row in reader if not _blank(row)
            ]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise PipelineError(
            f"{path}: cannot read the label map CSV ({err}); save it as a UTF-8 CSV"
        ) from None
    if not rules:
        raise PipelineError(f"{path}: the label map has no rows; add one row per source category")
    return LabelMap(rules, classes, path)


def _check_header(path: Path, fieldnames) -> None:
    names = [(n or "").strip() for n in fieldnames or []]
    missing = [c for c in COLUMNS if c not in names]
    unknown = [n for n in names if n not in COLUMNS + OPTIONAL]
    if missing or unknown:
        raise PipelineError(
            f"{path}: header {names} is missing {missing} / has unknown {unknown}; expected "
            f"columns {','.join(COLUMNS)} (optional: {','.join(OPTIONAL)})"
        )


def _blank(row: dict) -> bool:
    return not any(isinstance(v, str) and v.strip() for v in row.values())


def _rule(path: Path, line: int, row: dict, classes: list[str]) -> LabelRule:
    row = {(k or "").strip(): (v or "").strip() for k, v in row.items() if k is not None}
    where = f"{path} line {line}"
    if row["class"] not in classes:
        raise PipelineError(
            f"{where}: class '{row['class']}' is not a project class; use one of {classes}"
        )
    source_id = None
    if row["source_id"]:
        try:
            source_id = int(row["source_id"])
        except ValueError:
            raise PipelineError(
                f"{where}: source_id '{row['source_id']}' is not an integer; "
                "leave it empty to match by name"
            ) from None
    return LabelRule(
        line, row["source"], source_id, row["source_name"], classes.index(row["class"])
    )
