"""The probability store: one folder of per-image uint8 probabilities plus a manifest.

Layout (format ``segfuse-store-3``)::

    <store>/manifest.json      header: format, run, split, folds, tta, classes, checkpoints,
                               resolution; after ``finalize``: complete=true and an index of
                               image ids with their original (height, width)
    <store>/<image_id>.u8zst   uint8 probabilities round(p * 255) (quantisation error <= 1/510)
                               at the size they were predicted at (``resolution: model``: the
                               network's output, padding cropped) with the image's original size;
                               zstd. ``read`` returns them at the original size (one bilinear
                               resize); ``read_stored`` as stored. Entry bytes: ``store_codec``.
                               Each entry records the key of its ``Source`` (what made it)
    <store>/shard-<i>-of-<N>.json   test stores predicted in N shards (``store_shards``): the
                               store is complete when all N are there

Each image file is written atomically, so a killed writer leaves only whole images; reopening
the store with the same header skips them (resume). An entry is reused only while what made it
is unchanged: a writer names its ``Source`` (the model checkpoint, TTA, resolved precision and the
input image file, by size and mtime) and ``has(image_id, source)`` is False for an entry another
source made, so it is computed again. Entries are not fsynced one by one (a disk
flush per image); ``finalize`` syncs them all before it marks the store complete. Readers load
one image at a time. Stores of formats ``segfuse-store-1`` (full-size zlib ``.u8z`` entries) and
``segfuse-store-2`` (no source keys) are still read; writing into one (``create``) starts it
afresh in format 3, so a rerun of ``pipeline predict`` converts it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.decide import store_codec
from pipeline.decide.store_shards import Shard, shard_state, write_shard_file
from pipeline.errors import PipelineError
from pipeline.fsio import atomic_write_bytes, atomic_write_text, read_json

FORMAT = "segfuse-store-3"
VERSIONS = {"segfuse-store-1": 1, "segfuse-store-2": 2, FORMAT: 3}
HEADER_KEYS = ("run", "split", "folds", "tta", "classes", "checkpoints", "resolution")


def quantize(probs: np.ndarray) -> np.ndarray:
    """Float probabilities in [0, 1] -> uint8 ``round(p * 255)``."""
    return np.rint(np.clip(probs, 0.0, 1.0) * 255.0).astype(np.uint8)


def dequantize(probs_u8: np.ndarray) -> np.ndarray:
    return probs_u8.astype(np.float32) / 255.0


@dataclass(frozen=True)
class Source:
    """What makes one entry: ``maker`` (JSON-able: model checkpoint digest(s), TTA, resolved
    precision, ...) applied to the input file ``image``, known by its size and mtime."""

    maker: Mapping[str, Any]
    image: Path | None = None

    def key(self) -> bytes:
        """16 hex digits of the maker and the image file's (size, mtime_ns) as they are now."""
        try:
            stat = os.stat(self.image) if self.image is not None else None
            seen = None if stat is None else [stat.st_size, stat.st_mtime_ns]
        except OSError:
            seen = "missing"
        text = json.dumps({"maker": self.maker, "image": seen}, sort_keys=True, default=str)
        return hashlib.sha1(text.encode()).hexdigest()[: store_codec.KEY_BYTES].encode()


def _check_id(image_id: str) -> None:
    if not image_id or "/" in image_id or image_id.startswith(".") or image_id == "manifest":
        raise PipelineError(f"image id {image_id!r} cannot name a store file; rename the image")


class ProbStore:
    """Read/write access to one store folder (see module docstring)."""

    def __init__(self, path: Path, manifest: dict[str, Any]):
        self.path, self.manifest = Path(path), manifest
        self.version = VERSIONS[manifest["format"]]
        self.suffix = store_codec.SUFFIXES[self.version]
        self.replaced: str | None = None
        self.shards = None if self.manifest.get("complete") else shard_state(self.path, self.header)

    # ---- opening -----------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike) -> ProbStore:
        """Open an existing store for reading."""
        path = Path(path)
        manifest_path = path / "manifest.json"
        if not manifest_path.is_file():
            raise PipelineError(
                f"{path}: not a probability store (no manifest.json); run 'pipeline predict' first"
            )
        manifest = read_json(manifest_path, "rerun predict with --force")
        if manifest.get("format") not in VERSIONS:
            raise PipelineError(
                f"{manifest_path}: unknown store format {manifest.get('format')!r} (this version "
                f"reads {', '.join(VERSIONS)}); rerun 'pipeline predict --force' to rewrite it"
            )
        return cls(path, manifest)

    @property
    def header(self) -> dict[str, Any]:
        return {k: self.manifest.get(k) for k in HEADER_KEYS}

    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        header: dict[str, Any],
        identity: tuple[str, ...] = HEADER_KEYS,
        force: bool = False,
    ) -> ProbStore:
        """Open for writing.

        An existing store whose ``identity`` header keys match is resumed: its whole images and its
        other header fields are kept (the caller maintains those, e.g. per-fold checkpoints of OOF).
        One that differs (other models, TTA, classes, ...) is stale and replaced, as is any store
        when ``force``. ``store.replaced`` says why a store was started afresh
        (None if resumed/new).
        """
        path = Path(path)
        header = json.loads(json.dumps({k: header[k] for k in HEADER_KEYS}))
        replaced = None
        if (path / "manifest.json").is_file():
            old = cls.open(path)
            diff = [k for k in identity if old.manifest.get(k) != header[k]]
            if old.version != VERSIONS[FORMAT]:
                diff.insert(0, f"format {old.manifest['format']} -> {FORMAT}")
            if not diff and not force:
                old.manifest.pop("complete", None)
                old.manifest.pop("index", None)
                atomic_write_text(path / "manifest.json", json.dumps(old.manifest, indent=1))
                old.replaced, old.shards = None, None
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
        return self.path / f"{image_id}{self.suffix}"

    def has(self, image_id: str, source: Source | None = None) -> bool:
        """An entry for ``image_id`` is there and, given ``source``, was made by it (same model,
        TTA, precision, input file): only then may it be reused."""
        path = self._file(image_id)
        if source is None:
            return path.is_file()
        try:
            with open(path, "rb") as fh:
                head = fh.read(store_codec.HEAD_BYTES)
        except OSError:
            return False
        return store_codec.entry_key(head, self.version) == source.key()

    def write(
        self,
        image_id: str,
        probs_u8: np.ndarray,
        original: tuple[int, int] | None = None,
        source: Source | None = None,
    ) -> None:
        """Store ``(C, h, w)`` uint8 probabilities atomically; ``original``: the image's (H, W) when
        the probabilities are smaller (the model's resolution), read back resized to it;
        ``source``: what made them (recorded; ``has`` compares it)."""
        if probs_u8.dtype != np.uint8 or probs_u8.ndim != 3:
            raise ValueError(f"expected (C, h, w) uint8, got {probs_u8.dtype} {probs_u8.shape}")
        if probs_u8.shape[0] != self.channels:
            raise ValueError(f"expected {self.channels} channels, got {probs_u8.shape[0]}")
        if self.version != VERSIONS[FORMAT]:
            raise PipelineError(
                f"{self.path}: a {self.manifest['format']} store is read-only; rerun "
                "'pipeline predict' to rewrite it as " + FORMAT
            )
        original = tuple(original or probs_u8.shape[1:])
        # atomic, not fsynced one by one: finalize() flushes them all before the store is
        # marked complete
        key = source.key() if source is not None else b""
        data = store_codec.encode(probs_u8, original, key)
        atomic_write_bytes(self._file(image_id), data, durable=False)

    def read_stored(self, image_id: str) -> tuple[np.ndarray, tuple[int, int]]:
        """``(C, h, w)`` uint8 probabilities as stored (maybe the model's resolution)
        and the original (H, W)."""
        path = self._file(image_id)
        if not path.is_file():
            raise PipelineError(
                f"{self.path}: no probabilities for image '{image_id}'; rerun 'pipeline predict'"
            )
        try:
            probs, original = store_codec.decode(path.read_bytes(), self.version)
        except ValueError:
            probs = None
        if probs is None or probs.shape[0] != self.channels:
            raise PipelineError(f"{path}: corrupt store entry; rerun predict with --force")
        return probs, original

    def read(self, image_id: str) -> np.ndarray:
        """``(C, H, W)`` uint8 probabilities of one image at its original size."""
        probs, original = self.read_stored(image_id)
        return store_codec.resize(probs, original)

    # ---- whole store -------------------------------------------------------------------------
    @property
    def channels(self) -> int:
        classes = len(self.manifest["classes"])
        return 1 if classes == 2 else classes

    @property
    def complete(self) -> bool:
        """Finalized, or every shard of a sharded prediction is in."""
        return bool(self.manifest.get("complete")) or bool(self.shards and self.shards.complete)

    def _index(self) -> list[list]:
        if self.manifest.get("complete"):
            return self.manifest["index"]
        return self.shards.index if self.shards and self.shards.complete else []

    def incomplete_reason(self) -> str:
        """Why the store is not complete, and what to run (one line, for error messages)."""
        state = self.shards
        if state is None:
            return "store is incomplete (interrupted predict); rerun 'pipeline predict'"
        parts = []
        if state.missing:
            parts.append(
                f"shard{'s' if len(state.missing) > 1 else ''} "
                f"{', '.join(f'{i}/{state.count}' for i in state.missing)} missing"
            )
        if state.foreign:
            parts.append(
                f"shard{'s' if len(state.foreign) > 1 else ''} "
                f"{', '.join(f'{i}/{state.count}' for i in state.foreign)} predicted "
                "with other models or settings than this store's manifest"
            )
        first = (state.missing or state.foreign)[0]
        return (
            f"{'; '.join(parts)}: run 'pipeline predict CONFIG --split test --shard "
            f"{first}/{state.count}' and copy that store folder's files in here"
        )

    def ids(self) -> list[str]:
        """Image ids in the store: the finalized (or all-shards) index, else the files present."""
        if self.complete:
            return [row[0] for row in self._index()]
        return sorted(
            p.name[: -len(self.suffix)]
            for p in self.path.glob(f"*{self.suffix}")
            if not p.name.startswith(".")
        )

    def shapes(self) -> dict[str, tuple[int, int]]:
        """Original (height, width) per image id (complete stores only)."""
        return {row[0]: (row[1], row[2]) for row in self._index()}

    def finalize(
        self, index: list[tuple[str, int, int]], extra: dict[str, Any] | None = None
    ) -> None:
        """Record the image index (id, original height, width) and mark the store complete."""
        missing = [i for i, _, _ in index if not self.has(i)]
        if missing:
            raise PipelineError(
                f"{self.path}: {len(missing)} images have no probabilities (first '{missing[0]}')"
            )
        os.sync()  # the entries reach the disk before the manifest says they are all there
        self.update_manifest(**(extra or {}), index=[list(row) for row in index], complete=True)

    def finalize_shard(self, shard: Shard, index: list[tuple[str, int, int]]) -> None:
        """Record that ``shard`` is done (its images' index);
        the store completes with its last shard."""
        missing = [i for i, _, _ in index if not self.has(i)]
        if missing:
            raise PipelineError(
                f"{self.path}: {len(missing)} images have no probabilities (first '{missing[0]}')"
            )
        os.sync()
        write_shard_file(self.path, shard, self.header, index)
        self.shards = shard_state(self.path, self.header)

    def __iter__(self) -> Iterator[tuple[str, np.ndarray]]:
        for image_id in self.ids():
            yield image_id, self.read(image_id)

    def check_against(self, expected: dict[str, tuple[int, int]]) -> None:
        """The store must hold exactly ``expected`` ids with these original shapes
        (clear error if not)."""
        if not self.complete:
            raise PipelineError(f"{self.path}: {self.incomplete_reason()}")
        shapes = self.shapes()
        missing, extra = sorted(set(expected) - set(shapes)), sorted(set(shapes) - set(expected))
        if missing:
            raise PipelineError(
                f"{self.path}: no probabilities for image '{missing[0]}' "
                f"(+{len(missing) - 1} more); the dataset changed "
                "— rerun 'pipeline predict --force'"
            )
        if extra:
            raise PipelineError(
                f"{self.path}: holds image '{extra[0]}' that the dataset does not have "
                f"(+{len(extra) - 1} more); rerun 'pipeline predict --force'"
            )
        for image_id, shape in expected.items():
            if tuple(shapes[image_id]) != tuple(shape):
                raise PipelineError(
                    f"{self.path}: image '{image_id}' was predicted at {shapes[image_id]} but is "
                    f"{tuple(shape)} in the dataset; rerun 'pipeline predict --force'"
                )
