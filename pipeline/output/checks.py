"""Submission checks: a CSV (plain or .gz) against ids in order and image sizes; a mask folder."""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from pathlib import Path

from pipeline.data import Dataset
from pipeline.data.carvana import read_csv_column
from pipeline.errors import PipelineError
from pipeline.output.formats import SubmissionFormat, validate_rows
from pipeline.output.writers import expected_image_ids

_GZIP_MAGIC = b"\x1f\x8b"


def _open_text(path: Path):
    """Text of a submission, gzip sniffed by content; a name that says otherwise is an error.

    Kaggle picks the decoder by the name, so a gzip file named ``.csv`` (or a plain one named
    ``.gz``) would fail there; a UTF-8 byte-order mark (Excel's default) is read, not kept.
    """
    raw = open(path, "rb")
    is_gzip = raw.read(2) == _GZIP_MAGIC
    raw.seek(0)
    named_gzip = path.name.endswith(".gz")
    if is_gzip != named_gzip:
        raw.close()
        fix = (
            f"rename it to {path.name}.gz"
            if is_gzip
            else "rename it without .gz or compress it with gzip"
        )
        raise PipelineError(
            f"{path}: file is {'gzip-compressed' if is_gzip else 'not gzip-compressed'} "
            f"but named {path.suffix}; {fix}"
        )
    stream = gzip.GzipFile(fileobj=raw) if is_gzip else raw
    return io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")


def _unreadable(path: Path, err: Exception) -> PipelineError:
    """One line for a submission that cannot be decoded (bad gzip, bad encoding, bad CSV)."""
    if isinstance(err, UnicodeDecodeError):
        what = f"not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset {err.start})"
        return PipelineError(f"{path}: {what}; save it as UTF-8 CSV")
    if isinstance(err, (EOFError, gzip.BadGzipFile, zlib.error)):
        return PipelineError(
            f"{path}: truncated or corrupt gzip ({err or type(err).__name__}); write it again"
        )
    return PipelineError(f"{path}: cannot read CSV ({err}); write it again")


def _rows(path: Path, fmt: SubmissionFormat, problems: list[str]):
    with _open_text(path) as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise PipelineError(
                f"{path}: file is empty; expected the header {','.join(fmt.header)} and one row "
                "per id"
            )
        if tuple(header) != fmt.header:
            problems.append(
                f"line 1: header {','.join(header)!r} != {','.join(fmt.header)!r} "
                f"({fmt.name} format)"
            )
        yield from enumerate(reader, start=2)


def validate_file(
    path: Path,
    fmt: SubmissionFormat,
    dataset: Dataset | None = None,
    sample: Path | None = None,
    size: tuple[int, int] | None = None,
) -> list[str]:
    """All violations of a submission; sizes from the dataset, else ``size``/the format default."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(
            f"{path}: submission not found" + (" (it is a folder)" if path.is_dir() else "")
        )
    classes = len(dataset.classes) if dataset else 2
    if sample is not None:
        expected = list(read_csv_column(sample, fmt.header[0]).keys())
        image_ids = None
    else:
        if dataset is None:
            raise PipelineError("validate: give --sample, or a submission with its sidecar JSON")
        image_ids = expected_image_ids(dataset)
        expected = [r for i in image_ids for r in fmt.row_ids(i, classes)]
    sizes = {}
    if dataset is not None:
        by_id = {s.image_id: s for s in dataset.test}
        for image_id in image_ids or [s.image_id for s in dataset.test]:
            if image_id in by_id:
                shape = dataset.image_size(by_id[image_id])
                for row_id in fmt.row_ids(image_id, classes):
                    sizes[row_id] = shape
    else:
        if size is None:  # a guessed size would let runs past the last pixel through
            raise PipelineError(
                f"{path}: cannot check RLE bounds without the image sizes; pass --size WxH, or "
                "keep the submission's sidecar JSON beside it"
            )
        sizes = {row_id: size for row_id in expected}
    problems: list[str] = []
    try:
        problems[:0] = validate_rows(_rows(path, fmt, problems), fmt, expected, sizes)
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, csv.Error) as err:
        raise _unreadable(path, err) from None
    return problems


def validate_mask_folder(
    path: Path, fmt: SubmissionFormat, dataset: Dataset, allowed: set | None = None
) -> list[str]:
    """A mask-image submission: one PNG per test image, at its size, with allowed values only."""
    from PIL import Image

    path = Path(path)
    if not path.is_dir():
        raise PipelineError(f"{path}: submission folder not found")
    problems, expected = [], {}
    by_id = {s.image_id: s for s in dataset.test}
    for image_id in expected_image_ids(dataset):
        expected[fmt.id_template.format(image_id=image_id)] = dataset.image_size(by_id[image_id])
    present = {p.name for p in path.iterdir() if not p.name.startswith(".")}
    for name in sorted(present - set(expected)):
        problems.append(f"{path / name}: not a test image of the dataset")
    for name, (height, width) in expected.items():
        if name not in present:
            problems.append(f"{path / name}: missing")
            continue
        with Image.open(path / name) as img:
            if img.size != (width, height):
                problems.append(
                    f"{path / name}: size {img.size[0]}x{img.size[1]} != image {width}x{height}"
                )
            elif allowed is not None and fmt.kind != "png-colour":
                import numpy as np

                bad = set(np.unique(np.asarray(img)).tolist()) - allowed
                if bad:
                    problems.append(
                        f"{path / name}: values {sorted(bad)[:5]} are not class outputs"
                    )
    return problems
