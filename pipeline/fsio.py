"""Atomic file writes: write to a temp file in the same folder, then rename.

A killed process therefore never leaves a half-written CSV, checkpoint or store entry:
readers see either the old file or the complete new one (``os.replace`` is atomic on POSIX).
What it does leave is its temp file, ``.<name>.<pid>.<random><suffix>``; the next writer into
that folder (once per process and folder) removes those whose process is gone.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from pipeline.errors import PipelineError

_RANDOM = r"[a-z0-9_]{8}"  # tempfile's names
_LEGACY_AGE_S = 3600  # temp names without a pid (older versions): stale once this old
_swept: set[tuple[str, str]] = set()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_temps(folder: Path, suffix: str = ".tmp") -> list[Path]:
    """Remove temp files/folders in ``folder`` left by killed writers; return what was removed."""
    pattern = re.compile(rf"^\..+?\.(?:(\d+)\.)?{_RANDOM}{re.escape(suffix)}$")
    removed = []
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(folder):
            match = pattern.match(entry.name)
            if not match:
                continue
            pid = match.group(1)
            if pid is not None and (int(pid) == os.getpid() or _alive(int(pid))):
                continue
            if pid is None and (suffix != ".tmp" or time.time() - entry.stat().st_mtime < _LEGACY_AGE_S):
                continue
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(entry.path) if entry.is_dir(follow_symlinks=False) else os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def make_temp(path: Path, suffix: str = ".tmp", directory: bool = False) -> Path:
    """A new temp file (or folder) beside ``path`` named ``.<name>.<pid>.<random><suffix>``.

    The first call per process and folder first removes the stale temps of killed writers.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    key = (str(path.parent.resolve()), suffix)
    if key not in _swept:
        remove_stale_temps(path.parent, suffix)
        _swept.add(key)
    prefix = f".{path.name}.{os.getpid()}."
    if directory:
        return Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=path.parent))
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=path.parent)
    os.close(fd)
    return Path(tmp)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", durable: bool = True, **kwargs) -> Iterator[IO]:
    """Open a temp file beside ``path``; on clean exit fsync (when ``durable``) and rename it onto ``path``.

    The rename alone makes the write atomic for a killed process; the fsync also survives a power
    loss, at a disk flush per file (1-7 ms measured here), which many small files (store entries)
    leave to one ``os.sync()`` when they are all written.
    """
    path = Path(path)
    tmp = make_temp(path)
    try:
        with open(tmp, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8, ``\\n`` line endings)."""
    with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, durable: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (see ``atomic_open`` for ``durable``)."""
    with atomic_open(path, "wb", durable=durable) as fh:
        fh.write(data)


def read_json(path: str | os.PathLike, fix: str = "rerun the stage that writes it", optional: bool = False) -> dict:
    """A JSON object from ``path`` (``{}`` when ``optional`` and absent); anything unreadable is one line."""
    path = Path(path)
    if optional and not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PipelineError(f"{path}: file not found; {fix}") from None
    except (OSError, ValueError) as err:  # ValueError: bad JSON and bad UTF-8 alike
        raise PipelineError(f"{path}: unreadable JSON ({type(err).__name__}: {err}); {fix}") from None
    if not isinstance(data, dict):
        raise PipelineError(f"{path}: expected a JSON object, found {type(data).__name__}; {fix}")
    return data
