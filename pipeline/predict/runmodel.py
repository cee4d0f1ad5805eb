"""One trained run as a single-image segmenter: every fold model loaded once, images in, masks out.

``RunModel`` is what the video and HTTP front ends share. It reads a run folder laid out by
``pipeline train`` (its ``RunDir``) and predicts the mean of the same models as
``pipeline predict`` does for the test store (``predict.test_from``: fold models, full-data refit,
or both): fit to the checkpoint's geometry (resize, or scale + pad bottom/right), optional flip TTA
merged in probability space, restore the original size.
The decision is the run's ``decision.json`` (``pipeline tune``: threshold, min area, clean-up), read
through ``pipeline.decide.decision.read_decision``: untuned binary runs use 0.5,
multi-class runs the argmax.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from pipeline.config import Config, load_config
from pipeline.config.names import FULL
from pipeline.decide.decision import AnyDecision, read_decision
from pipeline.decide.folders import RunFolder
from pipeline.decide.store import quantize
from pipeline.errors import PipelineError
from pipeline.model.augment import Geometry, resize_image
from pipeline.model.networks import load_trained
from pipeline.model.task import make_task
from pipeline.predict.engine import Predictor, make_geometry
from pipeline.train.dist import resolve_device


def expected_folds(cfg: Config) -> list[int]:
    """Folds a finished run has: fold 0 only for a fixed holdout, else 0..k-1."""
    return [0] if cfg.folds.holdout_pattern else list(range(cfg.folds.k))


def load_decision(folder: RunFolder, multiclass: bool) -> tuple[AnyDecision, str]:
    """The run's decision and where it came from (its ``decision.json``; else ``default``, or
    ``argmax`` for multi-class runs)."""
    decision = read_decision(folder, multiclass)
    if folder.decision().is_file():
        return decision, str(folder.decision())
    return decision, "argmax" if multiclass else "default"


def test_models(cfg: Config, folder: RunFolder, folds: list[int]) -> dict:
    """The checkpoints whose mean predicts unseen images (``predict.test_from``), by fold or FULL.

    ``pipeline predict`` (the test store), ``serve`` and ``video`` all predict with this set.
    """
    paths: dict = {}
    if cfg.predict.test_from in ("folds", "all"):
        paths.update({k: folder.model(k) for k in folds})
    if cfg.predict.test_from in ("full", "all"):
        full = folder.model(FULL)
        if not full.is_file():
            raise PipelineError(
                f"{full}: predict.test_from is '{cfg.predict.test_from}' but the full-data refit "
                "is not trained yet; run 'pipeline train CONFIG --fold full'"
            )
        paths[FULL] = full
    missing = [p for p in paths.values() if not p.is_file()]
    if missing:
        raise PipelineError(
            f"{missing[0]}: fold not trained yet ({len(missing)} of {len(paths)} missing); "
            f"run 'pipeline train {folder.config()}' first"
        )
    return paths


def _load_models(paths: dict, device: torch.device) -> tuple[list, dict]:
    """Every chosen ``model.pt`` (``test_models`` checked they exist);
    all must agree on geometry and classes."""
    models, first = [], None
    for path in paths.values():
        model, payload = load_trained(path, device)
        meta = {key: payload[key] for key in ("resolution", "geometry", "classes")}
        if first is not None and meta != first:
            raise PipelineError(
                f"{path}: resolution/geometry/classes differ from {next(iter(paths.values()))}; "
                "retrain the run with 'pipeline train --force'"
            )
        models.append(model)
        first = first or meta
    return models, first


def check_images(images: Sequence[np.ndarray]) -> None:
    """Raise PipelineError unless every image is an (H, W, 3) uint8 RGB array."""
    for i, image in enumerate(images):
        if (
            not isinstance(image, np.ndarray)
            or image.dtype != np.uint8
            or image.ndim != 3
            or image.shape[2] != 3
        ):
            shape = getattr(image, "shape", None)
            raise PipelineError(
                f"image {i}: expected an (H, W, 3) uint8 RGB array, got shape {shape} dtype "
                f"{getattr(image, 'dtype', type(image).__name__)}; convert it to RGB uint8 first"
            )


@dataclass
class RunModel:
    """The mean of a run's fold models plus its geometry, task, classes and decision."""

    run: str
    classes: list[str]
    geometry: Geometry
    predictor: Predictor
    decision: AnyDecision
    decision_source: str
    config: Config
    folds: list[int] = field(default_factory=list)
    tta: str = "none"
    batch_size: int = 8

    @classmethod
    def load(
        cls,
        folder: RunFolder,
        device: str = "auto",
        tta: str = "none",
        batch_size: int = 8,
        precision: str | None = None,
    ) -> RunModel:
        """Load ``artifacts/runs/<run>``: config, every fold's ``model.pt`` (once) and the decision.

        Raises:
            PipelineError: unknown run, an untrained fold, unknown TTA, device or precision.
            ``precision`` None: the run's ``predict.precision``.
        """
        run = folder.name
        if not folder.exists():
            raise PipelineError(
                f"{folder.path}: run '{run}' not found (no config.yaml); train it with "
                f"'pipeline train CONFIG' (runs are named <name>_<H>x<W>)"
            )
        if batch_size < 1:
            raise PipelineError(f"--batch {batch_size}: give a batch size of at least 1")
        cfg = load_config(folder.config())
        folds = expected_folds(cfg)
        try:
            torch_device = resolve_device(device)
        except RuntimeError as err:
            raise PipelineError(f"device {device!r}: {err}; use auto, cpu or cuda") from None
        models, meta = _load_models(test_models(cfg, folder, folds), torch_device)
        classes = list(meta["classes"])
        task = make_task(classes, None)
        decision, source = load_decision(folder, task.multiclass)
        predictor = Predictor(
            models,
            task,
            tta,
            torch_device,
            batch_size=batch_size,
            precision=precision or cfg.predict.precision,
        )
        return cls(
            run,
            classes,
            make_geometry(meta),
            predictor,
            decision,
            source,
            cfg,
            folds,
            tta,
            batch_size,
        )

    @property
    def multiclass(self) -> bool:
        """True for softmax runs (C = len(classes) channels), False for binary (C = 1 channel)."""
        return self.predictor.task.multiclass

    @property
    def channels(self) -> int:
        return len(self.classes) if self.multiclass else 1

    def _batch(self, images: Sequence[np.ndarray]) -> dict:
        """The Predictor's batch: fitted + padded uint8 (N, 3, H, W), fitted and original sizes."""
        pad = self.geometry.pad()
        tensors, fitted, original = [], [], []
        for image in images:
            size = self.geometry.fitted(*image.shape[:2])
            padded = pad(image=resize_image(image, size))["image"]
            tensors.append(torch.from_numpy(np.ascontiguousarray(padded.transpose(2, 0, 1))))
            fitted.append(size)
            original.append(image.shape[:2])
        return {
            "image": torch.stack(tensors),
            "fitted": torch.tensor(fitted),
            "original": torch.tensor(original),
        }

    def predict(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Probabilities of each image, in batches of ``batch_size``.

        Args:
            images: (H, W, 3) uint8 RGB arrays; sizes may differ.

        Returns:
            One float32 (C, H, W) array in [0, 1] per image at its own size: C = 1 (foreground
            probability) for binary runs, C = len(classes) softmax channels for multi-class runs.
        """
        check_images(images)
        out: list[np.ndarray] = []
        for start in range(0, len(images), self.batch_size):
            batch = self._batch(images[start : start + self.batch_size])
            out.extend(probs for probs, _ in self.predictor(batch))
        return out

    def label(self, probs: np.ndarray) -> np.ndarray:
        """(H, W) uint8 class ids from (C, H, W) probabilities: {0, 1} binary, 0..C-1 multi-class.

        Probabilities are quantised to uint8 first, as in the stores, so the rule is the same one
        ``pipeline ensemble`` applies (p > threshold, min area, clean-up; or argmax).
        """
        if probs.ndim != 3 or probs.shape[0] != self.channels:
            raise PipelineError(
                f"probs: expected ({self.channels}, H, W) for run '{self.run}', got {probs.shape}"
            )
        return self.decision.label(quantize(probs))

    def segment(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """``label(predict(...))`` for each image: (H, W) uint8 class ids."""
        return [self.label(probs) for probs in self.predict(images)]
