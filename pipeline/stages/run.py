"""Stage: execute a recipe (``pipeline run RECIPE``), step by step, resumable.

The orchestrator: the one stage module that calls other stages' entry points (``write_demo``,
``run_folds``, ``run_train``, ``run_predict``, ``run_tune``, ``run_ensemble``, ``run_pseudo``), in
the order the recipe lists them, as their commands would. Other stages call components only.

Every step calls one stage, which is resumable on its own: finished folds are reused when their
fingerprint (config + fold images) matches, stores resume image by image, folds are recomputed
only when the dataset/folds config changed. So a killed ``pipeline run`` continues where it stopped.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.config import dump_config, load_config, load_recipe
from pipeline.config.recipe import (
    DemoDataStep,
    EnsembleStep,
    FoldsStep,
    PseudoStep,
    Recipe,
    TrainStep,
)
from pipeline.config.schema import EnsembleConfig
from pipeline.errors import PipelineError
from pipeline.paths import Layout


@dataclass
class RunOutcome:
    """What a recipe produced: the runs it trained, the ensembles and submissions it wrote."""

    runs: list[str] = field(default_factory=list)
    ensembles: list[str] = field(default_factory=list)
    submissions: list[dict] = field(default_factory=list)
    pseudo_tables: list[str] = field(default_factory=list)


_CONFIG_KEY = {FoldsStep: "folds", TrainStep: "train", EnsembleStep: "ensemble"}


@contextlib.contextmanager
def _no_progress(_description: str, _total: int | None):
    yield lambda n=1: None


def _config_path(value: str, recipe_path: Path, key: str) -> Path:
    """Config paths are relative to the working directory (like every path);
    say which step is wrong."""
    path = Path(value)
    if not path.is_file():
        raise PipelineError(
            f"{recipe_path}: step '{key}: {value}': config file not found (paths are relative to "
            "the working directory, e.g. configs/...)"
        )
    return path


def _members_override(members: list[str]) -> tuple[str, ...]:
    """The ``--set`` that makes an ensemble's members the runs trained so far
    (``members: trained``)."""
    return ("members=[" + ", ".join(f"{{run: {run}}}" for run in members) + "]",)


def check_steps(recipe: Recipe, path: Path, overrides: tuple[str, ...] = ()) -> None:
    """Load and validate every step's config as its step will (its ``set:`` and, for experiment
    configs, ``overrides`` applied), before the first step spends any time: a typo in the last
    step's config fails now, not after hours of training. One line naming the recipe
    and the step."""
    trained: list[str] = []
    for i, step in enumerate(recipe.steps, 1):
        key = _CONFIG_KEY.get(type(step))
        if not key:
            continue
        config = _config_path(getattr(step, key), path, key)
        where = f"{path}: step {i} ({key}: {config})"
        if isinstance(step, EnsembleStep) and step.members == "trained" and not trained:
            raise PipelineError(
                f"{where}: members: trained, but no train step comes before it; add one"
            )
        try:
            if isinstance(step, EnsembleStep):
                extra = _members_override(trained) if step.members == "trained" else ()
                load_config(config, (*extra, *step.set), schema=EnsembleConfig)
            else:
                cfg = load_config(config, (*overrides, *step.set))
                trained.extend(
                    r for r in cfg.run_names() if isinstance(step, TrainStep) and r not in trained
                )
        except PipelineError as err:
            raise PipelineError(f"{where}: {str(err).removeprefix(f'{config}: ')}") from None


def _demo_data(step: DemoDataStep, log) -> None:
    from pipeline.stages.demo_data import DemoSpec, write_demo

    root = Path(step.demo_data)
    if (root / "sample_submission.csv").is_file():
        log(f"demo data: reusing {root}")
        return
    spec = DemoSpec(
        cars=step.cars,
        views=step.views,
        test_cars=step.test_cars,
        size=tuple(step.size),
        seed=step.seed,
    )
    info = write_demo(root, spec)
    log(f"demo data: {info['train']} labelled + {info['test']} test images in {root}")


def _folds(step: FoldsStep, path: Path, overrides: tuple[str, ...], layout: Layout, log) -> None:
    from pipeline.stages.folds import run_folds

    cfg = load_config(path, (*overrides, *step.set))
    table, config = layout.folds_csv(cfg.dataset.name), layout.folds_config(cfg.dataset.name)
    if (
        table.is_file()
        and config.is_file()
        and config.read_text(encoding="utf-8") == dump_config(cfg)
    ):
        log(f"folds: reusing {table} (same dataset and folds config)")
        return
    _, rows = run_folds(cfg, layout)
    log(f"folds: wrote {table} ({len(rows)} images)")


def _train(
    step: TrainStep,
    path: Path,
    overrides: tuple[str, ...],
    layout: Layout,
    log,
    progress_for,
    reporter_for,
) -> list[str]:
    from pipeline.stages.predict import run_predict
    from pipeline.stages.train import FULL, run_train
    from pipeline.stages.tune import run_tune

    cfg = load_config(path, (*overrides, *step.set))
    # The K fold models always train: their out-of-fold predictions decide threshold, min area and
    # clean-up, also for a full-data refit, which has no held-out images of its own.
    for r in run_train(cfg, layout, "all", reporter_for=reporter_for):
        log(
            f"train {r.run} fold {r.fold}: score {r.best_score:.4f} at epoch {r.best_epoch}"
            f"{' (done before)' if r.skipped else f' ({r.seconds:.0f}s)'}"
        )
    if step.full:
        for r in run_train(cfg, layout, FULL, reporter_for=reporter_for):
            log(
                f"train {r.run} full-data refit: "
                f"{r.epochs} epochs{' (done before)' if r.skipped else ''}"
            )
    if step.predict:
        for report in run_predict(cfg, layout, "all", "both", progress_for=progress_for):
            if report.oof:
                log(
                    f"predict {report.run}: OOF {report.oof['metric']} {report.oof['score']:.5f} "
                    f"(TTA {report.tta}), test {report.test_images} images"
                )
    if step.tune and step.predict:
        for run in cfg.run_names():
            run_tune(layout, run=run)
    return cfg.run_names()


def _ensemble(
    step: EnsembleStep, path: Path, layout: Layout, log, progress_for, members: list[str] | None
) -> dict:
    from pipeline.stages.ensemble import run_ensemble
    from pipeline.stages.qa import run_qa

    extra = ()
    if members is not None:
        if not members:
            raise PipelineError(
                f"{path}: members: trained, but no train step ran before this ensemble step"
            )
        extra = _members_override(members)
    out = run_ensemble(
        path,
        (*extra, *step.set),
        layout,
        step.name,
        overwrite=True,
        progress_for=progress_for,
        review=run_qa,
    )
    oof = "-" if out.get("oof_dice") is None else f"{out['oof_dice']:.5f}"
    board = out.get("estimated_score")
    estimate = f", estimated test {board['mean']:.4f} ± {board['half_width']:.4f}" if board else ""
    log(
        f"ensemble {out['ensemble']}: OOF {out.get('metric', 'dice')} {oof}{estimate}; "
        f"wrote {out['path']} ({out['rows']} rows, validated)"
    )
    return out


def _pseudo(step: PseudoStep, layout: Layout, log) -> str:
    from pipeline.decide.pseudo_labels import PseudoRule
    from pipeline.stages.pseudo import run_pseudo

    rule = PseudoRule(step.rule, step.tau, step.lo, step.hi, step.top_n)
    # Recomputed every time (cheap): the table always reflects the ensemble as it is now.
    out = run_pseudo(layout, step.pseudo, step.round, rule, step.soft, force=True)
    log(
        f"pseudo round {step.round}: {out['selected']} of {out['candidates']} test images -> "
        f"{out['table']}"
    )
    return str(out["table"])


def run_recipe(
    path: Path,
    overrides: tuple[str, ...] = (),
    layout: Layout | None = None,
    log=print,
    progress_for=None,
    reporter_for=None,
    recipe: Recipe | None = None,
) -> RunOutcome:
    """Execute every step of the recipe at ``path`` (or ``recipe``, loaded from there) in order;
    ``overrides`` apply to every experiment config."""
    layout = layout or Layout()
    progress_for = progress_for or _no_progress
    recipe = recipe or load_recipe(path)
    check_steps(recipe, path, overrides)
    outcome = RunOutcome()
    for i, step in enumerate(recipe.steps, 1):
        log(f"[{i}/{len(recipe.steps)}] {type(step).__name__.removesuffix('Step').lower()}")
        if isinstance(step, DemoDataStep):
            _demo_data(step, log)
        elif isinstance(step, FoldsStep):
            _folds(step, _config_path(step.folds, path, "folds"), overrides, layout, log)
        elif isinstance(step, TrainStep):
            runs = _train(
                step,
                _config_path(step.train, path, "train"),
                overrides,
                layout,
                log,
                progress_for,
                reporter_for,
            )
            outcome.runs.extend(r for r in runs if r not in outcome.runs)
        elif isinstance(step, EnsembleStep):
            members = outcome.runs if step.members == "trained" else None
            out = _ensemble(
                step,
                _config_path(step.ensemble, path, "ensemble"),
                layout,
                log,
                progress_for,
                members,
            )
            outcome.ensembles.append(out["ensemble"])
            outcome.submissions.append(out)
        elif isinstance(step, PseudoStep):
            outcome.pseudo_tables.append(_pseudo(step, layout, log))
    return outcome
