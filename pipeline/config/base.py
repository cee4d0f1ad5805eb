"""What every config section shares: unknown keys are errors, names are file-name safe."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot name a file or folder inside its parent (a run, an ensemble, a
    submission, a dataset), or None when it can. The one rule for config names and CLI names alike:
    a non-empty word without path separators, NUL or a leading '.',
    so '../x' and '/abs' never leave the folder."""
    if not isinstance(name, str) or not name:
        return "must be a non-empty name"
    if any(c in name for c in "/\\ \0") or name.startswith("."):
        return "must be a file-name-safe word (no '/', '\\', spaces or leading '.')"
    return None


def _safe_name(value: str) -> str:
    """Config names follow the one rule for names (``name_problem``, which the layout uses too)."""
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
