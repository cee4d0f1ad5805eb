"""Fingerprints: what a cached product was made from, so it is reused only while that still holds.

A store's fingerprint covers its identity header (run, split, folds, TTA, classes, checkpoints,
resolution), its index and every image file's size and modification time: predicting again, with
other settings or not, or a damaged file, changes it. Stat calls only, no reading:
cheap on 100k images.
"""

from __future__ import annotations

import hashlib
import json

from pipeline.decide.store import HEADER_KEYS, ProbStore


def digest(value) -> str:
    """Short SHA-1 of a JSON-serialisable value (sorted keys)."""
    return hashlib.sha1(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def store_fingerprint(store: ProbStore) -> str:
    files = sorted(
        (p.name, p.stat().st_size, p.stat().st_mtime_ns)
        for p in store.path.glob(f"*{store.suffix}")
    )
    head = {k: store.manifest.get(k) for k in (*HEADER_KEYS, "complete", "index")}
    return digest({"header": head, "files": files})
