"""What ``show`` and ``qa`` read: a run's or an ensemble's folder, its data, and its mask decision.

A source is ``artifacts/runs/<run>/`` or ``artifacts/ensembles/<name>/`` (both hold ``config.yaml``,
``oof/``, ``test/`` and, once tuned or ensembled, ``decision.json``). Its decision is the rule that
turned its probabilities into masks, read through ``pipeline.decide.decision.read_decision``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.config import Config, load_config
from pipeline.data import Dataset, open_dataset
from pipeline.decide.decision import AnyDecision, read_decision
from pipeline.decide.folders import ResultFolder
from pipeline.decide.store import ProbStore
from pipeline.errors import PipelineError
from pipeline.ops.metrics import confusion_matrix, dice_score, mean_iou
from pipeline.output.masks import output_lut
from pipeline.review.overlay import class_colours


@dataclass
class Source:
    """A run or an ensemble, ready to read: config, dataset, decision and display colours."""

    name: str
    dir: ResultFolder  # the layout's RunDir or EnsembleDir, as the stage opened it
    cfg: Config
    dataset: Dataset
    decision: AnyDecision

    @property
    def folder(self) -> Path:
        return self.dir.path

    @property
    def multiclass(self) -> bool:
        return self.dataset.num_classes > 2

    @property
    def background(self) -> int:
        """The class that is not mask area (``folds.background``; 0 for binary tasks)."""
        return 0 if not self.multiclass else self.cfg.folds.background

    @property
    def skip(self) -> int | None:
        """The class left unpainted in overlays: binary background,
        or a class named 'background'."""
        if not self.multiclass:
            return 0
        return (
            self.background
            if self.dataset.classes[self.background].lower() == "background"
            else None
        )

    def colours(self) -> np.ndarray:
        lut = None if not self.multiclass else output_lut(self.dataset, "png-colour")
        return class_colours(self.dataset.num_classes, lut)

    def store(self, split: str) -> ProbStore:
        store = ProbStore.open(self.dir.store(split))
        if not store.complete:
            raise PipelineError(
                f"{store.path}: incomplete store; rerun 'pipeline predict' (or 'pipeline ensemble')"
            )
        return store

    def label(self, probs_u8: np.ndarray) -> np.ndarray:
        """``(h, w)`` uint8 class ids (binary: {0, 1}) from ``(C, h, w)`` uint8 probabilities."""
        return self.decision.label(probs_u8)


def open_source(folder: ResultFolder) -> Source:
    """The run or ensemble folder (exactly one of ``run``/``ensemble``),
    with its dataset and decision."""
    cfg = load_config(folder.config())
    dataset = open_dataset(cfg.dataset)
    return Source(folder.name, folder, cfg, dataset, read_decision(folder, dataset.num_classes > 2))


def image_score(source: Source, pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice of one image (binary; empty vs empty = 1) or its mIoU (multi-class);
    ignored pixels left out."""
    ignore = source.dataset.ignore_index
    if source.multiclass:
        return mean_iou(confusion_matrix(pred, truth, source.dataset.num_classes, ignore))
    keep = np.ones(truth.shape, bool) if ignore is None else truth != ignore
    return dice_score((pred != 0) & keep, (truth == 1) & keep)
