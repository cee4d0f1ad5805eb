"""What every config section shares: unknown keys are errors, names are file-name safe."""
from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict


def _safe_name(value: str) -> str:
    if not value or any(c in value for c in "/\\ ") or value.startswith("."):
        raise ValueError("must be a non-empty file-name-safe word (no '/', spaces or leading '.')")
    return value


SafeName = Annotated[str, AfterValidator(_safe_name)]


class Section(BaseModel):
    """Base for every config section: unknown keys are errors, values are type-checked."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
