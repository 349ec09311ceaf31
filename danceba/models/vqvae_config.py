"""One body half's VQ-VAE configuration (``train_vqvae.model`` in params.yaml) and its loss weights.

Kept apart from :mod:`danceba.models.vqvae` so that loading ``params.yaml`` imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from danceba.strict_dataclass import (
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    Probability,
    check_annotations,
)


@dataclass(frozen=True)
class VQVAEConfig:
    """One body half's VQ-VAE and its loss weights; defaults are Bailando's ``sep_vqvae*.yaml``."""

    width: PositiveInt = 512  # conv channels inside encoder / decoder
    depth: PositiveInt = 3  # ResConv1DBlocks per Resnet1D
    m_conv: PositiveFloat = 1.0  # hidden width of a ResConv1DBlock relative to ``width``
    dilation_growth_rate: PositiveInt = 3  # dilations 1, 3, 9
    reverse_decoder_dilation: bool = True  # decoder dilations 9, 3, 1
    down_t: PositiveInt = 3  # downsampling convs (kernel 2*stride, padding stride//2)
    stride_t: PositiveInt = 2  # => hop 2**3 = 8 frames per code
    emb_width: PositiveInt = 512  # code dimension
    l_bins: PositiveInt = 512  # codebook size
    mu: Probability = 0.99  # EMA decay of the codebook
    threshold: NonNegativeFloat = 1.0  # EMA count below which a code is dead and restarted
    commit: NonNegativeFloat = 0.02
    vel: NonNegativeFloat = 1.0
    acc: NonNegativeFloat = 1.0
    root_acc: NonNegativeFloat = 1.0  # stage 2: weight of the loss on the root velocity's first difference
    # stage 2's root-velocity decoder: "codes" (Bailando: a Decoder on the lower half's code vectors, L1
    # losses) or "body" (danceba.models.root_from_body: a Conv1d stack on the decoded body, squared losses)
    root_decoder: Literal["codes", "body"] = "codes"
    root_width: PositiveInt = 128  # "body": channels of its hidden convolutions

    def __post_init__(self) -> None:
        check_annotations(self)
        if self.stride_t < 2 or self.stride_t % 2:
            raise ValueError(
                f"VQVAEConfig.stride_t must be even (kernel 2*stride keeps T/stride), got {self.stride_t}"
            )

    @property
    def hop_length(self) -> int:
        """Frames per code (8 for the paper configuration)."""
        return self.stride_t**self.down_t
