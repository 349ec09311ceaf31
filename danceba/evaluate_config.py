"""The ``evaluate`` section of params.yaml (run by :mod:`danceba.evaluation`). Imports no torch, librosa or
scipy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from danceba.data.aistpp import FPS
from danceba.strict_dataclass import (
    Bounds,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    SplitName,
    check_annotations,
)


@dataclass(frozen=True)
class EvaluateConfig:
    """``evaluate`` in params.yaml.

    protocols: reported side by side; splits: the evaluated pieces (and the test-only FID reference);
    baseline_seed: seeds the mismatched-music pairing and the jitter / still noise; plot_pieces: beat
    plots of the first model dances. chance_shifts / chance_min_shift_s: the circular shifts BAS chance
    averages over, and how close to 0 (seconds) a shift may not come. bootstrap / fid_bootstrap:
    resamples of the pieces for the per-piece metrics' and for the FIDs' intervals (FID is recomputed per
    resample, hence fewer; 0 = no FID interval); bootstrap_seed seeds them; ci_level is the interval's
    coverage. contact_height_m: foot skating's contact threshold above each foot joint's lowest height;
    pfc_fps: the rate PFC is computed at (EDGE's 30). jitter_noise_m / still_noise_m: the white noise
    (metres, per coordinate and frame) of the ``jitter`` and ``still`` control rows.
    """

    protocols: tuple[Literal["bailando", "corrected"], ...] = ("bailando", "corrected")
    splits: tuple[SplitName, ...] = ("val", "test")
    baseline_seed: NonNegativeInt = 0
    plot_pieces: NonNegativeInt = 3
    chance_shifts: PositiveInt = 16
    chance_min_shift_s: NonNegativeFloat = 1.0
    bootstrap: PositiveInt = 1000
    fid_bootstrap: NonNegativeInt = 100
    bootstrap_seed: NonNegativeInt = 0
    ci_level: Annotated[float, Bounds(low=0, high=1, open_low=True, open_high=True)] = 0.95
    contact_height_m: PositiveFloat = 0.05
    pfc_fps: PositiveInt = 30
    jitter_noise_m: PositiveFloat = 0.01
    still_noise_m: PositiveFloat = 0.0001

    def __post_init__(self) -> None:
        if not self.protocols:
            raise ValueError("evaluate.protocols: at least one protocol")
        check_annotations(self, "evaluate")
        if self.pfc_fps > FPS or FPS % self.pfc_fps:
            raise ValueError(f"evaluate.pfc_fps: must be a divisor of {FPS}, got {self.pfc_fps!r}")

    @property
    def min_shift_frames(self) -> int:
        """``chance_min_shift_s`` in 60 fps frames."""
        return round(self.chance_min_shift_s * FPS)
