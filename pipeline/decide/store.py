"""The probability store: one folder of per-image uint8 probabilities plus a manifest.

Layout::

    <store>/manifest.json      header: format, run, split, folds, tta, classes, checkpoints,
                               resolution; after ``finalize``: complete=true and an index of
                               image ids with their original (height, width)
    <store>/<image_id>.u8z     uint8 probabilities round(p * 255) (quantisation error <= 1/510):
                               b"U8Z1", then C, h, w as little-endian uint32, then the (C, h, w)
                               array in C order, zlib-compressed (level 1). zlib, not PNG: on
                               real 1918x1280 maps it is as compact (~60-80 KB) and decodes 3x and
                               encodes 5x faster, which the ensemble's streaming pass needs.

Each image file is written atomically, so a killed writer leaves only whole images; reopening
the store with the same header skips them (resume). Readers load one image at a time.
"""
from __future__ import annotations

import json
import os
import shutil
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import PipelineError
from pipeline.fsio import atomic_write_bytes, atomic_write_text, read_json

FORMAT = "segfuse-store-1"
SUFFIX = ".u8z"
_MAGIC = b"U8Z1"
_HEAD = struct.Struct("<4sIII")
HEADER_KEYS = ("run", "split", "folds", "tta", "classes", "checkpoints", "resolution")


def quantize(probs: np.ndarray) -> np.ndarray:
    """Float probabilities in [0, 1] -> uint8 ``round(p * 255)``."""
    return np.rint(np.clip(probs, 0.0, 1.0) * 255.0).astype(np.uint8)


def dequantize(probs_u8: np.ndarray) -> np.ndarray:
    return probs_u8.astype(np.float32) / 255.0


def _check_id(image_id: str) -> None:
    if not image_id or "/" in image_id or image_id.startswith(".") or image_id == "manifest":
        raise PipelineError(f"image id {image_id!r} cannot name a store file; rename the image")


class ProbStore:
    """Read/write access to one store folder (see module docstring)."""

    def __init__(self, path: Path, manifest: dict[str, Any]):
        self.path, self.manifest = Path(path), manifest
        self.replaced: str | None = None

    # ---- opening -----------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike) -> ProbStore:
        """Open an existing store for reading."""
        path = Path(path)
        manifest_path = path / "manifest.json"
        if not manifest_path.is_file():
            raise PipelineError(f"{path}: not a probability store (no manifest.json); run 'pipeline predict' first")
        manifest = read_json(manifest_path, "rerun predict with --force")
        if manifest.get("format") != FORMAT:
            raise PipelineError(f"{manifest_path}: unknown store format {manifest.get('format')!r}")
        return cls(path, manifest)

    @classmethod
    def create(cls, path: str | os.PathLike, header: dict[str, Any], identity: tuple[str, ...] = HEADER_KEYS,
               force: bool = False) -> ProbStore:
        """Open for writing.

        An existing store whose ``identity`` header keys match is resumed: its whole images and its
        other header fields are kept (the caller maintains those, e.g. per-fold checkpoints of OOF).
        One that differs (other models, TTA, classes, ...) is stale and replaced, as is any store
        when ``force``. ``store.replaced`` says why a store was started afresh (None if resumed/new).
        """
        path = Path(path)
        header = json.loads(json.dumps({k: header[k] for k in HEADER_KEYS}))
        replaced = None
        if (path / "manifest.json").is_file():
            old = cls.open(path)
            diff = [k for k in identity if old.manifest.get(k) != header[k]]
            if not diff and not force:
                old.manifest.pop("complete", None)
                old.manifest.pop("index", None)
                atomic_write_text(path / "manifest.json", json.dumps(old.manifest, indent=1))
                old.replaced = None
                return old
            replaced = "--force" if force else f"{', '.join(diff)} changed"
        if path.exists():
            shutil.rmtree(path)
        manifest = {"format": FORMAT, **header, "complete": False}
        atomic_write_text(path / "manifest.json", json.dumps(manifest, indent=1))
        store = cls(path, manifest)
        store.replaced = replaced
        return store

    def remove(self, image_ids: list[str]) -> None:
        """Delete these images' entries (stale predictions)."""
        for image_id in image_ids:
            self._file(image_id).unlink(missing_ok=True)

    def update_manifest(self, **fields: Any) -> None:
        self.manifest.update(json.loads(json.dumps(fields)))
        atomic_write_text(self.path / "manifest.json", json.dumps(self.manifest, indent=1))

    # ---- per image ---------------------------------------------------------------------------
    def _file(self, image_id: str) -> Path:
        _check_id(image_id)
        return self.path / f"{image_id}{SUFFIX}"

    def has(self, image_id: str) -> bool:
        return self._file(image_id).is_file()

    def write(self, image_id: str, probs_u8: np.ndarray) -> None:
        """Store ``(C, h, w)`` uint8 probabilities atomically."""
        if probs_u8.dtype != np.uint8 or probs_u8.ndim != 3:
            raise ValueError(f"expected (C, h, w) uint8, got {probs_u8.dtype} {probs_u8.shape}")
        if probs_u8.shape[0] != self.channels:
            raise ValueError(f"expected {self.channels} channels, got {probs_u8.shape[0]}")
        head = _HEAD.pack(_MAGIC, *probs_u8.shape)
        atomic_write_bytes(self._file(image_id), head + zlib.compress(np.ascontiguousarray(probs_u8).data, 1))

    def read(self, image_id: str) -> np.ndarray:
        """``(C, h, w)`` uint8 probabilities of one image."""
        path = self._file(image_id)
        if not path.is_file():
            raise PipelineError(f"{self.path}: no probabilities for image '{image_id}'; rerun 'pipeline predict'")
        data = path.read_bytes()
        try:
            magic, channels, height, width = _HEAD.unpack_from(data)
            if magic != _MAGIC or channels != self.channels:
                raise ValueError("bad header")
            return np.frombuffer(zlib.decompress(data[_HEAD.size:]), np.uint8).reshape(channels, height, width)
        except (struct.error, ValueError, zlib.error):
            raise PipelineError(f"{path}: corrupt store entry; rerun predict with --force") from None

    # ---- whole store -------------------------------------------------------------------------
    @property
    def channels(self) -> int:
        classes = len(self.manifest["classes"])
        return 1 if classes == 2 else classes

    @property
    def complete(self) -> bool:
        return bool(self.manifest.get("complete"))

    def ids(self) -> list[str]:
        """Image ids in the store: the finalized index, else the files present."""
        if self.complete:
            return [row[0] for row in self.manifest["index"]]
        return sorted(p.name[: -len(SUFFIX)] for p in self.path.glob(f"*{SUFFIX}") if not p.name.startswith("."))

    def shapes(self) -> dict[str, tuple[int, int]]:
        """Original (height, width) per image id (finalized stores only)."""
        return {row[0]: (row[1], row[2]) for row in self.manifest.get("index", [])}

    def finalize(self, index: list[tuple[str, int, int]], extra: dict[str, Any] | None = None) -> None:
        """Record the image index (id, original height, width) and mark the store complete."""
        missing = [i for i, _, _ in index if not self.has(i)]
        if missing:
            raise PipelineError(f"{self.path}: {len(missing)} images have no probabilities (first '{missing[0]}')")
        self.update_manifest(**(extra or {}), index=[list(row) for row in index], complete=True)

    def __iter__(self) -> Iterator[tuple[str, np.ndarray]]:
        for image_id in self.ids():
            yield image_id, self.read(image_id)

    def check_against(self, expected: dict[str, tuple[int, int]]) -> None:
        """The store must hold exactly ``expected`` ids with these original shapes (clear error if not)."""
        if not self.complete:
            raise PipelineError(f"{self.path}: store is incomplete (interrupted predict); rerun 'pipeline predict'")
        shapes = self.shapes()
        missing, extra = sorted(set(expected) - set(shapes)), sorted(set(shapes) - set(expected))
        if missing:
            raise PipelineError(f"{self.path}: no probabilities for image '{missing[0]}' (+{len(missing) - 1} more); "
                                "the dataset changed — rerun 'pipeline predict --force'")
        if extra:
            raise PipelineError(f"{self.path}: holds image '{extra[0]}' that the dataset does not have "
                                f"(+{len(extra) - 1} more); rerun 'pipeline predict --force'")
        for image_id, shape in expected.items():
            if tuple(shapes[image_id]) != tuple(shape):
                raise PipelineError(f"{self.path}: image '{image_id}' was predicted at {shapes[image_id]} but is "
                                    f"{tuple(shape)} in the dataset; rerun 'pipeline predict --force'")
