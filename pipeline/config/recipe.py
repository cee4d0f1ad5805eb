"""A recipe: the whole plan from data to submission in one YAML file (``pipeline run RECIPE``).

```yaml
name: carvana-lite0
steps:
  - folds: configs/carvana.yaml                    # folds/<dataset>.csv
  - train: configs/carvana_unet-lite0_bce-dice_256x384.yaml
    full: true                                     # + the full-data refit (--fold full)
  - ensemble: configs/ensemble_carvana_lite0.yaml  # fuse, decide, validated submission
  - pseudo: carvana-lite0                          # optional: pseudo-labels from that ensemble ...
    round: 1
  - train: configs/carvana_unet-lite0_pseudo.yaml  # ... and members retrained with them
```

Each step names the config of the stage it runs; ``set:`` adds overrides for that step, and the
``--set`` of ``pipeline run`` applies to every experiment config (folds and train steps), so the
same recipe runs on another copy of the data (``--set dataset.root=...``).
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from pydantic import Discriminator, Field, Tag

from pipeline.config.schema import SafeName, Section


class DemoDataStep(Section):
    """Generate the synthetic Carvana-layout demo dataset (skipped when it is already there)."""

    demo_data: str = Field(description="folder, e.g. data/demo")
    cars: int = Field(8, ge=2)
    views: int = Field(6, ge=1)
    test_cars: int = Field(1, ge=0)
    size: Annotated[list[int], Field(min_length=2, max_length=2)] = Field(
        default_factory=lambda: [480, 320], description="[width, height]"
    )
    seed: int = 0


class FoldsStep(Section):
    folds: str = Field(
        description="experiment config whose dataset and folds sections make folds/<dataset>.csv"
    )
    set: list[str] = Field(
        default_factory=list, description="extra KEY=VALUE overrides for this step"
    )


class TrainStep(Section):
    """Train every fold (and the full-data refit), predict OOF + test, tune each run."""

    train: str = Field(description="experiment config (one run per resolution)")
    full: bool = Field(False, description="also the full-data refit (pipeline train --fold full)")
    predict: bool = True
    tune: bool = True
    set: list[str] = Field(default_factory=list)


class EnsembleStep(Section):
    ensemble: str = Field(description="ensemble config")
    name: Optional[SafeName] = Field(
        None, description="submission and ensemble folder name (default: the ensemble's)"
    )
    members: Literal["config", "trained"] = Field(
        "config",
        description="the ensemble config's members, or every run this recipe trained so far",
    )
    set: list[str] = Field(default_factory=list)


# The pseudo rule's one default threshold (a recipe's pseudo step, `pipeline pseudo --tau`,
# PseudoRule): the demo's pseudo round (make pseudo-experiment) keeps images
# with under 15% uncertain pixels.
PSEUDO_TAU = 0.15


class PseudoStep(Section):
    pseudo: SafeName = Field(
        description="ensemble whose fused test predictions become pseudo-labels"
    )
    round: int = Field(ge=1)
    rule: Literal["band", "entropy"] = "band"
    tau: float = Field(PSEUDO_TAU, gt=0)
    lo: float = Field(0.1, ge=0, lt=1)
    hi: float = Field(0.9, gt=0, le=1)
    top_n: Optional[int] = Field(None, ge=1)
    soft: bool = False


STEP_KINDS = ("demo_data", "folds", "train", "ensemble", "pseudo")


def _step_kind(value) -> str | None:
    if isinstance(value, dict):
        return next((k for k in STEP_KINDS if k in value), None)
    return next((k for k in STEP_KINDS if hasattr(value, k)), None)


Step = Annotated[
    Union[
        Annotated[DemoDataStep, Tag("demo_data")],
        Annotated[FoldsStep, Tag("folds")],
        Annotated[TrainStep, Tag("train")],
        Annotated[EnsembleStep, Tag("ensemble")],
        Annotated[PseudoStep, Tag("pseudo")],
    ],
    Discriminator(
        _step_kind,
        custom_error_type="step_kind",
        custom_error_message=f"each step needs one of the keys {', '.join(STEP_KINDS)}",
    ),
]


class Recipe(Section):
    name: SafeName
    description: str = ""
    steps: list[Step] = Field(min_length=1)
