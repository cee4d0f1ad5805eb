"""Test-store shards: ``pipeline predict --split test --shard i/N`` on N machines or GPUs.

Image ``id`` belongs to shard ``crc32(id) % N + 1``: fixed by the id alone (the same on every
machine, whatever order or subset of images it lists), and every id is in exactly one shard.
A machine that finishes its shard writes ``<store>/shard-<i>-of-<N>.json`` (the store header it
predicted with and its images' index). Copy the store folders of all machines into one (entries
and shard files have distinct names; the manifests are the same): the store is complete when the
shard files 1..N of one N are all there, predicted with the header of the store's manifest.
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError
from pipeline.fsio import atomic_write_text

_NAME = re.compile(r"^shard-(\d+)-of-(\d+)\.json$")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def file_name(self) -> str:
        return f"shard-{self.index}-of-{self.count}.json"

    def holds(self, image_id: str) -> bool:
        return shard_of(image_id, self.count) == self.index


def parse_shard(text: str) -> Shard:
    """``"i/N"`` with 1 <= i <= N -> Shard; a one-line PipelineError otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise PipelineError(f"--shard {text!r}: expected i/N with 1 <= i <= N, e.g. --shard 1/4")
    return Shard(int(match.group(1)), int(match.group(2)))


def shard_of(image_id: str, count: int) -> int:
    """The shard (1..count) that holds ``image_id``."""
    return zlib.crc32(image_id.encode("utf-8")) % count + 1


def write_shard_file(
    folder: Path, shard: Shard, header: dict[str, Any], index: list[tuple[str, int, int]]
) -> None:
    body = {
        "shard": shard.index,
        "of": shard.count,
        "header": header,
        "index": [list(row) for row in index],
    }
    atomic_write_text(folder / shard.file_name, json.dumps(body))


@dataclass
class ShardState:
    """What the shard files of a store say: ``index`` when complete, else what is missing."""

    complete: bool
    index: list[list] | None = None
    count: int | None = None
    missing: list[int] | None = None
    foreign: list[int] | None = (
        None  # shards predicted with another header (other checkpoints, TTA, ...)
    )


def shard_state(folder: Path, header: dict[str, Any]) -> ShardState | None:
    """The shard files in ``folder`` (None when there are none)."""
    by_count: dict[int, dict[int, dict]] = {}
    for path in sorted(folder.glob("shard-*-of-*.json")):
        match = _NAME.match(path.name)
        if match:
            body = json.loads(path.read_text(encoding="utf-8"))
            by_count.setdefault(int(match.group(2)), {})[int(match.group(1))] = body
    if not by_count:
        return None
    for count, shards in sorted(by_count.items()):
        own = {i for i, body in shards.items() if body.get("header") == header}
        if own >= set(range(1, count + 1)):
            rows = sorted(row for i in own for row in shards[i]["index"])
            return ShardState(True, rows, count)
    count, shards = max(by_count.items(), key=lambda item: len(item[1]))
    foreign = sorted(i for i, body in shards.items() if body.get("header") != header)
    return ShardState(False, None, count, sorted(set(range(1, count + 1)) - set(shards)), foreign)
