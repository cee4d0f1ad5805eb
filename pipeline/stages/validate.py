"""Stage: validate a submission CSV (plain or .gz) or mask folder,
with explicit options or its sidecar JSON."""

from __future__ import annotations

from pathlib import Path

from pipeline.config import load_config
from pipeline.data import Dataset, open_dataset
from pipeline.errors import PipelineError
from pipeline.fsio import read_json
from pipeline.output.checks import validate_file, validate_mask_folder
from pipeline.output.formats import get_format


def validate_submission(
    path: Path,
    sample: Path | None = None,
    format_name: str | None = None,
    size: tuple[int, int] | None = None,
) -> tuple[list[str], str]:
    """Validate with explicit options, or with the dataset and format of the sidecar JSON."""
    path = Path(path)
    if not path.exists():
        raise PipelineError(f"{path}: file not found; check the path")
    sidecar = path.parent / f"{path.name.split('.csv')[0].rstrip('/')}.json"
    dataset = None
    if sample is None and format_name is None:
        if not sidecar.is_file():
            raise PipelineError(f"{sidecar}: no sidecar JSON; pass --sample and --format")
        format_name, dataset = _sidecar_dataset(sidecar)
    elif size is None and sidecar.is_file():
        dataset = _sidecar_dataset(sidecar)[1]
    fmt = get_format(format_name or "carvana")
    if fmt.kind != "csv":
        if dataset is None:
            raise PipelineError(
                f"{path}: mask-folder submissions validate against their sidecar JSON's dataset"
            )
        return validate_mask_folder(path, fmt, dataset), fmt.name
    return validate_file(path, fmt, dataset, sample, size), fmt.name


def _sidecar_dataset(sidecar: Path) -> tuple[str, Dataset]:
    """The format and the dataset (for ids and image sizes) named by a submission's sidecar JSON."""
    meta = read_json(sidecar, "pass --sample, --format and --size instead")
    if not isinstance(meta.get("format"), str) or not isinstance(meta.get("run_config"), str):
        raise PipelineError(
            f"{sidecar}: sidecar JSON lacks 'format' and 'run_config'; pass --sample, --format "
            "and --size instead"
        )
    format_name, run_config = meta["format"], Path(meta["run_config"])
    return format_name, open_dataset(load_config(run_config).dataset)
