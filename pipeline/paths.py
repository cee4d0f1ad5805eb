"""The on-disk layout, file names included. No other module spells an artifact's path or name.

All locations are relative to ``root`` (the working directory by default)::

    folds/<dataset>.csv, folds/<dataset>.config.yaml, folds/pseudo_r<R>.csv (+ .json provenance)
    artifacts/pseudo/r<R>/masks/<image_id>.png
    artifacts/runs/<run>/fold<k>/{model.pt, last.pt, history.csv, config.yaml}, full/ (same files)
    artifacts/runs/<run>/{oof,test}/, config.yaml, predict_report.json, thresholds.json,
        decision.json, threshold_curve.png, report.html, show/<split>_<what>.png
    artifacts/ensembles/<name>/{oof,test}/, ensemble.yaml, config.yaml, thresholds.json,
        decision.json, qa/{qa.csv, groups.csv, oof.csv, calibration.json, index.html}, show/
    artifacts/cache/<dataset>/<HxW>/<geometry mode>/
    submissions/<name>.csv(.gz), submissions/<name>.json, submissions/ledger.csv
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.config.base import name_problem
from pipeline.config.names import FULL  # the full-data refit's key and folder (--fold full)
from pipeline.errors import PipelineError

SPLITS = ("oof", "test")


def check_name(name: str, what: str) -> str:
    """``name`` if it names something inside its folder, else a PipelineError naming ``what``."""
    problem = name_problem(name)
    if problem:
        raise PipelineError(
            f"{what} {name!r}: {problem}; it names a folder inside artifacts/ or submissions/"
        )
    return name


@dataclass(frozen=True)
class FoldDir:
    """``artifacts/runs/<run>/fold<k>/`` (or ``full/``): one trained model and its history."""

    path: Path

    def model(self) -> Path:
        """The selected checkpoint (best or last epoch): what predict, serve and video load."""
        return self.path / "model.pt"

    def last(self) -> Path:
        """The resume checkpoint of the last completed epoch."""
        return self.path / "last.pt"

    def history(self) -> Path:
        return self.path / "history.csv"

    def curve(self) -> Path:
        return self.path / "curve.png"

    def config(self) -> Path:
        return self.path / "config.yaml"

    def summary(self) -> Path:
        """Written last: a fold with it is finished."""
        return self.path / "summary.json"


@dataclass(frozen=True)
class ResultDir:
    """A run's or an ensemble's folder: resolved config, probability stores, tuned decision,
    pictures."""

    path: Path
    name: str

    kind = "run"

    def config(self) -> Path:
        return self.path / "config.yaml"

    def store(self, split: str) -> Path:
        if split not in SPLITS:
            raise ValueError(f"split {split!r} is not one of {SPLITS}")
        return self.path / split

    def thresholds(self) -> Path:
        """The full record of the threshold search (``pipeline tune``): per class, per fold,
        curves."""
        return self.path / "thresholds.json"

    def threshold_curve(self) -> Path:
        return self.path / "threshold_curve.png"

    def decision(self) -> Path:
        """The one decision artifact: how this folder's probabilities become masks."""
        return self.path / "decision.json"

    def show_dir(self) -> Path:
        return self.path / "show"

    def exists(self) -> bool:
        return self.config().is_file()


@dataclass(frozen=True)
class RunDir(ResultDir):
    """``artifacts/runs/<run>/``."""

    def fold(self, fold: int | str) -> FoldDir:
        """``fold<k>/``, or ``full/`` for ``FULL``."""
        return FoldDir(self.path / (FULL if fold == FULL else f"fold{fold}"))

    def model(self, fold: int | str) -> Path:
        return self.fold(fold).model()

    def fold_summaries(self) -> list[Path]:
        """``summary.json`` of every ``fold<k>/`` folder present (sorted by name; not ``full/``)."""
        return [FoldDir(p).summary() for p in sorted(self.path.glob("fold*"))]

    def predict_report(self) -> Path:
        return self.path / "predict_report.json"

    def report_html(self) -> Path:
        return self.path / "report.html"


@dataclass(frozen=True)
class EnsembleDir(ResultDir):
    """``artifacts/ensembles/<name>/``."""

    kind = "ensemble"

    def ensemble_config(self) -> Path:
        return self.path / "ensemble.yaml"

    def qa_dir(self) -> Path:
        return self.path / "qa"


@dataclass(frozen=True)
class Layout:
    """Where every stage reads and writes, below one project root."""

    root: Path = Path(".")

    @property
    def folds_dir(self) -> Path:
        return self.root / "folds"

    def folds_csv(self, dataset: str) -> Path:
        return self.folds_dir / f"{check_name(dataset, 'dataset')}.csv"

    def folds_config(self, dataset: str) -> Path:
        return self.folds_dir / f"{check_name(dataset, 'dataset')}.config.yaml"

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    def run_dir(self, run: str) -> Path:
        return self.artifacts / "runs" / check_name(run, "run")

    def run(self, run: str) -> RunDir:
        return RunDir(self.run_dir(run), run)

    def fold_dir(self, run: str, fold: int | str) -> Path:
        return self.run(run).fold(fold).path

    def full_dir(self, run: str) -> Path:
        """The full-data refit of a run (``pipeline train --fold full``)."""
        return self.fold_dir(run, FULL)

    def pseudo_table(self, round_: int) -> Path:
        return self.folds_dir / f"pseudo_r{round_}.csv"

    def pseudo_dir(self, round_: int) -> Path:
        return self.artifacts / "pseudo" / f"r{round_}"

    def ensemble_dir(self, name: str) -> Path:
        return self.artifacts / "ensembles" / check_name(name, "ensemble")

    def ensemble(self, name: str) -> EnsembleDir:
        return EnsembleDir(self.ensemble_dir(name), name)

    def source(self, run: str | None, ensemble: str | None) -> RunDir | EnsembleDir:
        """The folder of a run or an ensemble (exactly one of them),
        which must hold its config.yaml."""
        if bool(run) == bool(ensemble):
            raise PipelineError("give exactly one of --run RUN or --ensemble NAME")
        folder = self.run(run) if run else self.ensemble(ensemble)
        if not folder.exists():
            what = f"run '{run}'" if run else f"ensemble '{ensemble}'"
            raise PipelineError(
                f"{folder.path}: {what} not found (no config.yaml); train/ensemble it first"
            )
        return folder

    def source_dir(self, run: str | None, ensemble: str | None) -> Path:
        return self.source(run, ensemble).path

    def cache_dir(self, dataset: str, geometry) -> Path:
        """The array cache of one dataset at one geometry (its height, width and mode)."""
        size = f"{geometry.height}x{geometry.width}"
        return self.artifacts / "cache" / check_name(dataset, "dataset") / size / geometry.mode

    @property
    def submissions(self) -> Path:
        return self.root / "submissions"

    def ledger(self) -> Path:
        """One row per written submission."""
        return self.submissions / "ledger.csv"
