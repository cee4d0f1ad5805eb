"""Probability-store codecs on real prediction maps: bytes and decode ms per 1918x1280 map.

Maps: the test and OOF stores of the trained runs under ``artifacts/runs`` (``--store`` to pick
others), read at the original size. Their model-resolution versions are the stored entries of a
format-2 store (``resolution: model``), or, for a format-1 store (full size only), the full map
area-downsampled to the run's resolution (the ``_HxW`` suffix of the run name): on the 256x384
Carvana run that approximation is within 1% of the real entries' size.

Candidates: zlib level 1 (store format 1), zstd levels 1 and 3, lz4, blosc2 (lz4 and zstd with
byte shuffle and delta filters; 1 thread; lz4 and blosc2 only when installed), each at full size
and at model size, where the decode time adds the one bilinear resize to 1918x1280 that a reader
does. Each codec decodes
every map ``--repeat`` times, interleaved with the others; each map counts with its fastest time.
The last lines compare what the ensemble's test pass does per image with 4 members: format 1
decodes 4 full-size zlib maps and fuses at full size; format 2 decodes 4 model-size zstd maps,
fuses them and resizes the fused map once.

    .venv/bin/python bench/store.py [--maps 32] [--repeat 5] [--store PATH ...]

Last line: ``ratio = <format-1 read+fuse ms / format-2 read+fuse+resize ms>`` per image (4 members).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import zstandard

from pipeline.decide import store_codec
from pipeline.decide.store import ProbStore
from pipeline.ops.fusion import fuse

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rle import cpu_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


try:  # candidates measured against the project's zstd; not project dependencies
    import lz4.block
except ImportError:
    lz4 = None
try:
    import blosc2
except ImportError:
    blosc2 = None


def _blosc(codec, filt):
    def enc(data: bytes) -> bytes:
        return blosc2.compress2(data, codec=codec, clevel=5, filters=[filt], typesize=1, nthreads=1)

    return enc, lambda blob: blosc2.decompress2(blob, nthreads=1)


def codecs() -> dict:
    z1, z3, dz = (
        zstandard.ZstdCompressor(level=1),
        zstandard.ZstdCompressor(level=3),
        zstandard.ZstdDecompressor(),
    )
    out = {
        "zlib-1 (format 1)": (lambda d: zlib.compress(d, 1), zlib.decompress),
        "zstd-1 (format 2)": (z1.compress, dz.decompress),
        "zstd-3": (z3.compress, dz.decompress),
    }
    if lz4 is not None:
        out["lz4"] = (lz4.block.compress, lz4.block.decompress)
    if blosc2 is not None:
        for codec in (blosc2.Codec.LZ4, blosc2.Codec.ZSTD):
            for filt in (blosc2.Filter.SHUFFLE, blosc2.Filter.DELTA):
                out[f"blosc2 {codec.name.lower()}+{filt.name.lower()}"] = _blosc(codec, filt)
    return out


def model_size(store: ProbStore) -> tuple[int, int] | None:
    match = re.search(r"_(\d+)x(\d+)$", str(store.manifest.get("run", "")))
    return (int(match.group(1)), int(match.group(2))) if match else None


def load_maps(paths: list[Path], n: int) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """(full-size maps, model-size maps, notes), up to ``n`` of each, binary stores only."""
    full, small, notes = [], [], []
    for path in paths:
        if len(full) >= n:
            break
        store = ProbStore.open(path)
        size = model_size(store)
        if store.channels != 1 or (store.version == 1 and size is None):
            continue
        ids = store.ids()[: max(0, n - len(full))]
        for image_id in ids:
            stored, original = store.read_stored(image_id)
            full.append(np.ascontiguousarray(store_codec.resize(stored, original)[0]))
            small.append(
                np.ascontiguousarray(stored[0])
                if stored.shape[1:] != tuple(original)
                else cv2.resize(full[-1], size[::-1], interpolation=cv2.INTER_AREA)
            )
        how = (
            "stored at model size"
            if store.version == 2
            else f"model size: area-downsampled to {size}"
        )
        notes.append(f"{len(ids)} maps from {path} (format {store.version}, {how})")
    return full, small, notes


def fastest(fns: dict, items: list, repeat: int) -> dict[str, float]:
    """ms per item: each item's fastest of ``repeat`` runs
    (functions interleaved, order rotating)."""
    best = {name: np.full(len(items), np.inf) for name in fns}
    names = list(fns)
    for r in range(repeat):
        for k, item in enumerate(items):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                start = time.perf_counter()
                fns[name](item)
                best[name][k] = min(best[name][k], time.perf_counter() - start)
    return {name: float(t.mean() * 1000) for name, t in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maps", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--store", type=Path, action="append", default=None)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    stores = args.store or sorted(
        p for p in (ROOT / "artifacts" / "runs").glob("*/test") if p.is_dir()
    ) + sorted(p for p in (ROOT / "artifacts" / "runs").glob("*/oof") if p.is_dir())
    full, small, notes = load_maps(stores, args.maps)
    if not full:
        raise SystemExit(
            "no binary probability store found: run 'pipeline predict' first, or pass --store PATH"
        )
    height, width = full[0].shape
    print(f"CPU: {cpu_model()}; one thread")
    print("\n".join(notes))
    missing = [name for name, module in (("lz4", lz4), ("blosc2", blosc2)) if module is None]
    if missing:
        print(
            f"not installed, not measured: {', '.join(missing)} (pip install {' '.join(missing)})"
        )
    print(
        f"{'codec':28s} {'size':>7s} {'KB/map':>8s} {'encode ms':>10s} {'decode ms':>10s} "
        f"{'+resize ms':>11s}"
    )
    resize = fastest(
        {"resize": lambda m: cv2.resize(m, (width, height), interpolation=cv2.INTER_LINEAR)},
        small,
        args.repeat,
    )["resize"]
    for name, (enc, dec) in codecs().items():
        for label, maps in (("full", full), ("model", small)):
            blobs = [enc(m.data) for m in maps]
            assert all(dec(b) == m.tobytes() for b, m in zip(blobs, maps, strict=True)), (
                f"{name} is not exact"
            )
            t_enc = fastest({"enc": lambda m: enc(m.data)}, maps, 2)["enc"]  # noqa: B023 (used right here)
            t_dec = fastest({"dec": dec}, blobs, args.repeat)["dec"]
            extra = f"{t_dec + resize:11.3f}" if label == "model" else f"{'':11s}"
            print(
                f"{name:28s} {label:>7s} {np.mean([len(b) for b in blobs]) / 1024:8.1f} "
                f"{t_enc:10.3f} {t_dec:10.3f} {extra}"
            )
    v1 = [zlib.compress(m.tobytes(), 1) for m in full]
    v2 = [store_codec.encode(m[None], (height, width)) for m in small]
    groups = [list(range(k, k + 4)) for k in range(0, len(full) - 3, 4)]
    weights = np.full(4, 0.25)

    def format1(group):
        fuse(
            [
                np.frombuffer(zlib.decompress(v1[k]), np.uint8).reshape(1, height, width)
                for k in group
            ],
            weights,
        )

    def format2(group):
        maps = [store_codec.decode(v2[k], 3)[0] for k in group]  # 3: 2 + a source key
        store_codec.resize(fuse(maps, weights), (height, width))

    t = fastest({"v1": format1, "v2": format2}, groups, args.repeat)
    print(
        f"per image, 4 members: format 1 read+fuse {t['v1']:.2f} ms; "
        f"format 2 read+fuse+resize {t['v2']:.2f} ms"
    )
    print(f"ratio = {t['v1'] / t['v2']:.2f}")


if __name__ == "__main__":
    main()
