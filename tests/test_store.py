import json
import shutil
import struct
import zlib

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.decide import store_codec
from pipeline.decide.store import ProbStore, dequantize, quantize
from pipeline.decide.store_shards import Shard, parse_shard, shard_of
from pipeline.errors import PipelineError

HEADER = {
    "run": "r",
    "split": "test",
    "folds": [0, 1],
    "tta": "hflip",
    "classes": ["bg", "car"],
    "checkpoints": {"0": "aa", "1": "bb"},
    "resolution": "original",
}


@given(st.integers(1, 9), st.integers(1, 9), st.integers(0, 2**31 - 1))
@settings(max_examples=30, deadline=None)
def test_quantisation_error_bound(h, w, seed):
    probs = np.random.default_rng(seed).random((1, h, w))
    assert np.abs(dequantize(quantize(probs)) - probs).max() <= 1 / 510 + 1e-9


def test_round_trip_binary_and_multichannel(tmp_path):
    rng = np.random.default_rng(0)
    store = ProbStore.create(tmp_path / "s", HEADER)
    probs = rng.integers(0, 256, (1, 5, 7), dtype=np.uint8)
    store.write("a_01", probs)
    np.testing.assert_array_equal(ProbStore.open(tmp_path / "s").read("a_01"), probs)
    multi = ProbStore.create(tmp_path / "m", {**HEADER, "classes": ["a", "b", "c"]})
    probs3 = rng.integers(0, 256, (3, 5, 7), dtype=np.uint8)
    multi.write("x", probs3)
    np.testing.assert_array_equal(multi.read("x"), probs3)
    with pytest.raises(ValueError, match="channels"):
        multi.write("y", probs)


def test_finalize_index_and_check_against(tmp_path):
    store = ProbStore.create(tmp_path / "s", HEADER)
    store.write("a", np.zeros((1, 4, 6), np.uint8))
    store.write("b", np.zeros((1, 4, 6), np.uint8))
    with pytest.raises(PipelineError, match="incomplete"):
        store.check_against({"a": (4, 6)})
    store.finalize([("a", 4, 6), ("b", 40, 60)])
    store = ProbStore.open(tmp_path / "s")
    assert store.complete and store.ids() == ["a", "b"]
    store.check_against({"a": (4, 6), "b": (40, 60)})
    with pytest.raises(PipelineError, match="no probabilities for image 'c'"):
        store.check_against({"a": (4, 6), "b": (40, 60), "c": (4, 6)})
    with pytest.raises(PipelineError, match="holds image 'b' that the dataset does not have"):
        store.check_against({"a": (4, 6)})
    with pytest.raises(PipelineError, match="image 'b' was predicted at"):
        store.check_against({"a": (4, 6), "b": (41, 60)})


def test_reopen_resumes_same_header_and_replaces_stale(tmp_path):
    store = ProbStore.create(tmp_path / "s", HEADER)
    store.write("a", np.zeros((1, 2, 3), np.uint8))
    again = ProbStore.create(tmp_path / "s", HEADER)
    assert again.has("a") and again.replaced is None
    stale = ProbStore.create(tmp_path / "s", {**HEADER, "checkpoints": {"0": "cc", "1": "bb"}})
    assert not stale.has("a") and "checkpoints" in stale.replaced
    forced = ProbStore.create(
        tmp_path / "s", {**HEADER, "checkpoints": {"0": "cc", "1": "bb"}}, force=True
    )
    assert forced.replaced == "--force"


def test_missing_and_foreign_stores(tmp_path):
    with pytest.raises(PipelineError, match="not a probability store"):
        ProbStore.open(tmp_path)
    store = ProbStore.create(tmp_path / "s", HEADER)
    with pytest.raises(PipelineError, match="no probabilities for image 'zz'"):
        store.read("zz")
    with pytest.raises(PipelineError, match="cannot name a store file"):
        store.write("../evil", np.zeros((1, 2, 2), np.uint8))


# ---- format 2: zstd entries, model resolution, format 1 still read -------------------------------
@given(
    st.integers(1, 3),
    st.integers(1, 17),
    st.integers(1, 17),
    st.integers(0, 2**31 - 1),
    st.booleans(),
)
@settings(max_examples=40, deadline=None)
def test_codec_round_trips_exactly_at_the_stored_size(channels, h, w, seed, smaller):
    probs = np.random.default_rng(seed).integers(0, 256, (channels, h, w), dtype=np.uint8)
    original = (2 * h + 1, 3 * w) if smaller else (h, w)
    stored, size = store_codec.decode(store_codec.encode(probs, original, b"k" * (seed % 17)), 3)
    np.testing.assert_array_equal(stored, probs)
    assert size == original
    restored = store_codec.resize(stored, original)
    assert restored.shape == (channels, *original) and restored.dtype == np.uint8


def test_model_resolution_entries_read_at_the_original_size(tmp_path):
    rng = np.random.default_rng(3)
    probs = rng.random((1, 24, 36)).astype(np.float32)  # a network's output, smaller than the image
    store = ProbStore.create(tmp_path / "s", HEADER)
    store.write("a", quantize(probs), (64, 97))
    assert (tmp_path / "s" / "a.u8zst").is_file()
    small, original = store.read_stored("a")
    np.testing.assert_array_equal(small, quantize(probs))
    assert original == (64, 97)
    full = store.read("a")
    assert full.shape == (1, 64, 97)
    # what predict wrote before format 2: the float map resized, then quantised;
    # at most one level apart
    float_resized = cv2.resize(probs[0], (97, 64), interpolation=cv2.INTER_LINEAR)
    assert np.abs(full[0].astype(int) - quantize(float_resized).astype(int)).max() <= 1


def _write_v1(folder, entries: dict, complete: bool = True):
    folder.mkdir(parents=True)
    index = [[i, *p.shape[1:]] for i, p in entries.items()]
    manifest = {
        "format": "segfuse-store-1",
        **HEADER,
        "complete": complete,
        **({"index": index} if complete else {}),
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    for image_id, probs in entries.items():
        head = struct.pack("<4sIII", b"U8Z1", *probs.shape)
        (folder / f"{image_id}.u8z").write_bytes(head + zlib.compress(probs.tobytes(), 1))


def test_version1_store_still_reads_and_a_rewrite_converts_it(tmp_path):
    rng = np.random.default_rng(1)
    entries = {
        "a": rng.integers(0, 256, (1, 5, 7), dtype=np.uint8),
        "b": rng.integers(0, 256, (1, 6, 4), dtype=np.uint8),
    }
    _write_v1(tmp_path / "old", entries)
    old = ProbStore.open(tmp_path / "old")
    assert old.complete and old.ids() == ["a", "b"] and old.version == 1
    for image_id, probs in entries.items():
        np.testing.assert_array_equal(old.read(image_id), probs)
    with pytest.raises(PipelineError, match="read-only"):
        old.write("c", entries["a"])
    new = ProbStore.create(
        tmp_path / "old", HEADER
    )  # same header: a resume, but the format changed
    assert "format segfuse-store-1 -> segfuse-store-3" in new.replaced and new.ids() == []


def test_unknown_format_and_corrupt_entries_are_one_line_errors(tmp_path):
    store = ProbStore.create(tmp_path / "s", HEADER)
    store.write("a", np.zeros((1, 4, 4), np.uint8))
    (tmp_path / "s" / "a.u8zst").write_bytes(b"U8S2" + b"\0" * 30)
    with pytest.raises(PipelineError, match="corrupt store entry"):
        store.read("a")
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    (tmp_path / "s" / "manifest.json").write_text(
        json.dumps({**manifest, "format": "segfuse-store-9"})
    )
    with pytest.raises(PipelineError, match="unknown store format 'segfuse-store-9'") as err:
        ProbStore.open(tmp_path / "s")
    assert "\n" not in str(err.value)


# ---- shards -------------------------------------------------------------------------------------
@given(st.lists(st.text(min_size=1, max_size=12), max_size=60, unique=True), st.integers(1, 16))
@settings(max_examples=60, deadline=None)
def test_shards_cover_every_test_id_exactly_once(ids, count):
    owners = {i: [k for k in range(1, count + 1) if Shard(k, count).holds(i)] for i in ids}
    assert all(len(o) == 1 for o in owners.values())
    assert all(
        shard_of(i, count) == owners[i][0] for i in ids
    )  # by the id alone, whatever the list


def test_shard_of_is_pinned_by_the_id_alone():
    # crc32, not Python's hash(): the same answer on every machine and in every process
    assert [shard_of(f"0a0e3fb8f782_{i:02d}", 4) for i in range(1, 9)] == [2, 4, 2, 3, 1, 3, 1, 2]


@pytest.mark.parametrize(
    "text, shard", [("1/4", Shard(1, 4)), (" 4 / 4 ", Shard(4, 4)), ("1/1", Shard(1, 1))]
)
def test_parse_shard(text, shard):
    assert parse_shard(text) == shard


@pytest.mark.parametrize("text", ["0/4", "5/4", "4", "a/b", "1/0", "-1/2", ""])
def test_parse_shard_rejects(text):
    with pytest.raises(PipelineError, match="expected i/N"):
        parse_shard(text)


def _sharded(tmp_path, count: int, done: list[int], header=HEADER):
    """A test store of 20 images predicted in ``count`` shards, of which ``done`` finished (each in
    its own folder, as on separate machines), copied into one folder."""
    ids = [f"car{i:02d}_01" for i in range(20)]
    merged = tmp_path / "merged"
    for k in done:
        machine = ProbStore.create(tmp_path / f"machine{k}", header)
        mine = [i for i in ids if Shard(k, count).holds(i)]
        for i in mine:
            machine.write(i, np.full((1, 3, 4), k, np.uint8))
        machine.finalize_shard(Shard(k, count), [(i, 3, 4) for i in mine])
        shutil.copytree(machine.path, merged, dirs_exist_ok=True)
    return ids, merged


def test_store_is_complete_only_when_every_shard_is_in(tmp_path):
    ids, merged = _sharded(tmp_path, 3, [1, 3])
    store = ProbStore.open(merged)
    assert not store.complete
    reason = store.incomplete_reason()
    assert "shard 2/3 missing" in reason and "--shard 2/3" in reason
    with pytest.raises(PipelineError, match="shard 2/3 missing"):
        store.check_against({i: (3, 4) for i in ids})
    ids, merged = _sharded(tmp_path / "all", 3, [1, 2, 3])
    store = ProbStore.open(merged)
    assert store.complete and store.ids() == sorted(ids)
    store.check_against({i: (3, 4) for i in ids})
    assert all(store.read(i)[0, 0, 0] == shard_of(i, 3) for i in ids)


def test_a_shard_predicted_with_other_models_does_not_complete_the_store(tmp_path):
    _, merged = _sharded(tmp_path, 2, [1, 2])
    other = {**HEADER, "checkpoints": {"0": "zz", "1": "bb"}}
    (merged / "shard-2-of-2.json").write_text(
        json.dumps({**json.loads((merged / "shard-2-of-2.json").read_text()), "header": other})
    )
    store = ProbStore.open(merged)
    assert not store.complete and "2/2 predicted with other models" in store.incomplete_reason()
