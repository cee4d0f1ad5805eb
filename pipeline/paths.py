"""The on-disk layout. No other module builds artifact paths.

All locations are relative to ``root`` (the working directory by default)::

    folds/<dataset>.csv, folds/<dataset>.config.yaml, folds/pseudo_r<R>.csv (+ .json provenance)
    artifacts/pseudo/r<R>/masks/<image_id>.png
    artifacts/runs/<run>/fold<k>/{model.pt, last.pt, history.csv, config.yaml}, full/ (same files)
    artifacts/runs/<run>/{oof,test}/, predict_report.json, thresholds.json, threshold_curve.png,
        report.html, show/<split>_<what>.png
    artifacts/ensembles/<name>/{oof,test}/, thresholds.json, qa/{qa.csv, groups.csv, oof.csv, calibration.json,
        index.html}, show/
    artifacts/cache/<dataset>/<HxW>/
    submissions/<name>.csv(.gz), submissions/<name>.json, submissions/ledger.csv
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Layout:
    """Where every stage reads and writes, below one project root."""

    root: Path = Path(".")

    @property
    def folds_dir(self) -> Path:
        return self.root / "folds"

    def folds_csv(self, dataset: str) -> Path:
        return self.folds_dir / f"{dataset}.csv"

    def folds_config(self, dataset: str) -> Path:
        return self.folds_dir / f"{dataset}.config.yaml"

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    def run_dir(self, run: str) -> Path:
        return self.artifacts / "runs" / run

    def fold_dir(self, run: str, fold: int) -> Path:
        return self.run_dir(run) / f"fold{fold}"

    def full_dir(self, run: str) -> Path:
        """The full-data refit of a run (``pipeline train --fold full``)."""
        return self.run_dir(run) / "full"

    def pseudo_table(self, round_: int) -> Path:
        return self.folds_dir / f"pseudo_r{round_}.csv"

    def pseudo_dir(self, round_: int) -> Path:
        return self.artifacts / "pseudo" / f"r{round_}"

    def ensemble_dir(self, name: str) -> Path:
        return self.artifacts / "ensembles" / name

    def cache_dir(self, dataset: str, height: int, width: int) -> Path:
        return self.artifacts / "cache" / dataset / f"{height}x{width}"

    @property
    def submissions(self) -> Path:
        return self.root / "submissions"
