"""The training-loop configuration (model-agnostic): length, batch, cadence, seed, precision, device;
and the optimiser's (:class:`OptimConfig`, used by :mod:`danceba.train.optim`). Imports no torch.

Defaults follow the reference GPT set-up where it has one (batch 32, seed 42); cadences are in
optimiser steps. ``batch_size`` is the **global** batch: under DDP each of ``W`` processes takes
``batch_size / W`` samples of the same global batch, so the data order does not depend on ``W``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from danceba.strict_dataclass import (
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Probability,
    check_annotations,
)

# Fields that may change when a run is resumed: they do not change what the steps compute.
RESUMABLE_CHANGES = ("max_steps", "log_every", "checkpoint_every", "num_workers", "device")


@dataclass(frozen=True)
class TrainConfig:
    """How the loop runs. Evaluation, logging and checkpoints happen at multiples of their cadence."""

    max_steps: PositiveInt = 1000
    batch_size: PositiveInt = 32
    log_every: PositiveInt = 50
    eval_every: NonNegativeInt = 500  # 0 = never call ``evaluate``
    checkpoint_every: PositiveInt = 500  # ``last.pt`` also at the end of the run
    seed: NonNegativeInt = 42
    deterministic: bool = False
    amp: Literal["fp32", "bf16", "fp16"] = "fp32"  # autocast on CUDA only; fp16 uses a GradScaler
    device: Literal["auto", "cpu", "cuda"] = "auto"
    num_workers: NonNegativeInt = 0
    best_metric: str = "val_loss"  # a key of ``evaluate``'s dict
    best_mode: Literal["min", "max"] = "min"

    def __post_init__(self) -> None:
        check_annotations(self, "train")
        if not self.best_metric:
            raise ValueError("train.best_metric: expected a metric name, got an empty string")


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser (Adam or AdamW), MultiStepLR schedule in optimiser steps, gradient clipping."""

    name: Literal["adam", "adamw"] = "adam"
    lr: PositiveFloat = 3e-4
    betas: tuple[Probability, Probability] = (0.5, 0.999)
    weight_decay: NonNegativeFloat = 0.0
    milestones: tuple[PositiveInt, ...] = ()
    gamma: PositiveFloat = 0.1
    grad_clip: NonNegativeFloat = 0.0  # max global gradient norm; 0 = off

    def __post_init__(self) -> None:
        check_annotations(self, "optim")
        if list(self.milestones) != sorted(set(self.milestones)):
            raise ValueError(
                f"optim.milestones: expected strictly increasing positive steps, got {self.milestones!r}"
            )
