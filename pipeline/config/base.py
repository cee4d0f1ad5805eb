"""What every config section shares: unknown keys are errors, names are file-name safe."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict

from pipeline.paths import name_problem


def _safe_name(value: str) -> str:
    """Config names follow the layout's one rule for names (``pipeline.paths.name_problem``)."""
    problem = name_problem(value)
    if problem:
        raise ValueError(problem)
    return value


SafeName = Annotated[str, AfterValidator(_safe_name)]


class Section(BaseModel):
    """Base for every config section: unknown keys are errors, values are type-checked, and no
    number is NaN or infinite (YAML's ``.nan`` / ``.inf`` would pass every ``ge``/``le`` bound
    unnoticed)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)
