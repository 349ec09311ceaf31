"""The training-loop configuration (model-agnostic): length, batch, cadence, seed, precision, device.

Defaults follow the reference GPT set-up where it has one (batch 32, seed 42); cadences are in
optimiser steps. ``batch_size`` is the **global** batch: under DDP each of ``W`` processes takes
``batch_size / W`` samples of the same global batch, so the data order does not depend on ``W``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

# Fields that may change when a run is resumed: they do not change what the steps compute.
RESUMABLE_CHANGES = ("max_steps", "log_every", "checkpoint_every", "num_workers", "device")


@dataclass(frozen=True)
class TrainConfig:
    """How the loop runs. Evaluation, logging and checkpoints happen at multiples of their cadence."""

    max_steps: int = 1000
    batch_size: int = 32
    log_every: int = 50
    eval_every: int = 500  # 0 = never call ``evaluate``
    checkpoint_every: int = 500  # ``last.pt`` also at the end of the run
    seed: int = 42
    deterministic: bool = False
    amp: Literal["fp32", "bf16", "fp16"] = "fp32"  # autocast on CUDA only; fp16 uses a GradScaler
    device: Literal["auto", "cpu", "cuda"] = "auto"
    num_workers: int = 0
    best_metric: str = "val_loss"  # a key of ``evaluate``'s dict
    best_mode: Literal["min", "max"] = "min"

    def __post_init__(self) -> None:
        for name in ("max_steps", "batch_size", "log_every", "checkpoint_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"train.{name}: expected a positive int, got {value!r}")
        for name in ("eval_every", "seed", "num_workers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"train.{name}: expected a non-negative int, got {value!r}")
        choices = {
            "amp": ("fp32", "bf16", "fp16"),
            "device": ("auto", "cpu", "cuda"),
            "best_mode": ("min", "max"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"train.{name}: expected one of {list(allowed)}, got {getattr(self, name)!r}"
                )
        if not self.best_metric:
            raise ValueError("train.best_metric: expected a metric name, got an empty string")


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> ``cuda:<local_rank>`` when CUDA is available, else ``cpu``; ``cuda`` without CUDA raises."""
    if device == "cpu" or (device == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError("train.device: 'cuda' requested but torch.cuda.is_available() is False")
    return torch.device("cuda", local_rank)
