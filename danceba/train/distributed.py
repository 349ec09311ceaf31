"""DDP set-up from the ``torchrun`` environment, and the few collectives the loop needs.

``torchrun --nproc_per_node N`` sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` for every process.
With ``WORLD_SIZE > 1`` the process group is initialised with gloo on CPU and NCCL on CUDA (one device
per local rank). Without those variables everything here is a no-op, so the same entry point runs
single-process and under ``torchrun``. A group that already exists (the caller's, or one made by an
earlier ``train`` call) is reused.

The group is destroyed once, when the process exits (:func:`shutdown_distributed`, registered with
``atexit``), not after each training run: destroying the default group and creating it again in the
same process reuses the same rendezvous keys in torchrun's store, and a rank that re-initialises
before its peer has torn down reads stale addresses and hangs (measured with gloo, torch 2.13). So an
entry point may call ``train`` several times (e.g. the two VQ-VAE phases) under one ``torchrun``.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistributedContext:
    """This process's place in the (possibly trivial) process group."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # initialised by :func:`setup_distributed` (destroyed at exit)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as error:
        raise ValueError(f"environment variable {name}: expected an int, got {raw!r}") from error


def env_local_rank() -> int:
    """``LOCAL_RANK`` from the environment (0 when not launched by torchrun)."""
    return _env_int("LOCAL_RANK", 0)


def setup_distributed(device: torch.device) -> DistributedContext:
    """Join the process group described by the environment (or an existing one) on ``device``."""
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if dist.is_available() and dist.is_initialized():
        return DistributedContext(dist.get_rank(), dist.get_world_size(), env_local_rank(), False, device)
    world_size = _env_int("WORLD_SIZE", 1)
    if world_size <= 1:
        return DistributedContext(device=device)
    rank, local_rank = _env_int("RANK", 0), env_local_rank()
    if not 0 <= rank < world_size:
        raise ValueError(f"environment: RANK={rank} is outside WORLD_SIZE={world_size}")
    if device.type == "cuda":
        dist.init_process_group("nccl", rank=rank, world_size=world_size, device_id=device)
    else:
        dist.init_process_group("gloo", rank=rank, world_size=world_size)
    atexit.register(shutdown_distributed)
    return DistributedContext(rank, world_size, local_rank, True, device)


def shutdown_distributed() -> None:
    """Destroy the default process group if one exists (runs at exit after :func:`setup_distributed`)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistributedContext) -> None:
    """Wait for every rank (no-op single-process)."""
    if not ctx.enabled:
        return
    if ctx.device.type == "cuda":
        dist.barrier(device_ids=[ctx.device.index])
    else:
        dist.barrier()


def all_reduce_mean(value: torch.Tensor, ctx: DistributedContext) -> torch.Tensor:
    """Mean of ``value`` over ranks (a new tensor; ``value`` itself single-process)."""
    if not ctx.enabled:
        return value
    total = value.detach().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total / ctx.world_size


def all_gather_objects(obj: Any, ctx: DistributedContext) -> list[Any]:
    """Every rank's ``obj``, in rank order (``[obj]`` single-process). Objects travel between our own
    processes only."""
    if not ctx.enabled:
        return [obj]
    gathered: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> ``cuda:<local_rank>`` when CUDA is available, else ``cpu``; ``cuda`` without CUDA raises."""
    if device == "cpu" or (device == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError("train.device: 'cuda' requested but torch.cuda.is_available() is False")
    return torch.device("cuda", local_rank)
