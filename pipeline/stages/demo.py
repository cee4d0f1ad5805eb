"""Stage: the demo recipe (``configs/recipe_demo.yaml``), with the demo data's size set on the CLI.

demo-data -> folds -> train (every resolution x fold) -> predict (OOF + test, hflip TTA) -> tune
each run -> ensemble the runs (fit weights, tune on fused OOF) -> validated submission.
``pipeline demo`` is ``pipeline run`` on this recipe; only the generated data's size can be changed
here. This module only prepares the recipe; the CLI hands it to the orchestrator
(``stages/run.py``).
"""

from __future__ import annotations

from pathlib import Path

from pipeline.config import load_recipe
from pipeline.config.recipe import DemoDataStep, Recipe
from pipeline.errors import PipelineError


def demo_recipe(
    path: Path,
    cars: int | None = None,
    views: int | None = None,
    test_cars: int | None = None,
    size: tuple[int, int] | None = None,
) -> Recipe:
    """The recipe at ``path`` with its demo-data step resized
    (options left None keep the recipe's)."""
    recipe = load_recipe(path)
    steps = [s for s in recipe.steps if isinstance(s, DemoDataStep)]
    if not steps:
        raise PipelineError(
            f"{path}: has no demo_data step; use 'pipeline run {path}' for other recipes"
        )
    changes = {
        "cars": cars,
        "views": views,
        "test_cars": test_cars,
        "size": list(size) if size else None,
    }
    for key, value in changes.items():
        if value is not None:
            setattr(steps[0], key, value)
    return recipe
