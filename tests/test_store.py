import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.decide.store import ProbStore, dequantize, quantize
from pipeline.errors import PipelineError

HEADER = {"run": "r", "split": "test", "folds": [0, 1], "tta": "hflip", "classes": ["bg", "car"],
          "checkpoints": {"0": "aa", "1": "bb"}, "resolution": "original"}


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
    forced = ProbStore.create(tmp_path / "s", {**HEADER, "checkpoints": {"0": "cc", "1": "bb"}}, force=True)
    assert forced.replaced == "--force"


def test_missing_and_foreign_stores(tmp_path):
    with pytest.raises(PipelineError, match="not a probability store"):
        ProbStore.open(tmp_path)
    store = ProbStore.create(tmp_path / "s", HEADER)
    with pytest.raises(PipelineError, match="no probabilities for image 'zz'"):
        store.read("zz")
    with pytest.raises(PipelineError, match="cannot name a store file"):
        store.write("../evil", np.zeros((1, 2, 2), np.uint8))
