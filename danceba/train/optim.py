"""Optimiser and learning-rate schedule from a frozen :class:`~danceba.train.train_config.OptimConfig`.

Its defaults are the reference GPT's (Bailando and Danceba's ``cc_motion_gpt.yaml``): Adam, lr 3e-4,
betas (0.5, 0.999), no weight decay, MultiStepLR with gamma 0.1.

**Milestones count optimiser steps, not epochs.** The scheduler is stepped once after every
optimiser step, so the learning rate used by step ``s + 1`` is ``lr * gamma ** k`` where ``k`` is the
number of milestones ``<= s``. The reference schedules by epoch (GPT: epochs 250 and 400); to reproduce
it, multiply by the steps per epoch (:func:`danceba.train.sampler.batches_per_epoch`), e.g. with
:func:`epochs_to_steps`. Per-step milestones keep the schedule exact when a run is resumed mid-epoch
and when the data set size changes between the mini data set and AIST++.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from danceba.train.train_config import OptimConfig


def build_optimizer(
    params: Iterable[torch.nn.Parameter] | Iterable[dict], cfg: OptimConfig
) -> torch.optim.Optimizer:
    """Adam or AdamW over ``params`` (parameters or parameter groups) with ``cfg``'s lr, betas, decay.

    Always the multi-tensor (``foreach``) implementation: PyTorch picks it by default only on CUDA; on
    CPU the per-tensor loop cost the embedded GPT 10-17 % of its step time (0.43 -> 0.35 s at 1 thread,
    0.32 -> 0.29 s at 2), and both give bit-identical weights (measured after 35 steps).
    """
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[cfg.name]
    return cls(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay, foreach=True)


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: OptimConfig
) -> torch.optim.lr_scheduler.MultiStepLR:
    """MultiStepLR with ``cfg.milestones`` counted in optimiser steps (step it after every update)."""
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(cfg.milestones), gamma=cfg.gamma)


def epochs_to_steps(milestone_epochs: Iterable[int], steps_per_epoch: int) -> tuple[int, ...]:
    """Convert per-epoch milestones (as in the reference configs) to optimiser-step milestones."""
    if steps_per_epoch <= 0:
        raise ValueError(f"steps_per_epoch: expected > 0, got {steps_per_epoch}")
    return tuple(int(e) * steps_per_epoch for e in milestone_epochs)
