"""Optimisers (Adam, AdamW, RMSprop, SGD) and schedulers (plateau, cosine, one-cycle)."""

from __future__ import annotations

import torch
from torch import nn


def param_groups(model: nn.Module, cfg) -> list[dict]:
    """Encoder weights at ``lr * encoder_lr_mult`` (group 0), everything else at ``lr`` (group 1).

    A pretrained encoder is usually fine-tuned more gently than the freshly initialised decoder.
    """
    net = getattr(model, "net", model)
    encoder = getattr(net, "encoder", None)
    enc_ids = {id(p) for p in encoder.parameters()} if encoder is not None else set()
    enc = [p for p in model.parameters() if id(p) in enc_ids]
    rest = [p for p in model.parameters() if id(p) not in enc_ids]
    groups = [
        {"params": enc, "lr": cfg.lr * cfg.encoder_lr_mult, "name": "encoder"},
        {"params": rest, "lr": cfg.lr, "name": "decoder"},
    ]
    return [g for g in groups if g["params"]]


def build_optimizer(model: nn.Module, cfg) -> torch.optim.Optimizer:
    """``cfg``: the ``optim`` config section; parameter groups from ``param_groups``."""
    params = param_groups(model, cfg)
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.name == "rmsprop":  # the Carvana seed: RMSprop lr 1e-4
        return torch.optim.RMSprop(
            params, lr=cfg.lr, weight_decay=cfg.weight_decay, momentum=cfg.momentum
        )
    return torch.optim.SGD(
        params, lr=cfg.lr, weight_decay=cfg.weight_decay, momentum=cfg.momentum, nesterov=True
    )


class Scheduler:
    """One interface over the three schedules: ``after_step()`` per optimiser step,
    ``after_epoch(score)``."""

    def __init__(self, optimizer: torch.optim.Optimizer, cfg, epochs: int, steps_per_epoch: int):
        self.kind = cfg.scheduler
        self.impl = None
        if self.kind == "plateau":  # seed: factor 0.1, patience 4, on the validation Dice
            self.impl = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer,
                mode="max",
                factor=cfg.plateau_factor,
                patience=cfg.plateau_patience,
                min_lr=cfg.min_lr,
            )
        elif self.kind == "cosine":
            self.impl = torch.optim.lr_scheduler.CosineAnnealingLR(
                optimizer, T_max=epochs, eta_min=cfg.min_lr
            )
        elif self.kind == "onecycle":
            self.impl = torch.optim.lr_scheduler.OneCycleLR(
                optimizer,
                max_lr=[g["lr"] for g in optimizer.param_groups],
                total_steps=max(1, epochs * steps_per_epoch),
            )

    def after_step(self) -> None:
        if self.kind == "onecycle" and self.impl.last_epoch + 1 < self.impl.total_steps:
            self.impl.step()

    def after_epoch(self, score: float) -> None:
        if self.kind == "plateau":
            self.impl.step(score)
        elif self.kind == "cosine":
            self.impl.step()

    def state_dict(self) -> dict:
        return self.impl.state_dict() if self.impl is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if self.impl is not None:
            self.impl.load_state_dict(state)


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    """The decoder's (the configured ``optim.lr``) learning rate: the last group."""
    return float(optimizer.param_groups[-1]["lr"])


def make_ema(model: nn.Module, decay: float | None):
    """Exponential moving average of the weights (and buffers), or None."""
    if decay is None:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
