"""Train one fold: epochs of (accumulated, mixed-precision where it pays) steps, validation at
original size, best/last checkpoints, resume from ``last.pt``, early stopping, EMA.

The loop writes only inside the fold directory it is given; progress goes to a ``reporter``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from pipeline.errors import PipelineError
from pipeline.model import checkpoint
from pipeline.model.augment import restore_size
from pipeline.model.precision import resolve_precision
from pipeline.train.averaging import WeightAverages
from pipeline.train.data import ArrayCache, SegmentationSet
from pipeline.train.dist import DistContext, has_unused_parameters
from pipeline.train.optim import Scheduler, build_optimizer, current_lr


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    val_loss: float
    val_dice: float  # binary: mean per-image Dice; multi-class: mean per-class Dice
    lr: float
    seconds: float
    img_per_s: float
    val_score: float | None = None  # the task's primary metric (Dice, or mIoU for multi-class)
    extra: dict = field(default_factory=dict)  # multi-class: miou, acc, ce, per-class iou

    def __post_init__(self):
        if self.val_score is None:
            self.val_score = self.val_dice


class Reporter(Protocol):
    def start_epoch(self, epoch: int, epochs: int, steps: int) -> None: ...
    def step(self, images: int, loss: float) -> None: ...
    def end_epoch(self, record: EpochRecord, best: bool) -> None: ...


class SilentReporter:
    def start_epoch(self, epoch, epochs, steps):
        pass

    def step(self, images, loss):
        pass

    def end_epoch(self, record, best):
        pass


def config_hash(config_dict: dict) -> str:
    return hashlib.sha1(json.dumps(config_dict, sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class FoldSetup:
    """Everything one fold needs, built by the stage."""

    cfg: object  # the validated Config
    run: str
    fold: int
    last_path: Path  # the resume checkpoint of the last completed epoch (the layout's last.pt)
    model_path: Path  # the selected checkpoint, best or last epoch (the layout's model.pt)
    model: torch.nn.Module
    loss_fn: Callable
    task: object
    train_set: SegmentationSet
    val_set: SegmentationSet
    cache: ArrayCache
    device: torch.device
    ctx: DistContext
    batch_sampler: object = (
        None  # e.g. MixedBatchSampler; None = shuffled DistributedSampler batches
    )
    fingerprint: str = ""  # config + fold images; a resume must match it


class FoldTrainer:
    def __init__(self, setup: FoldSetup, reporter: Reporter | None = None):
        self.s, self.reporter = setup, reporter or SilentReporter()
        tcfg = setup.cfg.train
        self.tcfg = tcfg
        self.cuda = setup.device.type == "cuda"
        self.precision = resolve_precision(
            tcfg.precision if tcfg.amp else "fp32", setup.device, "train.precision"
        )
        self.model = setup.model.to(setup.device)
        if (
            tcfg.channels_last
        ):  # NHWC: faster on CUDA and, for depthwise convs (EfficientNet), on CPU too
            self.model = self.model.to(memory_format=torch.channels_last)
        self.net = self.model
        if setup.ctx.enabled:
            geometry = setup.cache.geometry
            self.net = DistributedDataParallel(
                self.model,
                device_ids=[setup.device] if self.cuda else None,
                find_unused_parameters=has_unused_parameters(
                    self.model, geometry.height, geometry.width
                ),
            )
        if setup.batch_sampler is not None:
            self.sampler = setup.batch_sampler
            self.loader = DataLoader(
                setup.train_set,
                batch_sampler=self.sampler,
                num_workers=tcfg.workers,
                pin_memory=self.cuda,
                persistent_workers=False,
            )
        else:
            self.sampler = DistributedSampler(
                setup.train_set,
                num_replicas=setup.ctx.world,
                rank=setup.ctx.rank,
                shuffle=True,
                seed=tcfg.seed,
                drop_last=False,
            )
            self.loader = DataLoader(
                setup.train_set,
                batch_size=tcfg.batch_size,
                sampler=self.sampler,
                num_workers=tcfg.workers,
                pin_memory=self.cuda,
                drop_last=False,
                persistent_workers=False,
            )
        self.optimizer = build_optimizer(self.model, setup.cfg.optim)
        steps = -(-len(self.loader) // tcfg.accumulate)
        self.scheduler = Scheduler(self.optimizer, setup.cfg.optim, tcfg.epochs, steps)
        self.scaler = torch.amp.GradScaler(setup.device.type, enabled=self.precision.needs_scaler)
        self.averages = WeightAverages(self.model, tcfg, tcfg.epochs)
        self.history: list[EpochRecord] = []
        self.best, self.bad_epochs, self.start_epoch = -1.0, 0, 1
        self.cfg_dict = setup.cfg.model_dump(mode="json")

    # ---- checkpoints -------------------------------------------------------------------------
    def _eval_model(self) -> torch.nn.Module:
        return self.averages.kept_model(self.model)

    def _meta(self) -> dict:
        s = self.s
        h, w = s.cache.geometry.height, s.cache.geometry.width
        return {
            "config": self.cfg_dict,
            "run": s.run,
            "fold": s.fold,
            "resolution": [h, w],
            "geometry": s.cache.geometry.mode,
            "classes": s.cache.dataset.classes,
            "normalization": self.model.normalization.to_dict(),
            "precision": self.precision.name,
        }

    def _save_last(self, epoch: int) -> None:
        checkpoint.save(
            self.s.last_path,
            {
                **self._meta(),
                "epoch": epoch,
                "config_hash": self.s.fingerprint or config_hash(self.cfg_dict),
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(),
                **self.averages.state_dict(),  # "ema", "swa"
                "best": self.best,
                "bad_epochs": self.bad_epochs,
                "rng": checkpoint.rng_state(),
                "history": [asdict(r) for r in self.history],
            },
        )

    def _save_best(self, record: EpochRecord) -> None:
        checkpoint.save(
            self.s.model_path,
            {
                **self._meta(),
                "epoch": record.epoch,
                "val_dice": record.val_dice,
                "val_score": record.val_score,
                "state_dict": self._eval_model().state_dict(),
            },
        )

    def resume(self) -> bool:
        """Load ``last.pt`` if present; returns True if training continues from it."""
        path = self.s.last_path
        if not path.is_file():
            return False
        state = checkpoint.load(path)
        if state.get("config_hash") != (self.s.fingerprint or config_hash(self.cfg_dict)):
            raise PipelineError(
                f"{path}: was trained with a different config; rerun with --force to start over"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.averages.load_state_dict(state)
        self.best, self.bad_epochs = state["best"], state["bad_epochs"]
        self.history = [EpochRecord(**r) for r in state["history"]]
        checkpoint.set_rng_state(state["rng"])
        self.start_epoch = state["epoch"] + 1
        return True

    # ---- one epoch ---------------------------------------------------------------------------
    def _forward(self, net, batch) -> tuple[torch.Tensor, torch.Tensor]:
        images = batch["image"].to(self.s.device, non_blocking=True).float()
        if self.tcfg.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        device = self.s.device
        target, valid = self.s.task.target(
            batch["mask"].to(device),
            batch["valid"].to(device),
            batch["soft"].to(device),
            batch["weight"].to(device),
        )
        with self.precision.autocast():  # the forward pass only: the loss and metrics stay fp32
            logits = net(images)
        logits = logits.float()
        return logits, self.s.loss_fn(logits, target, valid)

    def _encoder(self) -> torch.nn.Module | None:
        return getattr(getattr(self.model, "net", None), "encoder", None)

    def _frozen(self, epoch: int) -> bool:
        return epoch <= self.tcfg.freeze_encoder_epochs

    def _set_train_mode(self, epoch: int) -> None:
        """Train mode, except the encoder's BatchNorm while it is frozen
        or ``freeze_encoder_bn``."""
        self.net.train()
        encoder = self._encoder()
        if encoder is not None and (self.tcfg.freeze_encoder_bn or self._frozen(epoch)):
            for module in encoder.modules():
                if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                    module.eval()

    def _drop_encoder_grads(self) -> None:
        """Warm-up: the encoder keeps its weights (no grad, so the optimiser skips it; DDP-safe)."""
        for p in self._encoder().parameters():
            p.grad = None

    def train_epoch(self, epoch: int) -> tuple[float, float]:
        self._set_train_mode(epoch)
        frozen = self._frozen(epoch) and self._encoder() is not None
        self.sampler.set_epoch(epoch)
        self.s.train_set.set_epoch(epoch)
        steps, accumulate = len(self.loader), self.tcfg.accumulate
        total, images, start = 0.0, 0, time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        for i, batch in enumerate(self.loader):
            _, loss = self._forward(self.net, batch)
            self.scaler.scale(loss / accumulate).backward()
            if (i + 1) % accumulate == 0 or i + 1 == steps:
                if frozen:
                    self._drop_encoder_grads()
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.optimizer.zero_grad(set_to_none=True)
                self.averages.after_step(self.model)
                self.scheduler.after_step()
            n = batch["image"].shape[0]
            total, images = total + loss.item() * n, images + n
            self.reporter.step(n, loss.item())
        seconds = time.perf_counter() - start
        loss_sum, count = self.s.ctx.all_sum([total, images])
        return loss_sum / max(count, 1), images * self.s.ctx.world / max(seconds, 1e-9)

    @torch.no_grad()
    def validate(self, model: torch.nn.Module | None = None) -> tuple[float, dict]:
        """Mean val loss (network size) and the task's metrics at the original image size, of
        ``model`` (default: the weights the fold keeps)."""
        model = (model or self._eval_model()).eval()
        ctx, val, task = self.s.ctx, self.s.val_set, self.s.task
        indices = list(range(ctx.rank, len(val), ctx.world))
        loss_sum, metrics = 0.0, task.accumulator()
        for start in range(0, len(indices), self.tcfg.batch_size):
            batch = torch.utils.data.default_collate(
                [val[i] for i in indices[start : start + self.tcfg.batch_size]]
            )
            logits, loss = self._forward(model, batch)
            loss_sum += loss.item() * len(batch["index"])
            probs = task.probs(logits).cpu().numpy()
            for j, index in enumerate(batch["index"].tolist()):
                sample = val.samples[index]
                mask = self.s.cache.original_mask(sample)
                metrics.add(
                    restore_size(probs[j], self.s.cache.fitted_size(sample), mask.shape), mask
                )
        state = ctx.all_sum([loss_sum, float(len(indices)), *metrics.state])
        return state[0] / max(state[1], 1), type(metrics).result(
            state[2:], self.s.cache.dataset.classes
        )

    # ---- the fold ----------------------------------------------------------------------------
    def fit(self, on_epoch: Callable[[list[EpochRecord]], None] | None = None) -> list[EpochRecord]:
        epochs = self.tcfg.epochs
        for epoch in range(self.start_epoch, epochs + 1):
            if self.tcfg.early_stopping and self.bad_epochs >= self.tcfg.early_stopping:
                break
            self.reporter.start_epoch(epoch, epochs, len(self.loader))
            start = time.perf_counter()
            lr = current_lr(self.optimizer)
            train_loss, ips = self.train_epoch(epoch)
            self.averages.after_epoch(self.model, epoch)
            record = self._record(epoch, train_loss, lr, ips)
            if epoch == epochs:
                self._score_averages(record)
            record.seconds = time.perf_counter() - start  # training and validation
            validating = len(self.s.val_set) > 0  # a full-data refit has nothing to validate on
            improved = validating and record.val_score > self.best
            if validating:
                self.best, self.bad_epochs = (
                    (record.val_score, 0) if improved else (self.best, self.bad_epochs + 1)
                )
            if (
                validating or self.scheduler.kind != "plateau"
            ):  # no score for a plateau schedule without validation
                self.scheduler.after_epoch(record.val_score)
            # model.pt: the best validation epoch,
            # or (select: last, or nothing to validate on) the latest
            keep = improved if self.tcfg.select == "best" and validating else True
            self.history.append(record)
            if self.s.ctx.main:
                if keep:
                    self._save_best(record)
                self._save_last(epoch)
                if on_epoch:
                    on_epoch(self.history)
            self.s.ctx.barrier()
            self.reporter.end_epoch(record, keep)
        return self.history

    def _score_averages(self, record: EpochRecord) -> None:
        """After the last epoch: the validation score of every weight candidate (raw, EMA, SWA),
        in ``record.extra["averages"]``, so one CV run compares them fold by fold."""
        candidates = self.averages.candidates(self.model)
        if len(candidates) < 2 or not len(self.s.val_set):
            return
        kept = self._eval_model()
        scores = {}
        for name, model in candidates.items():
            if model is kept:
                scores[name] = record.val_score
            else:
                scores[name] = self.validate(model)[1][self.s.task.primary]
        record.extra["averages"] = scores

    def _record(self, epoch: int, train_loss: float, lr: float, ips: float) -> EpochRecord:
        """The epoch's validation results (NaN for a full-data refit, which has no validation
        images)."""
        if not len(self.s.val_set):
            nan = float("nan")
            return EpochRecord(epoch, train_loss, nan, nan, lr, 0.0, ips, nan, {})
        val_loss, metrics = self.validate()
        extra = {k: v for k, v in metrics.items() if k != "dice"}
        return EpochRecord(
            epoch,
            train_loss,
            val_loss,
            metrics["dice"],
            lr,
            0.0,
            ips,
            metrics[self.s.task.primary],
            extra,
        )
