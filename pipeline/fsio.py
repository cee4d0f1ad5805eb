"""Atomic file writes: write to a temp file in the same folder, then rename.

A killed process therefore never leaves a half-written CSV, checkpoint or store entry:
readers see either the old file or the complete new one (``os.replace`` is atomic on POSIX).
What it does leave is its temp file, ``.<name>.<pid>.<random><suffix>``; the next writer into
that folder (once per process and folder) removes those whose process is gone.

Temp files are created with mode 0666 (folders 0777) less the umask, as ``open()`` creates files,
so a teammate's account or a container with another user id reads what was written (``mkstemp``'s
0600 would lock them out). A write that the file system refuses (full disk, read-only, no
permission) is one :class:`PipelineError` naming the path (:func:`write_error`), with the temp file
removed and the old file, if any, left as it was.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from pipeline.errors import PipelineError

_RANDOM = r"[a-z0-9_]{8}"  # the random part of a temp name (8 of _NAME_CHARS, as tempfile's)
_LEGACY_AGE_S = 3600  # temp names without a pid (older versions): stale once this old
_swept: set[tuple[str, str]] = set()
_NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"
_random = random.SystemRandom()
# errno -> what the user can do about it; these are the write failures the CLI prints as one line
WRITE_FIXES = {
    errno.ENOSPC: (
        "free disk space (or point the project at a larger disk) and rerun; finished work is kept"
    ),
    errno.EDQUOT: "free space within your disk quota and rerun; finished work is kept",
    errno.EROFS: (
        "the file system is read-only; run from a writable folder (or remount it) and rerun"
    ),
    errno.EACCES: (
        "permission denied; fix the file's or folder's owner/permissions, or run elsewhere"
    ),
    errno.EPERM: (
        "the operation is not permitted there; fix the folder's owner/permissions or run elsewhere"
    ),
}


def write_error(err: OSError, path: str | os.PathLike | None = None) -> PipelineError:
    """The one-line error of a refused write: ``<path>: <reason> (<ERRNO>); <fix>``.

    ``err.filename`` (set by ``open``, ``mkdir``, ``rename``...) wins over ``path``, the file being
    written when a plain ``write()`` fails (ENOSPC has no file name of its own), unless it is one of
    ``path``'s temp files (``.<name>.<pid>.<random>...``), which the user never sees.
    """
    where = err.filename
    if where is None or (path is not None and _is_temp_of(Path(where), Path(path))):
        where = path if path is not None else "(unknown file)"
    code = errno.errorcode.get(err.errno, "") if err.errno is not None else ""
    reason = err.strerror or str(err) or type(err).__name__
    fix = WRITE_FIXES.get(err.errno, "check the disk and the folder, then rerun")
    return PipelineError(f"{where}: {reason}{f' ({code})' if code else ''}; {fix}")


def _is_temp_of(candidate: Path, path: Path) -> bool:
    return candidate.parent == path.parent and candidate.name.startswith(f".{path.name}.")


def is_write_error(err: BaseException) -> bool:
    """Whether ``err`` is a file-system refusal the user fixes outside the pipeline
    (see WRITE_FIXES)."""
    return isinstance(err, OSError) and err.errno in WRITE_FIXES


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
            if pid is None and (
                suffix != ".tmp" or time.time() - entry.stat().st_mtime < _LEGACY_AGE_S
            ):
                continue
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(entry.path) if entry.is_dir(follow_symlinks=False) else os.unlink(
                    entry.path
                )
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
    for _ in range(100):
        tmp = path.parent / f"{prefix}{''.join(_random.choices(_NAME_CHARS, k=8))}{suffix}"
        try:
            if directory:
                os.mkdir(tmp, 0o777)  # less the umask, as for any new folder
            else:
                os.close(
                    os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
                )  # less the umask
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(errno.EEXIST, "no free temp name", str(path.parent))


@contextlib.contextmanager
def atomic_open(
    path: str | os.PathLike, mode: str = "w", durable: bool = True, **kwargs
) -> Iterator[IO]:
    """Open a temp file beside ``path``; on clean exit fsync (when ``durable``)
    and rename it onto ``path``.

    The rename alone makes the write atomic for a killed process; the fsync also survives a power
    loss, at a disk flush per file (1-7 ms measured here), which many small files (store entries)
    leave to one ``os.sync()`` when they are all written.
    """
    path = Path(path)
    try:
        tmp = make_temp(path)
    except OSError as err:
        raise (write_error(err, path) if is_write_error(err) else err) from None
    try:
        with open(tmp, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if is_write_error(
            err
        ):  # a full disk surfaces in write(), flush() or close(): name the target
            raise write_error(err, path) from None
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8, ``\\n`` line endings)."""
    with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, durable: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (see ``atomic_open`` for ``durable``)."""
    with atomic_open(path, "wb", durable=durable) as fh:
        fh.write(data)


def read_json(
    path: str | os.PathLike, fix: str = "rerun the stage that writes it", optional: bool = False
) -> dict:
    """A JSON object from ``path`` (``{}`` when ``optional`` and absent);
    anything unreadable is one line."""
    path = Path(path)
    if optional and not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PipelineError(f"{path}: file not found; {fix}") from None
    except (OSError, ValueError) as err:  # ValueError: bad JSON and bad UTF-8 alike
        raise PipelineError(
            f"{path}: unreadable JSON ({type(err).__name__}: {err}); {fix}"
        ) from None
    if not isinstance(data, dict):
        raise PipelineError(f"{path}: expected a JSON object, found {type(data).__name__}; {fix}")
    return data
