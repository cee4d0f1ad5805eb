"""Submission files: an atomic (optionally gzipped) CSV writer, the expected id order, the
sidecar JSON and the ledger."""
from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from pipeline.config import dump_config
from pipeline.data import Dataset
from pipeline.data.carvana import read_csv_column
from pipeline.errors import PipelineError
from pipeline.fsio import atomic_write_text, make_temp
from pipeline.output.formats import SubmissionFormat

LEDGER_COLUMNS = ("time", "name", "path", "members", "weights", "threshold", "min_area", "cleanup", "oof_dice",
                  "git_commit", "config_hash", "est_score", "est_half_width")


def expected_image_ids(dataset: Dataset) -> list[str]:
    """Test image ids in submission order: the sample submission's order when there is one."""
    sample = dataset.root / "sample_submission.csv"
    if sample.is_file():
        return [Path(name).stem for name in read_csv_column(sample, "img")]
    return sorted(s.image_id for s in dataset.test)


class SubmissionWriter:
    """Streams rows to a temp file beside the target; ``commit()`` renames it into place.

    Leaving the ``with`` block without ``commit()`` (an error, a kill) removes the temp file, so
    no partial submission ever appears under its real name. An existing file is an error unless
    ``overwrite``.
    """

    def __init__(self, folder: Path, name: str, fmt: SubmissionFormat, gz: bool, overwrite: bool):
        self.path = Path(folder) / f"{name}.csv{'.gz' if gz else ''}"
        self.fmt, self.gz, self.overwrite, self.rows = fmt, gz, overwrite, 0
        if self.path.exists() and not overwrite:
            raise PipelineError(f"{self.path} exists; choose another --name or pass --overwrite")

    def __enter__(self) -> SubmissionWriter:
        self.tmp = make_temp(self.path)
        self.raw = open(self.tmp, "wb")
        self.binary = gzip.GzipFile(fileobj=self.raw, mode="wb", mtime=0) if self.gz else self.raw
        self.text = io.TextIOWrapper(self.binary, encoding="utf-8", newline="")
        self.csv = csv.writer(self.text, lineterminator="\n")
        self.csv.writerow(self.fmt.header)
        self.committed = False
        return self

    def write(self, rows: list[tuple[str, str]]) -> None:
        self.csv.writerows(rows)
        self.rows += len(rows)

    def commit(self) -> None:
        self.text.flush()
        self.text.detach()
        if self.gz:
            self.binary.close()
        self.raw.flush()
        os.fsync(self.raw.fileno())
        self.raw.close()
        os.replace(self.tmp, self.path)
        self.committed = True

    def __exit__(self, *exc) -> None:
        if not self.committed:
            try:
                self.raw.close()
            finally:
                Path(self.tmp).unlink(missing_ok=True)


class MaskFolderWriter:
    """Mask PNGs into a temp folder beside ``<folder>/<name>/``; ``commit()`` renames it into place.

    Same guarantees as :class:`SubmissionWriter`: no partial folder under the real name, and an
    existing one is an error unless ``overwrite``.
    """

    def __init__(self, folder: Path, name: str, fmt: SubmissionFormat, overwrite: bool):
        self.path = Path(folder) / name
        self.fmt, self.overwrite, self.rows = fmt, overwrite, 0
        if self.path.exists() and not overwrite:
            raise PipelineError(f"{self.path} exists; choose another --name or pass --overwrite")

    def __enter__(self) -> MaskFolderWriter:
        self.tmp = make_temp(self.path, directory=True)
        self.committed = False
        return self

    def write(self, files: list[tuple[str, bytes]]) -> None:
        for name, data in files:
            (self.tmp / name).write_bytes(data)
        self.rows += len(files)

    def commit(self) -> None:
        if self.path.exists():
            shutil.rmtree(self.path)
        os.replace(self.tmp, self.path)
        self.committed = True

    def __exit__(self, *exc) -> None:
        if not self.committed:
            shutil.rmtree(self.tmp, ignore_errors=True)


def make_writer(folder: Path, name: str, fmt: SubmissionFormat, gz: bool, overwrite: bool):
    return SubmissionWriter(folder, name, fmt, gz, overwrite) if fmt.kind == "csv" else \
        MaskFolderWriter(folder, name, fmt, overwrite)


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _cell(value) -> str:
    """A ledger cell for a number, a per-class list or nothing (argmax decisions have no threshold)."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return " ".join(f"{v:.4f}" for v in value)
    return f"{value:.6f}" if isinstance(value, float) else str(value)


def write_sidecar_and_ledger(folder: Path, writer: SubmissionWriter, summary: dict, ecfg, ledger: Path) -> None:
    config_text = dump_config(ecfg)
    config_hash = hashlib.sha1(config_text.encode()).hexdigest()[:12]
    sidecar = {**summary, "git_commit": git_commit(), "config_hash": config_hash,
               "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "config": ecfg.model_dump(mode="json")}
    name = writer.path.name.split(".csv")[0]  # a mask folder's name has no suffix
    atomic_write_text(Path(folder) / f"{name}.json", json.dumps(sidecar, indent=2))
    upgrade_ledger(ledger)
    new = not ledger.is_file()
    board = summary.get("estimated_score") or {}
    with open(ledger, "a", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh, lineterminator="\n")
        if new:
            out.writerow(LEDGER_COLUMNS)
        out.writerow([sidecar["time"], name, str(writer.path), " ".join(summary["members"]),
                      " ".join(f"{w:.4f}" for w in summary["weights"]), _cell(summary["threshold"]),
                      _cell(summary["min_area"]), summary["cleanup"],
                      "" if summary["oof_dice"] is None else f"{summary['oof_dice']:.6f}",
                      sidecar["git_commit"] or "", sidecar["config_hash"], _cell(board.get("mean")),
                      _cell(board.get("half_width"))])


def upgrade_ledger(ledger: Path) -> None:
    """Rewrite a ledger whose header lacks columns of ``LEDGER_COLUMNS`` (an older version) with them,
    empty in its old rows, so that new rows line up with the header."""
    if not ledger.is_file():
        return
    with open(ledger, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    if not rows or tuple(rows[0]) == LEDGER_COLUMNS:
        return
    header = rows[0]
    unknown = [c for c in header if c not in LEDGER_COLUMNS]
    if unknown:
        raise PipelineError(f"{ledger}: unknown column '{unknown[0]}'; move the file aside and rerun")
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(LEDGER_COLUMNS)
    for row in rows[1:]:
        cells = dict(zip(header, row, strict=False))
        out.writerow([cells.get(c, "") for c in LEDGER_COLUMNS])
    atomic_write_text(ledger, buf.getvalue())
