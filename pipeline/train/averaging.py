"""Weight averages a fold keeps beside its raw weights: EMA (updated every optimiser step) and SWA
(the equal mean of the weights at the end of each of the last ``train.swa_epochs`` epochs).

Both are ``torch.optim.swa_utils.AveragedModel`` copies with their buffers averaged too (the
BatchNorm statistics follow the weights, as timm's EMA does), so a copy is a complete model that
validates and predicts as it is. ``train.average`` names the one that becomes ``model.pt``; every
configured one is scored on the fold's validation images after the last epoch, so one CV run
says which OOF prefers, fold by fold.
"""

from __future__ import annotations

from torch import nn
from torch.optim.swa_utils import AveragedModel

from pipeline.train.optim import make_ema

RAW = "none"  # the raw weights' name among the candidates (train.average: none)


def kept_average(tcfg) -> str:
    """``train.average`` resolved: auto = swa if swa_epochs, else ema if ema, else none."""
    if tcfg.average != "auto":
        return tcfg.average
    if tcfg.swa_epochs:
        return "swa"
    return "ema" if tcfg.ema is not None else RAW


class WeightAverages:
    """The EMA and SWA copies of ``model`` the config asks for, and the one a fold keeps."""

    def __init__(self, model: nn.Module, tcfg, epochs: int):
        self.ema = make_ema(model, tcfg.ema)
        self.swa = AveragedModel(model, use_buffers=True) if tcfg.swa_epochs else None
        # the refit may train fewer epochs than train.epochs: the window is the last N it trains
        self.swa_start = max(1, epochs - (tcfg.swa_epochs or 0) + 1)
        self.kept = kept_average(tcfg)

    def after_step(self, model: nn.Module) -> None:
        if self.ema is not None:
            self.ema.update_parameters(model)

    def after_epoch(self, model: nn.Module, epoch: int) -> None:
        if self.swa is not None and epoch >= self.swa_start:
            self.swa.update_parameters(model)

    def candidates(self, model: nn.Module) -> dict[str, nn.Module]:
        """Every model there is to score: the raw weights and each configured average."""
        found = {RAW: model}
        if self.ema is not None:
            found["ema"] = self.ema.module
        if self.swa is not None and int(self.swa.n_averaged) > 0:
            found["swa"] = self.swa.module
        return found

    def kept_model(self, model: nn.Module) -> nn.Module:
        """The weights validated each epoch and saved as model.pt (SWA: raw until its window)."""
        return self.candidates(model).get(self.kept, model)

    def state_dict(self) -> dict:
        return {
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "swa": self.swa.state_dict() if self.swa is not None else None,
        }

    def load_state_dict(self, state: dict) -> None:
        for name in ("ema", "swa"):
            average = getattr(self, name)
            if average is not None and state.get(name) is not None:
                average.load_state_dict(state[name])
