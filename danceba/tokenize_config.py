"""The ``tokenize`` section of params.yaml (run by :mod:`danceba.motion_tokens`). Imports no torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from danceba.strict_dataclass import Bounds, ConfigError, PositiveInt, SplitName

TempoFactor = Annotated[float, Bounds(low=0.5, high=2.0, open_low=True, open_high=True)]


@dataclass(frozen=True)
class TokenizeConfig:
    """``tokenize`` in params.yaml: window length and stride in 60 fps frames (Bailando's GPT: 240 / 8);
    ``tempo_factors``: stretched copies of the training split (none in the paper)."""

    window: PositiveInt = 240
    stride: PositiveInt = 8
    splits: tuple[SplitName, ...] = ("train", "val", "test")
    batch_size: PositiveInt = 256
    tempo_factors: tuple[TempoFactor, ...] = ()

    def __post_init__(self) -> None:
        factors = [round(f, 2) for f in self.tempo_factors]
        if len(set(factors)) != len(factors) or 1.0 in factors:
            raise ConfigError(
                f"tokenize.tempo_factors: expected distinct factors other than 1 (to 2 decimals), "
                f"got {list(self.tempo_factors)}"
            )
