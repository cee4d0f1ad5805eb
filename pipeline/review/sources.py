"""What ``show`` and ``qa`` read: a run's or an ensemble's folder, its data, and its mask decision.

A source is ``artifacts/runs/<run>/`` or ``artifacts/ensembles/<name>/`` (both hold ``config.yaml``,
``oof/``, ``test/`` and, once tuned, ``thresholds.json``). Its decision is the rule that turned its
probabilities into the submitted masks:

- a run: ``thresholds.json`` (binary: ``threshold``, ``min_area``, ``cleanup``) when tuned, else
  threshold 0.5 (what ``predict`` reports); multi-class runs: argmax (what ``predict`` scores);
- an ensemble: what ``ensemble.yaml`` fixed, with ``thresholds.json`` for the values set to
  ``tune`` (the same rule as ``pipeline.stages.ensemble.decide``); multi-class: argmax unless
  ``decision: threshold`` (per-class thresholds from ``thresholds.json``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.config import Config, load_config
from pipeline.config.schema import EnsembleConfig
from pipeline.data import Dataset, open_dataset
from pipeline.decide.blend import Decision, MulticlassDecision
from pipeline.decide.store import ProbStore
from pipeline.errors import PipelineError
from pipeline.fsio import read_json
from pipeline.output.masks import output_lut
from pipeline.paths import Layout
from pipeline.review.overlay import class_colours

AnyDecision = Decision | MulticlassDecision


def _thresholds(folder: Path) -> dict:
    path = folder / "thresholds.json"
    return read_json(path, "rerun 'pipeline tune'", optional=True)


def run_decision(folder: Path, multiclass: bool) -> AnyDecision:
    """A run's decision: its tuned ``thresholds.json`` (binary) or threshold 0.5; argmax if multi-class."""
    if multiclass:
        return MulticlassDecision("argmax")
    tuned = _thresholds(folder)
    return Decision(float(tuned.get("threshold", 0.5)), float(tuned.get("min_area", 0)),
                    bool(tuned.get("cleanup", False)))


def _tuned_value(tuned: dict, key: str, folder: Path):
    if key not in tuned:
        raise PipelineError(f"{folder / 'thresholds.json'}: no '{key}' although ensemble.yaml says 'tune'; "
                            "rerun 'pipeline ensemble'")
    return tuned[key]


def ensemble_decision(folder: Path, multiclass: bool) -> AnyDecision:
    """The decision ``pipeline ensemble`` applied, rebuilt from ``ensemble.yaml`` + ``thresholds.json``."""
    ecfg: EnsembleConfig = load_config(folder / "ensemble.yaml", schema=EnsembleConfig)
    tuned = _thresholds(folder)
    if multiclass:
        if ecfg.decision in ("auto", "argmax"):
            return MulticlassDecision("argmax")
        channels = _tuned_value(tuned, "channels", folder)
        return MulticlassDecision("threshold", tuple(c["threshold"] for c in channels),
                                  tuple(c["min_area"] for c in channels))
    pick = {key: _tuned_value(tuned, key, folder) if getattr(ecfg, key) == "tune" else getattr(ecfg, key)
            for key in ("threshold", "min_area", "cleanup")}
    return Decision(float(pick["threshold"]), float(pick["min_area"]), bool(pick["cleanup"]))


@dataclass
class Source:
    """A run or an ensemble, ready to read: config, dataset, decision and display colours."""

    name: str
    folder: Path
    cfg: Config
    dataset: Dataset
    decision: AnyDecision

    @property
    def multiclass(self) -> bool:
        return self.dataset.num_classes > 2

    @property
    def background(self) -> int:
        """The class that is not mask area (``folds.background``; 0 for binary tasks)."""
        return 0 if not self.multiclass else self.cfg.folds.background

    @property
    def skip(self) -> int | None:
        """The class left unpainted in overlays: binary background, or a class named 'background'."""
        if not self.multiclass:
            return 0
        return self.background if self.dataset.classes[self.background].lower() == "background" else None

    def colours(self) -> np.ndarray:
        lut = None if not self.multiclass else output_lut(self.dataset, "png-colour")
        return class_colours(self.dataset.num_classes, lut)

    def store(self, split: str) -> ProbStore:
        store = ProbStore.open(self.folder / split)
        if not store.complete:
            raise PipelineError(f"{store.path}: incomplete store; rerun 'pipeline predict' (or 'pipeline ensemble')")
        return store

    def label(self, probs_u8: np.ndarray) -> np.ndarray:
        """``(h, w)`` uint8 class ids (binary: {0, 1}) from ``(C, h, w)`` uint8 probabilities."""
        return self.decision.label(probs_u8)


def open_source(layout: Layout, run: str | None = None, ensemble: str | None = None) -> Source:
    """The run or ensemble folder (exactly one of ``run``/``ensemble``), with its dataset and decision."""
    folder = layout.source_dir(run, ensemble)
    cfg = load_config(folder / "config.yaml")
    dataset = open_dataset(cfg.dataset)
    multiclass = dataset.num_classes > 2
    decision = ensemble_decision(folder, multiclass) if ensemble else run_decision(folder, multiclass)
    return Source(run or ensemble, folder, cfg, dataset, decision)
