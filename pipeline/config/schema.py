"""The typed config: one pydantic model per YAML section; unknown keys are errors.

Paths in a config are relative to the working directory the command runs in (the repo root
for the shipped configs), like every other path the pipeline writes.
"""
from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator


def _safe_name(value: str) -> str:
    if not value or any(c in value for c in "/\\ ") or value.startswith("."):
        raise ValueError("must be a non-empty file-name-safe word (no '/', spaces or leading '.')")
    return value


SafeName = Annotated[str, AfterValidator(_safe_name)]


class Section(BaseModel):
    """Base for every config section: unknown keys are errors, values are type-checked."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class CarvanaData(Section):
    """Kaggle Carvana layout: ``train/<car>_<NN>.jpg``, ``train_masks/<car>_<NN>_mask.gif``
    (or ``train_masks.csv`` RLE), ``test/*.jpg``, ``sample_submission.csv``; group = car id."""

    layout: Literal["carvana"] = "carvana"
    name: SafeName = Field(description="dataset name; folds go to folds/<name>.csv")
    root: str
    classes: list[str] = ["background", "car"]


class FolderData(Section):
    """Generic image folder + mask folder; mask name from a template, group from a regex."""

    layout: Literal["folder"] = "folder"
    name: SafeName
    root: str
    image_dir: str = "images"
    mask_dir: str = "masks"
    image_glob: str = "*.png"
    mask_name: str = Field("{stem}.png", description="template with {stem} (image name without extension)")
    test_dir: Optional[str] = None
    group_pattern: Optional[str] = Field(
        None, description="regex on the image stem; group 1 (or the whole match) is the group; none = stem"
    )
    mask_mode: Literal["binary", "index"] = "binary"
    classes: list[str] = ["background", "foreground"]
    ignore_index: Optional[int] = Field(None, ge=0, le=255, description="label value ignored in loss/metrics")

    @model_validator(mode="after")
    def _check_classes(self) -> FolderData:
        if self.mask_mode == "binary" and len(self.classes) != 2:
            raise ValueError("mask_mode 'binary' needs exactly 2 classes (background, foreground)")
        if len(self.classes) < 2:
            raise ValueError("classes needs at least 2 names")
        if "{stem}" not in self.mask_name:
            raise ValueError("mask_name must contain '{stem}', e.g. '{stem}_mask.png'")
        return self


DatasetConfig = Annotated[Union[CarvanaData, FolderData], Field(discriminator="layout")]


class FoldsConfig(Section):
    """K-fold split: StratifiedGroupKFold on groups, stratified by binned mask area."""

    k: int = Field(5, ge=2, description="number of folds")
    seed: int = 42
    area_bins: int = Field(4, ge=1, description="quantile bins of per-group mask area")
    background: int = Field(0, ge=0, description="class id that does not count as mask area")
    holdout_pattern: Optional[str] = Field(
        None, description="fnmatch on the image file name; matches = fold 0, the rest train-only (-1)"
    )


class Config(Section):
    """A whole experiment config."""

    name: SafeName = "experiment"
    dataset: DatasetConfig
    folds: FoldsConfig = FoldsConfig()
