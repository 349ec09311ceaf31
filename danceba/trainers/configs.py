"""The two training stages' sections of params.yaml: ``train_vqvae`` (:class:`TrainVQVAEConfig`, run by
:mod:`danceba.trainers.vqvae`) and ``train_gpt`` (:class:`TrainGPTConfig`, run by
:mod:`danceba.trainers.gpt`). Imports no torch, so that loading ``params.yaml`` does not either.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from danceba.models.gpt_config import GPTConfig
from danceba.models.vqvae_config import VQVAEConfig
from danceba.strict_dataclass import PositiveInt, Probability, SplitName, check_annotations
from danceba.train.train_config import OptimConfig, TrainConfig


@dataclass(frozen=True)
class VQVAEPhaseConfig:
    """One phase: window length and stride (frames at 60 fps), loop and optimiser settings."""

    window: PositiveInt = 240
    stride: PositiveInt = 40
    train: TrainConfig = field(default_factory=TrainConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)


@dataclass(frozen=True)
class TrainVQVAEConfig:
    """``train_vqvae`` in params.yaml: the model, both phases and the held-out evaluation."""

    model: VQVAEConfig = field(default_factory=VQVAEConfig)
    stage1: VQVAEPhaseConfig = field(default_factory=VQVAEPhaseConfig)
    stage2: VQVAEPhaseConfig = field(default_factory=lambda: VQVAEPhaseConfig(stride=8))
    train_splits: tuple[SplitName, ...] = ("train",)
    eval_splits: tuple[SplitName, ...] = ("val", "test")
    max_eval_windows: PositiveInt = 512


@dataclass(frozen=True)
class TrainGPTConfig:
    """``train_gpt`` in params.yaml: the model (stack and ablation flags), the loop, the optimiser."""

    model: GPTConfig = field(default_factory=GPTConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train_splits: tuple[SplitName, ...] = ("train",)
    eval_splits: tuple[SplitName, ...] = ("val", "test")
    max_eval_windows: PositiveInt = 1024
    code_noise: Probability = 0.0  # training only: probability of replacing each input code by a random one
    genre_dropout: Probability = 0.0  # training only: probability of a window's genre label becoming "any"

    def __post_init__(self) -> None:
        check_annotations(self, "train_gpt")
