"""The typed config: one pydantic model per YAML section; unknown keys are errors.

Paths in a config are relative to the working directory the command runs in (the repo root
for the shipped configs), like every other path the pipeline writes. The ``dataset`` sections (one
per layout) are in ``datasets.py``, the shared base in ``base.py``; both are re-exported here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from pydantic import Field, field_validator, model_validator

from pipeline.config import names
from pipeline.config.base import SafeName as SafeName
from pipeline.config.base import Section as Section
from pipeline.config.datasets import CarvanaData as CarvanaData
from pipeline.config.datasets import CityscapesData as CityscapesData
from pipeline.config.datasets import Comma10kData as Comma10kData
from pipeline.config.datasets import DatasetConfig as DatasetConfig
from pipeline.config.datasets import FolderData as FolderData


class FoldsConfig(Section):
    """K-fold split: StratifiedGroupKFold on groups, stratified by binned mask area."""

    k: int = Field(5, ge=2, description="number of folds")
    seed: int = 42
    area_bins: int = Field(4, ge=1, description="quantile bins of per-group mask area")
    background: int = Field(0, ge=0, description="class id that does not count as mask area")
    holdout_pattern: Optional[str] = Field(
        None,
        description="fnmatch on the image file name; matches = fold 0, the rest train-only (-1)",
    )


class NormalizationConfig(Section):
    mean: Annotated[list[float], Field(min_length=3, max_length=3)]
    std: Annotated[list[float], Field(min_length=3, max_length=3)]

    @field_validator("std")
    @classmethod
    def _positive(cls, value: list[float]) -> list[float]:
        if any(v <= 0 for v in value):
            raise ValueError("std values must be > 0")
        return value


class ModelConfig(Section):
    """Any segmentation-models-pytorch architecture and encoder, by name."""

    arch: Literal[names.ARCHS] = "Unet"
    encoder: str = "resnet34"
    encoder_weights: Optional[str] = Field(
        None,
        description="null (random init), 'imagenet' (downloads; online only), an offline source "
        "(efficientnet-lite0/1/2: weights inside an installed package) or a local weights file",
    )
    encoder_key_map: dict[str, str] = Field(
        default_factory=dict,
        description="local weights file: prefix renames, e.g. {'module.backbone.': ''}",
    )
    normalization: Optional[NormalizationConfig] = Field(
        None, description="input mean/std (0..1 scale); null = what the encoder weights expect"
    )
    kwargs: dict[str, Any] = Field(
        default_factory=dict, description="extra smp arguments, e.g. decoder_channels"
    )

    @field_validator("kwargs")
    @classmethod
    def _kwargs_the_arch_accepts(cls, value: dict[str, Any], info) -> dict[str, Any]:
        """Checked when the config loads: smp would hand an unknown name to the encoder,
        which drops it."""
        arch = info.data.get("arch")
        fixed = [k for k in value if k in names.ARCH_FIXED_ARGS]
        if fixed:
            raise ValueError(
                f"'{fixed[0]}' is not settable here: {names.ARCH_FIXED_ARGS[fixed[0]]}"
            )
        accepted = names.arch_kwargs(arch) if value and arch else None
        unknown = sorted(set(value) - set(accepted)) if accepted is not None else []
        if unknown:
            raise ValueError(
                f"{arch} does not accept '{unknown[0]}'; it accepts {', '.join(accepted)}"
            )
        return value


Resolution = Annotated[list[int], Field(min_length=2, max_length=2)]


def check_size(height: int, width: int, what: str) -> None:
    """Network sizes (inputs, crops) are positive multiples of 32 (the encoders' output stride)."""
    if height <= 0 or width <= 0 or height % 32 or width % 32:
        raise ValueError(f"{what} must be positive multiples of 32")


class AugmentConfig(Section):
    preset: Literal[names.AUGMENT_PRESETS] = Field("carvana", description="albumentations preset")
    crop: Optional[Resolution] = Field(
        None,
        description="[height, width]: train on random crops of this size (multiples of 32) taken "
        "from the padded network input; validation and prediction see whole images",
    )

    @field_validator("crop")
    @classmethod
    def _crop_multiple_of_32(cls, value: Optional[list[int]]) -> Optional[list[int]]:
        if value is not None:
            check_size(*value, f"{value}: crop height and width")
        return value


class LossConfig(Section):
    name: Literal[names.LOSSES] = Field(
        "bce_dice",
        description=f"binary: {', '.join(names.BINARY_LOSSES)}; multi-class: "
        f"{', '.join(names.MULTICLASS_LOSSES)}",
    )
    border_kernel: int = Field(
        41, ge=3, description="avg-pool window of the border weight map (odd)"
    )
    border_factor: float = Field(2.0, ge=0, description="extra weight of boundary pixels")
    class_balance: float = Field(
        0.0,
        ge=0,
        le=1,
        description="multi-class: weight each class's pixels by (median frequency / its "
        "frequency) ** this, counted on the fold's training masks (0 = off, 1 = SegNet's "
        "median frequency balancing, 0.5 = its square root); weights the cross-entropy terms",
    )

    @model_validator(mode="after")
    def _odd_kernel(self) -> LossConfig:
        if self.border_kernel % 2 == 0:
            raise ValueError("border_kernel must be odd")
        return self


class OptimConfig(Section):
    name: Literal["adam", "adamw", "rmsprop", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    momentum: float = Field(0.9, ge=0, description="sgd/rmsprop momentum")
    scheduler: Literal["none", "plateau", "cosine", "onecycle"] = "plateau"
    plateau_factor: float = Field(0.1, gt=0, lt=1)
    plateau_patience: int = Field(4, ge=0)
    min_lr: float = Field(1e-6, ge=0)
    encoder_lr_mult: float = Field(
        1.0,
        ge=0,
        description="encoder learning rate = lr x this (e.g. 0.1 to fine-tune a pretrained "
        "encoder gently)",
    )


class TrainConfig(Section):
    """One run per resolution; each run trains every fold."""

    resolutions: list[Resolution] = Field(
        default_factory=lambda: [[256, 256]],
        description="network input sizes [height, width], multiples of 32",
    )
    geometry: Literal["resize", "pad"] = "resize"
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(8, ge=1)
    accumulate: int = Field(1, ge=1, description="gradient accumulation steps")
    workers: int = Field(0, ge=0, description="DataLoader worker processes")
    early_stopping: Optional[int] = Field(
        None, ge=1, description="stop after this many epochs without gain"
    )
    ema: Optional[float] = Field(
        None, gt=0, lt=1, description="EMA decay of the weights (e.g. 0.99)"
    )
    swa_epochs: Optional[int] = Field(
        None,
        ge=1,
        description="SWA: the equal mean of the weights at the end of each of the last N epochs",
    )
    average: Literal["auto", "none", "ema", "swa"] = Field(
        "auto",
        description="the weights a fold keeps (model.pt): auto = swa if swa_epochs, else ema if "
        "ema, else none (the raw weights); every configured one is scored on the fold's "
        "validation images after the last epoch, for the OOF comparison",
    )
    precision: Literal[names.PRECISIONS] = Field(
        "auto",
        description="forward-pass precision: auto (bf16 on CPUs with native bf16 and on CUDA, "
        "fp16 + grad scaler on older GPUs, else fp32), fp32, bf16, fp16 (CUDA)",
    )
    amp: bool = Field(
        True, description="legacy switch: false forces fp32 (train.precision decides)"
    )
    channels_last: bool = Field(True, description="channels_last (NHWC) memory; also faster on CPU")
    threshold: float = Field(0.5, gt=0, lt=1, description="validation Dice threshold")
    select: Literal["best", "last"] = Field(
        "best", description="model.pt of a fold: the best validation epoch, or the last epoch"
    )
    full_epochs: Optional[int] = Field(
        None,
        ge=1,
        description="epochs of the full-data refit (--fold full); null = what CV chose: "
        "train.epochs with select last, the median best epoch of the finished folds "
        "with select best",
    )
    freeze_encoder_epochs: int = Field(
        0, ge=0, description="train only the decoder for this many first epochs"
    )
    freeze_encoder_bn: bool = Field(
        False,
        description="keep the encoder's BatchNorm statistics fixed "
        "(pretrained ones; small batches)",
    )
    seed: int = 42
    device: str = Field("auto", description="auto, cpu, cuda, cuda:1, ...")
    cache: bool = Field(
        True, description="decode+resize each image once per resolution to artifacts/cache"
    )

    @model_validator(mode="after")
    def _average_is_configured(self):
        chosen = self.average
        if chosen == "ema" and self.ema is None:
            raise ValueError(
                "train.average is ema but train.ema is not set: give a decay, e.g. 0.99"
            )
        if chosen == "swa" and self.swa_epochs is None:
            raise ValueError("train.average is swa but train.swa_epochs is not set: give N, e.g. 3")
        if self.swa_epochs is not None and self.swa_epochs > self.epochs:
            raise ValueError(
                f"train.swa_epochs ({self.swa_epochs}) is more than train.epochs ({self.epochs})"
            )
        return self

    @field_validator("resolutions")
    @classmethod
    def _multiple_of_32(cls, value: list[list[int]]) -> list[list[int]]:
        for h, w in value:
            check_size(h, w, f"[{h}, {w}]: height and width")
        if not value:
            raise ValueError("give at least one resolution")
        return value


class PredictConfig(Section):
    tta: Literal[names.TTA_MODES] = Field(
        "hflip", description="flip TTA, merged in probability space"
    )
    batch_size: int = Field(8, ge=1, description="images per loader batch")
    max_forward: Optional[int] = Field(
        None,
        ge=1,
        description="most images in one forward pass (TTA copies included); null = auto: "
        "all copies of a batch at once on CUDA, batch_size on CPU (bigger CPU batches run slower)",
    )
    workers: int = Field(0, ge=0, description="DataLoader worker processes for decoding")
    device: str = "auto"
    precision: Literal[names.PRECISIONS] = Field(
        "auto",
        description="inference precision: auto (bf16 where the CPU/GPU computes it natively, else "
        "fp32), fp32, bf16, fp16 (CUDA); probabilities are stored in fp32/uint8 either way",
    )
    test_from: Literal["folds", "full", "all"] = Field(
        "folds",
        description="test predictions from the fold models, "
        "the full-data refit (--fold full), or all",
    )


class PseudoConfig(Section):
    """Pseudo-labelled images (fold -1 rows of a pseudo table) mixed into training."""

    table: Optional[str] = Field(
        None, description="pseudo table, e.g. folds/pseudo_r1.csv (made by pipeline pseudo)"
    )
    mode: Literal["batch", "weight"] = Field(
        "batch",
        description="batch: a fixed share of every batch; weight: all pseudo images, loss-weighted",
    )
    ratio: float = Field(
        0.2, gt=0, lt=1, description="share of each batch that is pseudo-labelled (mode batch)"
    )
    weight: float = Field(
        0.5, gt=0, le=1, description="loss weight of a pseudo image (mode weight)"
    )


class Config(Section):
    """A whole experiment config."""

    name: SafeName = "experiment"
    dataset: DatasetConfig
    folds: FoldsConfig = FoldsConfig()
    model: ModelConfig = ModelConfig()
    augment: AugmentConfig = AugmentConfig()
    loss: LossConfig = LossConfig()
    optim: OptimConfig = OptimConfig()
    train: TrainConfig = TrainConfig()
    predict: PredictConfig = PredictConfig()
    pseudo: PseudoConfig = PseudoConfig()

    @model_validator(mode="after")
    def _crop_fits(self) -> Config:
        crop = self.augment.crop
        for h, w in self.train.resolutions if crop else []:
            if crop[0] > h or crop[1] > w:
                raise ValueError(
                    f"augment.crop {crop} is larger than train.resolutions entry [{h}, {w}]; "
                    "crop to at most the network input size"
                )
        return self

    def run_names(self) -> list[str]:
        """One run per resolution: ``<name>_<H>x<W>``."""
        return [f"{self.name}_{h}x{w}" for h, w in self.train.resolutions]


class MemberConfig(Section):
    run: SafeName = Field(description="run name: artifacts/runs/<run> with oof/ and test/ stores")
    weight: float = Field(1.0, ge=0, description="used when weights: fixed")


class EnsembleConfig(Section):
    """Fuse runs (any architecture/resolution), threshold, encode, write a submission."""

    name: SafeName
    members: list[MemberConfig] = Field(min_length=1)
    weights: Literal["equal", "fixed", "fit"] = "equal"
    fit_grid: list[Annotated[float, Field(ge=0)]] = Field(
        default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0],
        min_length=1,
        description="candidate weights (>= 0) per member for weights: fit",
    )
    fit_rounds: int = Field(2, ge=1, description="coordinate-ascent rounds for weights: fit")
    fusion: Literal["mean", "gmean"] = "mean"
    threshold: Union[Literal["tune"], float] = Field(
        "tune", description="'tune' (on fused OOF) or a fixed value"
    )
    min_area: Union[Literal["tune"], Annotated[float, Field(ge=0)]] = Field(
        "tune", description="'tune' or a fixed pixel count (>= 0)"
    )
    cleanup: Union[Literal["tune"], bool] = Field(
        "tune", description="largest component + fill holes"
    )
    decision: Literal["auto", "argmax", "threshold"] = Field(
        "auto",
        description="multi-class: argmax (exclusive classes) or per-class threshold/min_area "
        "(multi-label)",
    )
    class_weights: Literal["none", "tune"] = Field(
        "none",
        description="multi-class argmax: per-class probability weights tuned on fused OOF mIoU "
        "(thin/rare classes raised; kept only when OOF mIoU rises)",
    )
    format: Literal[names.FORMATS] = Field(
        "carvana", description="carvana, severstal (CSV); png-index, png-colour, cityscapes (PNGs)"
    )
    gzip: bool = False
    workers: int = Field(2, ge=0, description="worker processes over test images (0 = in-process)")
    save_test_store: bool = Field(
        True, description="also write the fused test probabilities (for pseudo-labels)"
    )
    qa: bool = Field(
        True, description="prediction QA report of the test set (needs save_test_store)"
    )

    @field_validator("threshold")
    @classmethod
    def _threshold_range(cls, value):
        if not isinstance(value, str) and not 0 <= value < 1:
            raise ValueError("threshold must be in [0, 1) or 'tune'")
        return value
