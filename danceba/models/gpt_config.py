"""The GPT's configuration (``train_gpt.model`` in params.yaml): size, stack and ablation flags.

Kept apart from :mod:`danceba.models.gpt` so that loading ``params.yaml`` imports no torch; the flags are
explained in that module's docstring.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from danceba.strict_dataclass import PositiveInt, Probability, check_annotations


@dataclass(frozen=True)
class GPTConfig:
    """The GPT's size and ablation flags. Defaults: the paper's Danceba configuration."""

    stack: Literal["bailando", "danceba"] = "danceba"
    block_size: PositiveInt = 29
    n_music: PositiveInt = 438
    vocab_up: PositiveInt = 512
    vocab_down: PositiveInt = 512
    n_embd: PositiveInt = 768
    n_head: PositiveInt = 12
    n_layer_base: PositiveInt = 6
    n_layer_head: PositiveInt = 6
    embd_pdrop: Probability = 0.1
    resid_pdrop: Probability = 0.1
    attn_pdrop: Probability = 0.1
    mamba_d_state: PositiveInt = 128
    mamba_d_conv: PositiveInt = 4
    mamba_expand: PositiveInt = 4
    mamba_backend: Literal["auto", "mamba_ssm", "triton", "fused", "mambapy", "reference"] = "auto"
    pre: bool = True
    pre_mode: Literal["official", "per_channel"] = "official"
    pre_n_fft: PositiveInt = 512
    pre_hop_length: PositiveInt = 256
    pre_channel_n_fft: PositiveInt = 8
    position_scale_init: float = 1e-6
    tgca_gate: bool = True
    gate_activation: Literal["silu", "sigmoid"] = "silu"
    pmmm: Literal["parallel", "single", "none"] = "parallel"
    faithful: bool = False
    activation_checkpointing: bool = False  # recompute each PMMM Mamba in the backward (training only)
    music_norm: bool = False  # z-score the music with training-split statistics stored in the model
    genre_conditioning: bool = False  # a genre embedding (10 AIST++ genres + "any") added to every position

    def __post_init__(self) -> None:
        check_annotations(self)
        if self.n_embd % self.n_head:
            raise ValueError(f"GPTConfig: n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        uses_official_pre = self.stack == "danceba" and self.pre and self.pre_mode == "official"
        if uses_official_pre and self.n_music < self.pre_hop_length:
            raise ValueError(
                f"GPTConfig: official PRE needs n_music >= pre_hop_length so that a t-frame window gives at "
                f"least t phase frames; got n_music {self.n_music}, pre_hop_length {self.pre_hop_length}"
            )
