"""Checkpoints, written atomically.

``model.pt`` (best epoch): weights + resolved config + run metadata; enough to predict.
``last.pt`` (every epoch): also optimiser, scheduler, scaler, EMA, RNG states and history, to
resume exactly where a killed run stopped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pipeline.errors import PipelineError
from pipeline.fsio import atomic_open

FORMAT = "segfuse-checkpoint-1"


def save(path: Path, payload: dict[str, Any]) -> None:
    with atomic_open(path, "wb") as fh:
        torch.save({"format": FORMAT, **payload}, fh)


def retrain_hint(path: Path) -> str:
    """The command that replaces the checkpoint at ``path`` (``.../fold<k>/`` or ``.../full/``)."""
    folder = Path(path).parent.name
    fold = folder[4:] if folder.startswith("fold") else folder
    return (
        f"retrain it with 'pipeline train CONFIG --fold {fold}' (a finished fold whose model.pt is "
        "unreadable is trained again)"
    )


def load(path: Path) -> dict[str, Any]:
    """Read a checkpoint on CPU; a missing or foreign file is a PipelineError naming it
    and the fix."""
    if not Path(path).is_file():
        raise PipelineError(f"{path}: checkpoint not found; train this run/fold first")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - truncated/corrupt pickles raise many types
        raise PipelineError(
            f"{path}: unreadable checkpoint ({type(err).__name__}); {retrain_hint(path)}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise PipelineError(f"{path}: not a segfuse checkpoint; {retrain_hint(path)}")
    return payload


def readable(path: Path) -> bool:
    """True if ``path`` is a checkpoint ``load`` accepts."""
    try:
        load(path)
    except PipelineError:
        return False
    return True


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
