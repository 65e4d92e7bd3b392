"""Devices and processes: the one place a device is chosen, the process group torchrun describes,
and the few collective helpers the loop needs. One process is the ordinary case (world size 1, every helper
a no-op), so the training loop has a single code path.

Launch: `torchrun --nproc-per-node N -m ssgan train ...` (add --nnodes/--node-rank/--rdzv-endpoint
for several machines). Backend: nccl on CUDA devices, gloo on CPUs.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA, then MPS, then the CPU; an unavailable explicit device is an error."""
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if mps else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device {name!r}: expected auto, cpu, cuda, cuda:K or mps") from None
    if (device.type == "cuda" and not torch.cuda.is_available()) or (device.type == "mps" and not mps):
        raise ConfigError(f"device {name!r}: {device.type.upper()} is not available on this machine (use cpu or auto)")
    return device


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def setup(device_name: str) -> tuple[Dist, torch.device]:
    """Join the process group torchrun describes (if any); returns it and this process's device.

    Under torchrun with CUDA, 'auto' and 'cuda' mean this process's own GPU (cuda:LOCAL_RANK).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(), resolve_device(device_name)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device_name.startswith("cuda") or (device_name == "auto" and torch.cuda.is_available())
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device_name = f"cuda:{local_rank}"
    elif device_name == "auto":
        device_name = "cpu"
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return Dist(rank, world, local_rank), resolve_device(device_name)


def cleanup(d: Dist) -> None:
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def sum_int(d: Dist, value: int, device: torch.device) -> int:
    """Sum an integer over all processes (error counts of sharded evaluation)."""
    if not d.enabled:
        return value
    t = torch.tensor([value], dtype=torch.long, device=device)
    dist.all_reduce(t)
    return int(t.item())


def any_rank(d: Dist, flag: bool, device: torch.device) -> bool:
    """True on every process if it is true on any: ranks must agree to stop, or they deadlock."""
    return sum_int(d, int(bool(flag)), device) > 0 if d.enabled else bool(flag)
