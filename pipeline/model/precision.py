"""Mixed precision as one setting for every device: ``fp32 | bf16 | fp16 | auto``.

``auto`` picks bf16 on CPUs that compute it natively (AVX512-BF16 or AMX-BF16: on such a CPU
``torch.autocast("cpu", dtype=torch.bfloat16)`` measured 1.25-1.45x faster training and 1.8x faster
inference for U-Net/Lite0), fp32 on CPUs without it (there bf16 is emulated: 10x *slower*, measured
on an AVX2-only EPYC), bf16 on CUDA devices that support it and fp16 with a gradient scaler on older
ones. Only the network's forward pass runs under autocast: losses, metrics, probabilities, the store
and the threshold search stay fp32 (callers cast the logits with ``.float()``).
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from pathlib import Path

import torch

from pipeline.console import console
from pipeline.errors import PipelineError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
_CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def _cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags") or line.startswith("Features"):
            return set(line.split(":", 1)[1].split())
    return set()


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 in hardware (x86 AVX512-BF16/AMX; Arm's ``bf16`` feature)."""
    flags = _cpu_flags()
    return any(flag in flags for flag in _CPU_BF16_FLAGS) or "bf16" in flags


@dataclass(frozen=True)
class Precision:
    """A resolved precision for one device type: ``name`` is fp32, bf16 or fp16."""

    name: str
    device_type: str

    @property
    def dtype(self) -> torch.dtype:
        return _DTYPES.get(self.name, torch.float32)

    @property
    def mixed(self) -> bool:
        return self.name != "fp32"

    @property
    def needs_scaler(self) -> bool:
        """fp16 gradients underflow without loss scaling; bf16 has fp32's exponent range."""
        return self.name == "fp16"

    def autocast(self) -> contextlib.AbstractContextManager:
        """The context a forward pass runs in (a no-op for fp32)."""
        if not self.mixed:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)


_told: set[str] = set()


def _say_once(message: str) -> None:
    if message not in _told:
        _told.add(message)
        console.print(f"[dim]{message}[/dim]")


def resolve_precision(requested: str, device: torch.device, key: str = "precision") -> Precision:
    """The precision ``requested`` (one of ``PRECISIONS``) means on ``device``.

    Raises:
        PipelineError: an unknown name, or fp16 on a CPU (CPU autocast is bf16; use bf16 or fp32).
    """
    if requested not in PRECISIONS:
        raise PipelineError(
            f"{key}: {requested!r} is unknown; choose one of {', '.join(PRECISIONS)}"
        )
    kind = device.type
    if kind == "cuda":
        if requested == "auto":
            requested = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return Precision(requested, kind)
    if requested == "fp16":
        raise PipelineError(f"{key}: fp16 runs on CUDA devices only; on a CPU use bf16 or fp32")
    if requested == "auto":
        if cpu_has_native_bf16():
            return Precision("bf16", kind)
        _say_once(f"{key} auto: this CPU has no native bf16 (AVX512-BF16/AMX), using fp32")
        return Precision("fp32", kind)
    return Precision(requested, kind)
