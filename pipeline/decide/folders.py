"""What components read and write in a run's or an ensemble's folder, as protocols.

The layout (``pipeline.paths``) owns the folders and their file names; a stage opens one
(``Layout.run``, ``Layout.ensemble``, ``Layout.source``) and hands the object in, so no
component imports the layout. ``pipeline.paths.RunDir`` and ``EnsembleDir`` satisfy these
structurally.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol


class ResultFolder(Protocol):
    """A run's or an ensemble's folder (``pipeline.paths.ResultDir``)."""

    @property
    def path(self) -> Path: ...

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> str:
        """``"run"`` or ``"ensemble"``."""
        ...

    def config(self) -> Path: ...

    def store(self, split: str) -> Path: ...

    def thresholds(self) -> Path: ...

    def threshold_curve(self) -> Path: ...

    def decision(self) -> Path: ...

    def show_dir(self) -> Path: ...

    def exists(self) -> bool: ...


class RunFolder(ResultFolder, Protocol):
    """A run's folder (``pipeline.paths.RunDir``): its folds' checkpoints and summaries too."""

    def model(self, fold: int | str) -> Path:
        """The selected checkpoint of ``fold`` (a fold number or ``FULL``)."""
        ...

    def fold_summaries(self) -> list[Path]:
        """``summary.json`` of every fold folder present."""
        ...
