"""DistributedDataParallel helpers: torchrun sets RANK/WORLD_SIZE/LOCAL_RANK; gloo on CPU,
nccl on GPU."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Only rank 0 writes files and prints."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    def all_sum(self, values: list[float]) -> list[float]:
        if not self.enabled:
            return values
        tensor = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def resolve_device(name: str, ctx: DistContext | None = None) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and ctx is not None and ctx.enabled and device.index is None:
        device = torch.device("cuda", ctx.local_rank)
    return device


def init_distributed(device_name: str) -> DistContext:
    """Join the torchrun process group if launched by torchrun;
    otherwise a single-process context."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    ctx = DistContext(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        backend = "nccl" if resolve_device(device_name).type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    if resolve_device(device_name).type == "cuda":
        torch.cuda.set_device(ctx.local_rank)
    return ctx


def shutdown_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def has_unused_parameters(model: torch.nn.Module, height: int, width: int) -> bool:
    """True if some trainable weights get no gradient (e.g. an smp encoder cut by encoder_depth).

    DDP must then be told to look for them, which costs time, so it is switched on only when needed.
    """
    device, was_training = next(model.parameters()).device, model.training
    model.eval()  # eval mode: the probe must not touch BatchNorm running statistics
    model.zero_grad(set_to_none=True)
    model(torch.zeros(1, 3, height, width, device=device)).float().sum().backward()
    unused = any(p.requires_grad and p.grad is None for p in model.parameters())
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return unused
