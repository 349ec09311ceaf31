"""Rhythm metrics that can tell following the music from luck: BAS against its own chance level, and
beat phase locking. Pure numpy, vectorised over shifts and beats.

Frames: a motion (T, 24, 3) at 60 fps has L = T - 1 joint-speed frames; its motion beats
(:func:`danceba.features.motion.motion_beats`) and its music beats (column 53 of the 60 fps music
features, truncated to L, as BAS does) are integer frame indices in [0, L).

* **BAS chance**: the same motion scored against its own music beats circularly shifted by ``s``
  frames modulo L (the music beats move, the motion beats stay), averaged over shifts spread over the
  piece and at least ``min_shift`` frames away from 0 on the circle. The shifts are a golden-ratio
  (Weyl) sequence over [min_shift, L - min_shift] rather than an arithmetic grid: a grid whose step is
  close to a multiple of the beat period samples a single beat phase (on a 90 BPM piece of 12 s a
  16-point grid steps by 39.9 frames against a 40-frame period), whereas the golden-ratio sequence is
  equidistributed modulo every period. ``BAS excess = BAS - chance``: 0 for a motion whose beats are
  unrelated to the music, whatever its number of speed minima. One small bias remains: the motion-beat
  detector never puts a beat on the first or last speed frame, so a music beat *at* frame 0 scores lower
  unshifted than its shifted copies do (measured on still poses with noise, beats from frame 0: excess
  -0.04 ± 0.01 on 5 s pieces, within ±0.01 of 0 at 12 and 20 s); rows scored against the same music
  share it, which is why the verdict compares the model with its sham-music control, not only with 0.
* **Phase locking**: each motion beat at frame f with music beats b_k <= f < b_{k+1} has phase
  φ = (f - b_k) / (b_{k+1} - b_k) on the music's beat grid (motion beats before the first or from the
  last music beat on are dropped). R = |mean exp(2πiφ)| (Rayleigh vector strength) is 1 when every
  motion beat falls at the same phase of the beat and about 1/√K for K unrelated beats; the circular
  mean phase, in beats in [-0.5, 0.5), says where: 0 on the beat, ±0.5 half a beat off.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from danceba.features.motion import motion_beats as detect_motion_beats
from danceba.metrics import MetricProtocol, beat_align_score

GOLDEN = (np.sqrt(5.0) - 1.0) / 2.0  # 1/φ: the Weyl step of the chance shifts
RHYTHM_METRICS = (
    "bas",
    "bas_motion",
    "bas_chance",
    "bas_excess",
    "phase_lock_r",
    "phase_lock_mean_phase",
)


def _frames(beats: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(beats)
    if arr.ndim != 1:
        raise ValueError(f"{what}: expected a 1-d array of beat frames, got shape {arr.shape}")
    return np.sort(arr.astype(np.int64))


def wrap_phase(phase: np.ndarray | float) -> np.ndarray:
    """Phases in beats wrapped to [-0.5, 0.5); any shape."""
    return np.mod(np.asarray(phase, dtype=np.float64) + 0.5, 1.0) - 0.5


def chance_shifts(length: int, n: int, min_shift: int) -> np.ndarray:
    """(n,) int64 circular shifts in [min_shift, length - min_shift], a golden-ratio sequence.

    Shift k is ``min_shift + floor(frac((k + 0.5) / φ) · (length - 2·min_shift + 1))``; every shift is at
    least ``min_shift`` frames from 0 in both directions around a circle of ``length`` frames."""
    if n < 1:
        raise ValueError(f"chance shifts: need at least 1 shift, got {n}")
    if min_shift < 0:
        raise ValueError(f"chance shifts: min_shift must be >= 0 frames, got {min_shift}")
    span = length - 2 * min_shift + 1  # number of admissible shifts
    if span < 1 or length < 2:
        raise ValueError(
            f"chance shifts: a piece of {length} frames has no shift at least {min_shift} frames from 0"
        )
    u = np.mod((np.arange(n) + 0.5) * GOLDEN, 1.0)
    return (min_shift + np.floor(u * span)).astype(np.int64)


def nearest_beat_distance(query: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """|query - nearest ref| in frames: query (..., Q), ref (..., R) (same leading dims) -> (..., Q)."""
    return np.abs(query[..., :, None] - ref[..., None, :]).min(axis=-1).astype(np.float64)


def shifted_beat_align_scores(
    music_beats: np.ndarray,
    motion_beats: np.ndarray,
    length: int,
    shifts: np.ndarray,
    sigma: float = 3.0,
    average_over: Literal["music", "motion"] = "music",
) -> np.ndarray:
    """BAS of fixed motion beats (B,) against the music beats (M,) shifted by each of ``shifts`` (S,)
    frames modulo ``length``; returns (S,). A shift of 0 gives
    :func:`danceba.metrics.beat_align_score`."""
    music, motion = _frames(music_beats, "music beats"), _frames(motion_beats, "motion beats")
    if motion.size == 0:
        raise ValueError("shifted BAS: no motion beats (the motion has no local speed minimum)")
    if music.size == 0:
        raise ValueError("shifted BAS: no music beats")
    if average_over not in ("music", "motion"):
        raise ValueError(f"shifted BAS: average_over must be 'music' or 'motion', got {average_over!r}")
    if sigma <= 0:
        raise ValueError(f"shifted BAS: sigma must be positive, got {sigma}")
    shifted = np.mod(music[None, :] + np.asarray(shifts, dtype=np.int64).reshape(-1)[:, None], length)
    fixed = np.broadcast_to(motion, (len(shifted), motion.size))
    query, ref = (shifted, fixed) if average_over == "music" else (fixed, shifted)
    return np.exp(-(nearest_beat_distance(query, ref) ** 2) / (2 * sigma**2)).mean(axis=-1)


def beat_phases(music_beats: np.ndarray, motion_beats: np.ndarray) -> np.ndarray:
    """Phase in [0, 1) of each motion beat inside the music beat grid: (B,) -> (K,), K <= B.

    Motion beats before the first music beat, or at or after the last one, are dropped."""
    music, motion = np.unique(_frames(music_beats, "music beats")), _frames(motion_beats, "motion beats")
    if music.size < 2:
        raise ValueError(f"beat phases: need at least 2 music beats for a beat grid, got {music.size}")
    k = np.searchsorted(music, motion, side="right") - 1
    inside = (k >= 0) & (k < music.size - 1)
    f, k = motion[inside], k[inside]
    return (f - music[k]) / (music[k + 1] - music[k])


def phase_locking(phases: np.ndarray) -> tuple[float, float]:
    """(R, circular mean phase in beats in [-0.5, 0.5)) of phases (K,) in beats; (nan, nan) if K = 0."""
    phases = np.asarray(phases, dtype=np.float64).ravel()
    if phases.size == 0:
        return float("nan"), float("nan")
    z = np.exp(2j * np.pi * phases).mean()
    return float(np.abs(z)), float(wrap_phase(np.angle(z) / (2 * np.pi)))


def circular_mean_phase(phases: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Weighted circular mean over the last axis of phases (..., N) in beats -> (...) in [-0.5, 0.5).

    NaN phases (or weights) are left out; an all-NaN row gives NaN."""
    phases = np.asarray(phases, dtype=np.float64)
    weights = np.ones_like(phases) if weights is None else np.broadcast_to(weights, phases.shape)
    valid = np.isfinite(phases) & np.isfinite(weights)
    z = np.where(valid, weights * np.exp(2j * np.pi * np.where(valid, phases, 0.0)), 0.0).sum(axis=-1)
    mean = wrap_phase(np.angle(z) / (2 * np.pi))
    return np.where(valid.any(axis=-1), mean, np.nan)


def rhythm_scores(
    joints: np.ndarray,
    music_beat_onehot: np.ndarray,
    protocol: MetricProtocol,
    *,
    n_shifts: int,
    min_shift_frames: int,
) -> dict[str, float]:
    """The rhythm metrics (:data:`RHYTHM_METRICS`) of one motion (T, 24, 3) against its music's 60 fps
    beat one-hot (T_music,).

    ``bas`` averages over the protocol's beats (``bas_average_over``; music for both named protocols),
    ``bas_motion`` over the motion beats (FACT's direction), both with the protocol's motion beats and
    σ; ``bas_chance`` is :func:`shifted_beat_align_scores` in the ``bas`` direction averaged over
    :func:`chance_shifts`; phase locking uses the same beats."""
    beats, length = detect_motion_beats(joints, protocol.motion_beat_sigma)
    music = np.flatnonzero(np.asarray(music_beat_onehot).ravel()[:length].astype(bool))
    bas = beat_align_score(music, beats, protocol.bas_sigma, protocol.bas_average_over)
    shifts = chance_shifts(length, n_shifts, min_shift_frames)
    chance = float(
        shifted_beat_align_scores(
            music, beats, length, shifts, protocol.bas_sigma, protocol.bas_average_over
        ).mean()
    )
    r, mean_phase = phase_locking(beat_phases(music, beats))
    return {
        "bas": bas,
        "bas_motion": beat_align_score(music, beats, protocol.bas_sigma, "motion"),
        "bas_chance": chance,
        "bas_excess": bas - chance,
        "phase_lock_r": r,
        "phase_lock_mean_phase": mean_phase,
    }
