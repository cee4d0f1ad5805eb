"""Submission files: an atomic (optionally gzipped) CSV writer, the expected id order, the
sidecar JSON and the ledger."""

from __future__ import annotations

import contextlib
import csv
import fcntl
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
from pipeline.fsio import atomic_write_text, is_write_error, make_temp, write_error
from pipeline.output.formats import SubmissionFormat

LEDGER_COLUMNS = (
    "time",
    "name",
    "path",
    "members",
    "weights",
    "threshold",
    "min_area",
    "cleanup",
    "oof_dice",
    "git_commit",
    "config_hash",
    "est_score",
    "est_half_width",
)


def expected_image_ids(dataset: Dataset) -> list[str]:
    """Test image ids in submission order: the sample submission's order when there is one."""
    sample = dataset.root / "sample_submission.csv"
    if sample.is_file():
        return [Path(name).stem for name in read_csv_column(sample, "img")]
    return sorted(s.image_id for s in dataset.test)


@contextlib.contextmanager
def _writing(path: Path):
    """Refused writes (full disk, read-only, no permission) as one PipelineError naming ``path``."""
    try:
        yield
    except OSError as err:
        if not is_write_error(err):
            raise
        raise write_error(err, path) from None


class SubmissionWriter:
    """Streams rows to a temp file beside the target; ``finish()`` completes the temp file
    (``staged``, which can then be validated), ``commit()`` renames it into place.

    Leaving the ``with`` block without ``commit()`` (an error, a failed validation, a kill) removes
    the temp file, so no partial or invalid submission ever appears under its real name. An existing
    file is an error unless ``overwrite``; without it, ``commit()`` never replaces a file that
    another run wrote meanwhile.
    """

    def __init__(self, folder: Path, name: str, fmt: SubmissionFormat, gz: bool, overwrite: bool):
        self.path = Path(folder) / f"{name}.csv{'.gz' if gz else ''}"
        self.fmt, self.gz, self.overwrite, self.rows = fmt, gz, overwrite, 0
        check_free(self.path, overwrite)

    def __enter__(self) -> SubmissionWriter:
        # the temp keeps the real suffixes: validation sniffs gzip by content
        # and checks the name agrees
        with _writing(self.path):
            self.tmp = make_temp(
                self.path, suffix=".tmp" + "".join(self.path.suffixes[-2 if self.gz else -1 :])
            )
            try:
                self.raw = open(self.tmp, "wb")
            except OSError:
                self.tmp.unlink(missing_ok=True)
                raise
        self.binary = gzip.GzipFile(fileobj=self.raw, mode="wb", mtime=0) if self.gz else self.raw
        self.text = io.TextIOWrapper(self.binary, encoding="utf-8", newline="")
        self.csv = csv.writer(self.text, lineterminator="\n")
        self.committed = self.finished = False
        self.write([self.fmt.header])
        self.rows = 0
        return self

    @property
    def staged(self) -> Path:
        """The complete temp file after ``finish()``: what ``commit()`` will rename into place."""
        return self.tmp

    def write(self, rows: list[tuple[str, str]]) -> None:
        with _writing(self.path):
            self.csv.writerows(rows)
        self.rows += len(rows)

    def finish(self) -> None:
        """Flush, close and fsync the temp file (idempotent)."""
        if self.finished:
            return
        with _writing(self.path):
            self.text.flush()
            self.text.detach()
            if self.gz:
                self.binary.close()
            self.raw.flush()
            os.fsync(self.raw.fileno())
            self.raw.close()
        self.finished = True

    def commit(self) -> None:
        """Rename the finished temp file into place (finishing it first if needed)."""
        self.finish()
        with _writing(self.path):
            if self.overwrite:
                os.replace(self.tmp, self.path)
            else:  # link fails if the name was taken meanwhile: never replaces another run's file
                try:
                    os.link(self.tmp, self.path)
                except FileExistsError:
                    raise PipelineError(
                        f"{self.path} exists (written meanwhile by another run); choose "
                        "another --name or pass --overwrite"
                    ) from None
                os.unlink(self.tmp)
        self.committed = True

    def __exit__(self, *exc) -> None:
        if not self.committed:
            try:
                self.raw.close()
            finally:
                Path(self.tmp).unlink(missing_ok=True)


class MaskFolderWriter:
    """Mask PNGs into a temp folder beside ``<folder>/<name>/``; ``commit()`` renames it into place.

    Same guarantees as :class:`SubmissionWriter`: no partial or invalid folder under the real name,
    and an existing one is an error unless ``overwrite``.
    """

    def __init__(self, folder: Path, name: str, fmt: SubmissionFormat, overwrite: bool):
        self.path = Path(folder) / name
        self.fmt, self.overwrite, self.rows = fmt, overwrite, 0
        check_free(self.path, overwrite)

    def __enter__(self) -> MaskFolderWriter:
        with _writing(self.path):
            self.tmp = make_temp(self.path, directory=True)
        self.committed = False
        return self

    @property
    def staged(self) -> Path:
        return self.tmp

    def write(self, files: list[tuple[str, bytes]]) -> None:
        for name, data in files:
            with _writing(self.path / name):
                (self.tmp / name).write_bytes(data)
        self.rows += len(files)

    def finish(self) -> None:
        """Nothing to flush: every PNG is a complete file once ``write`` returns."""

    def commit(self) -> None:
        with _writing(self.path):
            if self.path.exists():
                if not self.overwrite:
                    raise PipelineError(
                        f"{self.path} exists (written meanwhile by another run); choose "
                        "another --name or pass --overwrite"
                    )
                shutil.rmtree(self.path)
            os.replace(self.tmp, self.path)
        self.committed = True

    def __exit__(self, *exc) -> None:
        if not self.committed:
            shutil.rmtree(self.tmp, ignore_errors=True)


def check_free(path: Path, overwrite: bool) -> None:
    """An existing submission of that name is an error unless ``overwrite``."""
    if path.exists() and not overwrite:
        raise PipelineError(f"{path} exists; choose another --name or pass --overwrite")


def make_writer(folder: Path, name: str, fmt: SubmissionFormat, gz: bool, overwrite: bool):
    return (
        SubmissionWriter(folder, name, fmt, gz, overwrite)
        if fmt.kind == "csv"
        else MaskFolderWriter(folder, name, fmt, overwrite)
    )


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _cell(value) -> str:
    """A ledger cell for a number, a per-class list or nothing
    (argmax decisions have no threshold)."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return " ".join(f"{v:.4f}" for v in value)
    return f"{value:.6f}" if isinstance(value, float) else str(value)


def write_sidecar_and_ledger(
    folder: Path, writer: SubmissionWriter, summary: dict, ecfg, ledger: Path
) -> None:
    """Write the sidecar JSON, rename the (finished, validated) submission into place, then add its
    ledger row: the submission appears under its name only with its sidecar beside it."""
    config_text = dump_config(ecfg)
    config_hash = hashlib.sha1(config_text.encode()).hexdigest()[:12]
    sidecar = {
        **summary,
        "git_commit": git_commit(),
        "config_hash": config_hash,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": ecfg.model_dump(mode="json"),
    }
    name = writer.path.name.split(".csv")[0]  # a mask folder's name has no suffix
    check_free(writer.path, writer.overwrite)
    atomic_write_text(Path(folder) / f"{name}.json", json.dumps(sidecar, indent=2))
    writer.commit()
    board = summary.get("estimated_score") or {}
    append_ledger(
        ledger,
        [
            sidecar["time"],
            name,
            str(writer.path),
            " ".join(summary["members"]),
            " ".join(f"{w:.4f}" for w in summary["weights"]),
            _cell(summary["threshold"]),
            _cell(summary["min_area"]),
            summary["cleanup"],
            "" if summary["oof_dice"] is None else f"{summary['oof_dice']:.6f}",
            sidecar["git_commit"] or "",
            sidecar["config_hash"],
            _cell(board.get("mean")),
            _cell(board.get("half_width")),
        ],
    )


def append_ledger(ledger: Path, row: list) -> None:
    """Append one row (and the header to a new ledger) under an exclusive lock, so concurrent runs
    never interleave their rows; a refused write (full disk) is cut back off,
    leaving no half row."""
    upgrade_ledger(ledger)
    with _writing(ledger), open(ledger, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        size = os.fstat(fh.fileno()).st_size
        buf = io.StringIO()
        out = csv.writer(buf, lineterminator="\n")
        if not size:
            out.writerow(LEDGER_COLUMNS)
        out.writerow(row)
        try:
            fh.write(buf.getvalue().encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())
        except OSError:
            with contextlib.suppress(OSError):
                fh.truncate(size)
            raise


def upgrade_ledger(ledger: Path) -> None:
    """Rewrite a ledger whose header lacks columns of ``LEDGER_COLUMNS`` (an older version) with
    them, empty in its old rows, so that new rows line up with the header."""
    if not ledger.is_file():
        return
    with open(ledger, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    if not rows or tuple(rows[0]) == LEDGER_COLUMNS:
        return
    header = rows[0]
    unknown = [c for c in header if c not in LEDGER_COLUMNS]
    if unknown:
        raise PipelineError(
            f"{ledger}: unknown column '{unknown[0]}'; move the file aside and rerun"
        )
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(LEDGER_COLUMNS)
    for row in rows[1:]:
        cells = dict(zip(header, row, strict=False))
        out.writerow([cells.get(c, "") for c in LEDGER_COLUMNS])
    atomic_write_text(ledger, buf.getvalue())
