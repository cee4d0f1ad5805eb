"""SIGKILL a real ``python -m pipeline`` process in the middle of an atomic write.

The child process wraps ``os.replace`` (every atomic write of the project ends with one, the
rename of its complete temp file onto the final name, fsynced first or not, whatever writes it):
the first ``skip`` renames of files whose name contains ``match`` pass; at the next one it
records which file it was committing and how many bytes it held, then sleeps, and the parent
kills it with SIGKILL. At that moment the data of the write in flight is written but the write
has not finished, so a non-atomic writer would leave it under its final name.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

_HOOK = """
import json, os, sys, time
_replace, _seen = os.replace, [0]
_marker, _match, _skip = sys.argv[1], sys.argv[2], int(sys.argv[3])
def _slow_replace(src, dst, *args, **kwargs):
    name = os.path.abspath(os.fspath(src))
    if _match in os.path.basename(name):
        _seen[0] += 1
        if _seen[0] > _skip:
            with open(_marker + ".part", "w") as fh:
                json.dump({"path": name, "bytes": os.path.getsize(name)}, fh)
            _replace(_marker + ".part", _marker)
            time.sleep(600)
    return _replace(src, dst, *args, **kwargs)
os.replace = _slow_replace
sys.argv = ["pipeline", *sys.argv[4:]]
from pipeline.cli import cli
cli()
"""


def kill_during_write(
    args: list[str], cwd: Path, match: str, skip: int, timeout: float = 240, env: dict | None = None
) -> dict:
    """Run ``pipeline *args`` in ``cwd``; SIGKILL it while it commits the (skip+1)-th file matching
    ``match``. Returns ``{"path": file being written, "bytes": its size}`` at the kill."""
    marker = cwd / ".kill_marker.json"
    marker.unlink(missing_ok=True)
    cmd = [sys.executable, "-c", _HOOK, str(marker), match, str(skip), *args]
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.time() + timeout
    try:
        while not marker.exists():
            if proc.poll() is not None:
                raise AssertionError(
                    f"exited ({proc.returncode}) before the write:\n"
                    f"{proc.stdout.read().decode(errors='replace')[-4000:]}"
                )
            if time.time() > deadline:
                raise AssertionError("the watched write never started")
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    info = json.loads(marker.read_text())
    marker.unlink()
    return info
