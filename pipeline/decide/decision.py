"""The decision: how probabilities become masks, and ``decision.json``,
the one file that records it.

``pipeline tune`` writes a run's (and an ensemble's) ``decision.json``; ``pipeline ensemble`` writes
the decision it applied to the submission. Every consumer (ensemble writer, pseudo, summary, serve,
video, show, QA) reads it through ``read_decision``; nothing rebuilds it from ``thresholds.json``
(the full record of the search) or from a config.

Rules where nothing is decided yet: an untuned run binarises at 0.5 (binary) or takes the argmax
(multi-class), as ``predict`` scores it; an ensemble always has its file (``pipeline ensemble``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.decide.class_weights import weighted_argmax
from pipeline.decide.fingerprint import store_fingerprint
from pipeline.decide.folders import ResultFolder
from pipeline.decide.postprocess import clean
from pipeline.decide.store import ProbStore
from pipeline.errors import PipelineError
from pipeline.fsio import atomic_write_text, read_json
from pipeline.ops.rle import parse_rle, rle_encode, rle_encode_probs

DECISION_FORMAT = 1


@dataclass(frozen=True)
class Decision:
    """How fused probabilities become masks (binary tasks)."""

    threshold: float = 0.5
    min_area: float = 0
    cleanup: bool = False

    def mask(self, probs_u8: np.ndarray) -> np.ndarray:
        """(h, w) uint8 {0,1} from (h, w) uint8 probabilities: p > threshold, min area, clean-up."""
        mask = (probs_u8 > self.threshold * 255).astype(np.uint8)
        if self.cleanup and mask.any():
            mask = clean(mask)
        if self.min_area and np.count_nonzero(mask) < self.min_area:
            mask[:] = 0
        return mask

    def masks(self, probs_u8: np.ndarray) -> list[np.ndarray]:
        """One binary mask per foreground class, from (1, h, w) probabilities."""
        return [self.mask(probs_u8[0])]

    def rle(self, probs_u8: np.ndarray, order: str) -> str:
        """RLE of the decided mask straight from (h, w) probabilities: no mask array unless clean-up
        needs one; min area checked on the run lengths."""
        if self.cleanup:
            return rle_encode(self.mask(probs_u8), order)
        rle = rle_encode_probs(probs_u8, self.threshold, order)
        if self.min_area and rle and parse_rle(rle)[1].sum() < self.min_area:
            return ""
        return rle

    def label(self, probs_u8: np.ndarray) -> np.ndarray:
        return self.mask(probs_u8[0])


@dataclass(frozen=True)
class MulticlassDecision:
    """Exclusive classes: argmax of the fused probabilities. Multi-label (Severstal style): each
    class thresholded on its own (``thresholds``/``min_areas`` per class; class 0 is background)."""

    mode: str = "argmax"
    thresholds: tuple[float, ...] = ()
    min_areas: tuple[float, ...] = ()
    weights: tuple[
        float, ...
    ] = ()  # argmax: per-class probability weights (decide/class_weights.py)

    def label(self, probs_u8: np.ndarray) -> np.ndarray:
        """(h, w) uint8 class ids. Multi-label masks overlapping: the higher class id wins."""
        if self.mode == "argmax":
            return weighted_argmax(probs_u8, self.weights or None)
        label = np.zeros(probs_u8.shape[1:], np.uint8)
        for c, mask in enumerate(self.masks(probs_u8), start=1):
            label[mask.astype(bool)] = c
        return label

    def masks(self, probs_u8: np.ndarray) -> list[np.ndarray]:
        """One binary mask per foreground class 1..C-1."""
        if self.mode == "argmax":
            label = self.label(probs_u8)
            return [(label == c).astype(np.uint8) for c in range(1, probs_u8.shape[0])]
        out = []
        for c in range(1, probs_u8.shape[0]):
            mask = (probs_u8[c] > self.thresholds[c] * 255).astype(np.uint8)
            if self.min_areas[c] and np.count_nonzero(mask) < self.min_areas[c]:
                mask[:] = 0
            out.append(mask)
        return out


AnyDecision = Decision | MulticlassDecision


def to_dict(decision: AnyDecision) -> dict:
    """JSON-ready fields of a decision (``kind`` says which class)."""
    if isinstance(decision, Decision):
        return {
            "kind": "binary",
            "threshold": float(decision.threshold),
            "min_area": float(decision.min_area),
            "cleanup": bool(decision.cleanup),
        }
    return {
        "kind": "multiclass",
        "mode": decision.mode,
        "thresholds": [float(t) for t in decision.thresholds],
        "min_areas": [float(a) for a in decision.min_areas],
        "weights": [float(w) for w in decision.weights],
    }


def from_dict(data: Any) -> AnyDecision:
    """The decision of ``to_dict``'s output; ValueError/KeyError/TypeError on anything else."""
    if data["kind"] == "binary":
        return Decision(float(data["threshold"]), float(data["min_area"]), bool(data["cleanup"]))
    if data["kind"] == "multiclass" and data["mode"] in ("argmax", "threshold"):
        return MulticlassDecision(
            data["mode"],
            tuple(float(t) for t in data["thresholds"]),
            tuple(float(a) for a in data["min_areas"]),
            tuple(float(w) for w in data.get("weights", ())),
        )
    raise ValueError(f"unknown decision {data!r}")


def write_decision(
    folder: ResultFolder, decision: AnyDecision, made_by: str, inputs: dict | None = None, **extra
) -> None:
    """Write ``decision.json``: the decision, the command that made it and the fingerprints
    of its inputs."""
    record = {
        "format": DECISION_FORMAT,
        "decision": to_dict(decision),
        "made_by": made_by,
        "inputs": inputs or {},
        **extra,
    }
    atomic_write_text(folder.decision(), json.dumps(record, indent=2))


def read_record(folder: ResultFolder) -> dict:
    """The whole ``decision.json`` ({} when absent)."""
    return read_json(folder.decision(), _fix(folder), optional=True)


def _fix(folder: ResultFolder) -> str:
    if folder.kind == "run":
        return f"rerun 'pipeline tune --run {folder.name}'"
    return f"rerun 'pipeline ensemble' for '{folder.name}'"


def read_decision(folder: ResultFolder, multiclass: bool) -> AnyDecision:
    """The decision of a run or an ensemble folder: its ``decision.json``,
    or the untuned run's default."""
    record = read_record(folder)
    if not record:
        if folder.kind == "ensemble":
            raise PipelineError(f"{folder.decision()}: not found; {_fix(folder)}")
        if folder.thresholds().is_file():
            raise PipelineError(
                f"{folder.thresholds()}: tuned before decision.json existed; {_fix(folder)}"
            )
        return MulticlassDecision("argmax") if multiclass else Decision()
    try:
        decision = from_dict(record["decision"])
    except (KeyError, TypeError, ValueError) as err:
        raise PipelineError(
            f"{folder.decision()}: unreadable decision ({err}); {_fix(folder)}"
        ) from None
    _check_inputs(folder, record)
    if isinstance(decision, MulticlassDecision) != multiclass:
        raise PipelineError(
            f"{folder.decision()}: a {'binary' if multiclass else 'multi-class'} decision for a "
            f"{'multi-class' if multiclass else 'binary'} task; {_fix(folder)}"
        )
    return decision


def _check_inputs(folder: ResultFolder, record: dict) -> None:
    """A decision tuned on an OOF store that has changed since (predicted again) is stale:
    say so."""
    tuned_on = (record.get("inputs") or {}).get("oof")
    oof = folder.store("oof")
    if not tuned_on or not oof.is_dir():
        return
    if store_fingerprint(ProbStore.open(oof)) != tuned_on:
        raise PipelineError(
            f"{folder.decision()}: tuned on predictions in {oof} that have changed since; "
            f"{_fix(folder)}"
        )


@dataclass(frozen=True)
class Fixed:
    """The parts of a decision given in advance (None: searched on OOF). The search holds these
    fixed, so what it scores is what is applied."""

    threshold: float | None = None
    min_area: float | None = None
    cleanup: bool | None = None
    decision: str = (
        "auto"  # multi-class: auto/argmax (exclusive classes) or threshold (multi-label)
    )
    class_weights: str = "none"  # multi-class argmax: "tune" = per-class weights searched on OOF

    @classmethod
    def of(cls, config=None, cleanup: bool = True) -> Fixed:
        """From an ensemble config (``threshold`` / ``min_area`` / ``cleanup``, 'tune' = search it;
        None for a run: all searched) and the CLI's ``--no-cleanup`` (``cleanup=False``: clean-up
        off where the config leaves it to the search)."""
        if isinstance(config, Fixed):
            return config

        def given(key: str):
            value = "tune" if config is None else getattr(config, key)
            return None if value == "tune" else value

        clean = given("cleanup")
        return cls(
            None if given("threshold") is None else float(given("threshold")),
            None if given("min_area") is None else float(given("min_area")),
            (None if cleanup else False) if clean is None else bool(clean),
            "auto" if config is None else config.decision,
            "none" if config is None else getattr(config, "class_weights", "none"),
        )


def applied_decision(tuned: dict, multiclass: bool, fixed=None) -> AnyDecision:
    """The decision from a threshold search (``tuned``, as ``search_oof`` reports it) and, for an
    ensemble, what its config fixes (``fixed``: a ``Fixed`` or the config; 'tune' = the search's).

    A run's multi-class decision stays the argmax (what ``predict`` scores); its per-class
    thresholds are reported in ``thresholds.json`` only.
    """
    given = Fixed.of(fixed)

    def pick(key: str, value):
        return value if getattr(given, key) is None else getattr(given, key)

    if multiclass:
        if fixed is None or given.decision in ("auto", "argmax"):
            return MulticlassDecision("argmax")
        channels = tuned["channels"]
        return MulticlassDecision(
            "threshold",
            tuple(float(pick("threshold", c["threshold"])) for c in channels),
            tuple(float(pick("min_area", c["min_area"])) for c in channels),
        )
    return Decision(
        float(pick("threshold", tuned.get("threshold"))),
        float(pick("min_area", tuned.get("min_area"))),
        bool(pick("cleanup", tuned.get("cleanup"))),
    )
