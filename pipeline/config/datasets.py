"""The ``dataset`` section: one pydantic model per layout, told apart by ``layout``."""

from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from pydantic import Field, model_validator

from pipeline.config.base import SafeName, Section


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
    mask_name: str = Field(
        "{stem}.png", description="template with {stem} (image name without extension)"
    )
    test_dir: Optional[str] = None
    group_pattern: Optional[str] = Field(
        None,
        description="regex on the image stem; group 1 (or the whole match) is the group; "
        "none = stem",
    )
    mask_mode: Literal["binary", "index", "colour"] = "binary"
    classes: list[str] = ["background", "foreground"]
    ignore_index: Optional[int] = Field(
        None, ge=0, le=255, description="label value ignored in loss/metrics"
    )
    label_map: Optional[str] = Field(
        None,
        description="CSV source,class remapping label ids (index) or colours (colour) to classes",
    )
    snap_to_palette: bool = Field(
        False, description="colour masks: map unknown colours to the nearest one"
    )

    @model_validator(mode="after")
    def _check_classes(self) -> FolderData:
        if self.mask_mode == "binary" and len(self.classes) != 2:
            raise ValueError("mask_mode 'binary' needs exactly 2 classes (background, foreground)")
        if self.mask_mode == "colour" and not self.label_map:
            raise ValueError(
                "mask_mode 'colour' needs label_map: a CSV mapping each colour to a class"
            )
        if len(self.classes) < 2:
            raise ValueError("classes needs at least 2 names")
        if "{stem}" not in self.mask_name:
            raise ValueError("mask_name must contain '{stem}', e.g. '{stem}_mask.png'")
        return self


class Comma10kData(Section):
    """comma10k: ``imgs/*.png`` + colour ``masks/*.png`` (road #402020, lane markings #ff0000,
    undrivable #808060, movable #00ff66, my car #cc00ff, movable in my car #00ccff);
    group = dongle id + route."""

    layout: Literal["comma10k"] = "comma10k"
    name: SafeName
    root: str
    image_dir: str = "imgs"
    mask_dir: str = "masks"
    test_dir: Optional[str] = None
    group_pattern: Optional[str] = r"^\d+_([0-9a-f]+_[0-9-]+--[0-9-]+)"
    snap_to_palette: bool = Field(
        False, description="map anti-aliased/unknown colours to the nearest class colour"
    )
    classes: list[str] = [
        "road",
        "lane_markings",
        "undrivable",
        "movable",
        "my_car",
        "movable_in_my_car",
    ]


class CityscapesData(Section):
    """Cityscapes: ``leftImg8bit/<split>/<city>/*_leftImg8bit.png`` with
    ``gtFine/<split>/<city>/*_gtFine_labelIds.png``."""

    layout: Literal["cityscapes"] = "cityscapes"
    name: SafeName
    root: str
    train_splits: list[str] = ["train", "val"]
    test_split: Optional[str] = "test"
    label_map: str = Field(
        "trainids", description="trainids (19 classes, ignore 255), categories (8) or a CSV"
    )
    classes: Optional[list[str]] = Field(None, description="class names for a CSV label map")
    ignore_index: Optional[int] = Field(None, ge=0, le=255, description="for a CSV label map")


DatasetConfig = Annotated[
    Union[CarvanaData, FolderData, Comma10kData, CityscapesData], Field(discriminator="layout")
]
