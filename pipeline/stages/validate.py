"""Stage: validate a submission CSV (plain or .gz) against ids in order and image sizes."""
from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path

from pipeline.config import load_config
from pipeline.data import Dataset, open_dataset
from pipeline.data.carvana import read_csv_column
from pipeline.errors import PipelineError
from pipeline.stages.submit import expected_image_ids
from pipeline.submission import SubmissionFormat, get_format, validate_rows


def _open_text(path: Path):
    raw = open(path, "rb")
    head = raw.read(2)
    raw.seek(0)
    stream = gzip.GzipFile(fileobj=raw) if head == b"\x1f\x8b" else raw
    return io.TextIOWrapper(stream, encoding="utf-8", newline="")


def _rows(path: Path, fmt: SubmissionFormat, problems: list[str]):
    with _open_text(path) as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            problems.append("line 1: file is empty; expected header " + ",".join(fmt.header))
            return
        if tuple(header) != fmt.header:
            problems.append(f"line 1: header {','.join(header)!r} != {','.join(fmt.header)!r} ({fmt.name} format)")
        yield from enumerate(reader, start=2)


def validate_file(path: Path, fmt: SubmissionFormat, dataset: Dataset | None = None,
                  sample: Path | None = None, size: tuple[int, int] | None = None) -> list[str]:
    """All violations of a submission; sizes from the dataset, else ``size``/the format default."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: submission not found")
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
        shape = size or fmt.default_size
        if shape is None:
            raise PipelineError(f"validate: format {fmt.name} has no default image size; pass --size HxW")
        sizes = {row_id: shape for row_id in expected}
    problems: list[str] = []
    problems[:0] = validate_rows(_rows(path, fmt, problems), fmt, expected, sizes)
    return problems


def validate_mask_folder(path: Path, fmt: SubmissionFormat, dataset: Dataset, allowed: set | None = None
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
                problems.append(f"{path / name}: size {img.size[0]}x{img.size[1]} != image {width}x{height}")
            elif allowed is not None and fmt.kind != "png-colour":
                import numpy as np

                bad = set(np.unique(np.asarray(img)).tolist()) - allowed
                if bad:
                    problems.append(f"{path / name}: values {sorted(bad)[:5]} are not class outputs")
    return problems


def validate_submission(path: Path, sample: Path | None = None, format_name: str | None = None,
                        size: tuple[int, int] | None = None) -> tuple[list[str], str]:
    """Validate with explicit options, or with the dataset and format of the sidecar JSON."""
    path = Path(path)
    sidecar = path.parent / f"{path.name.split('.csv')[0].rstrip('/')}.json"
    dataset = None
    if sample is None and format_name is None:
        if not sidecar.is_file():
            raise PipelineError(f"{sidecar}: no sidecar JSON; pass --sample and --format")
        meta = json.loads(sidecar.read_text())
        format_name = meta["format"]
        run_config = Path(meta["run_config"])
        dataset = open_dataset(load_config(run_config).dataset)
    fmt = get_format(format_name or "carvana")
    if fmt.kind != "csv":
        if dataset is None:
            raise PipelineError(f"{path}: mask-folder submissions validate against their sidecar JSON's dataset")
        return validate_mask_folder(path, fmt, dataset), fmt.name
    return validate_file(path, fmt, dataset, sample, size), fmt.name
