"""BAS chance and excess, beat phase locking: hand-made motions whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from danceba.control_rows import delayed_joints, half_beat_frames
from danceba.metrics import BAILANDO, beat_align_score, motion_beat_align_score
from danceba.rhythm_metrics import (
    RHYTHM_METRICS,
    beat_phases,
    chance_shifts,
    circular_mean_phase,
    phase_locking,
    rhythm_scores,
    shifted_beat_align_scores,
    wrap_phase,
)

PERIOD, FRAMES, FIRST_BEAT = 30, 601, 15  # 120 BPM at 60 fps, 10 s
MIN_SHIFT = 60


def dance_with_speed(speed: np.ndarray) -> np.ndarray:
    """(len(speed) + 1, 24, 3) joints all translating along x with the given per-frame speed."""
    p = np.zeros((len(speed) + 1, 24, 3))
    p[:, :, 0] = np.concatenate([[0.0], np.cumsum(speed)])[:, None]
    return p


def beat_grid(frames: int = FRAMES, period: int = PERIOD, first: int = FIRST_BEAT) -> np.ndarray:
    onehot = np.zeros(frames)
    onehot[first::period] = 1
    return onehot


def beat_locked(frames: int = FRAMES, period: int = PERIOD, first: int = FIRST_BEAT) -> np.ndarray:
    """Joint speed minima exactly on the beat grid ``first + k * period``."""
    t = np.arange(frames - 1)
    return dance_with_speed(0.01 * (1.5 - np.cos(2 * np.pi * (t - first) / period)))


def scores(joints: np.ndarray, onehot: np.ndarray) -> dict[str, float]:
    return rhythm_scores(joints, onehot, BAILANDO, n_shifts=16, min_shift_frames=MIN_SHIFT)


# ---------------------------------------------------------------- chance shifts and shifted BAS


def test_chance_shifts_stay_away_from_zero_on_the_circle() -> None:
    shifts = chance_shifts(600, 16, 60)
    assert shifts.shape == (16,) and shifts.dtype == np.int64
    assert shifts.min() >= 60 and (600 - shifts).min() >= 60
    assert len(set(shifts.tolist())) == 16  # spread, not repeated
    np.testing.assert_array_equal(chance_shifts(600, 16, 60), shifts)  # deterministic
    with pytest.raises(ValueError, match="no shift at least 60 frames"):
        chance_shifts(100, 16, 60)
    with pytest.raises(ValueError, match="at least 1 shift"):
        chance_shifts(600, 0, 60)


def test_shift_zero_is_the_published_bas_in_both_directions(rng: np.random.Generator) -> None:
    music = np.sort(rng.choice(500, 25, replace=False))
    motion = np.sort(rng.choice(500, 40, replace=False))
    for direction in ("music", "motion"):
        got = shifted_beat_align_scores(music, motion, 500, np.array([0]), 3.0, direction)
        assert got.shape == (1,)
        assert got[0] == pytest.approx(beat_align_score(music, motion, 3.0, direction), rel=1e-12)


def test_shifted_bas_moves_the_music_beats_circularly() -> None:
    music, motion = np.array([10, 40, 70]), np.array([15, 45, 75])
    got = shifted_beat_align_scores(music, motion, 90, np.array([5, 10]))
    np.testing.assert_allclose(got, [1.0, np.exp(-25 / 18)])  # +5 aligns; +10 overshoots by 5
    wrapped = shifted_beat_align_scores(np.array([85]), np.array([5]), 90, np.array([10]))
    assert wrapped[0] == pytest.approx(1.0)  # 85 + 10 wraps to 5
    with pytest.raises(ValueError, match="no motion beats"):
        shifted_beat_align_scores(music, np.array([], dtype=int), 90, np.array([1]))


def test_golden_ratio_shifts_do_not_alias_with_the_beat_period() -> None:
    """A 90 BPM piece of 12 s: an arithmetic 16-point grid over [60, 659] steps by 39.9 frames against a
    40-frame period and samples one phase; the golden-ratio shifts find the true chance level."""
    frames, period = 720, 40
    music = np.arange(20, frames - 1, period)
    want = np.exp(-(np.arange(-20, 20) ** 2) / 18).mean()  # uniform phase offset, nearest beat
    golden = shifted_beat_align_scores(music, music, frames - 1, chance_shifts(frames - 1, 16, 60)).mean()
    grid = shifted_beat_align_scores(
        music, music, frames - 1, np.round(np.linspace(60, frames - 61, 16)).astype(int)
    ).mean()
    assert golden == pytest.approx(want, abs=0.06)
    assert abs(grid - want) > 0.1  # what the grid would have reported


# ---------------------------------------------------------------- phases


def test_beat_phases_on_a_hand_grid() -> None:
    music = np.array([0, 10, 20, 40])
    motion = np.array([-3, 5, 12, 30, 40, 55])  # -3 before the grid; 40 and 55 at / after its last beat
    np.testing.assert_allclose(beat_phases(music, motion), [0.5, 0.2, 0.5])
    with pytest.raises(ValueError, match="at least 2 music beats"):
        beat_phases(np.array([3]), motion)


def test_phase_locking_strength_and_mean() -> None:
    assert phase_locking(np.array([0.25, 0.25, 0.25])) == pytest.approx((1.0, 0.25))
    r, _ = phase_locking(np.array([0.0, 0.5]))
    assert r == pytest.approx(0.0, abs=1e-12)
    r, mean = phase_locking(np.array([0.9, 0.1]))  # either side of the beat: mean on the beat
    assert r == pytest.approx(np.cos(0.2 * np.pi)) and mean == pytest.approx(0.0, abs=1e-12)
    assert np.isnan(phase_locking(np.array([]))).all()
    np.testing.assert_allclose(wrap_phase([0.5, -0.5, 0.75, 1.0]), [-0.5, -0.5, -0.25, 0.0])


def test_circular_mean_phase_weights_and_nans() -> None:
    phases = np.array([[0.1, 0.3, np.nan], [0.45, -0.45, 0.0]])
    got = circular_mean_phase(phases, np.array([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]]))
    np.testing.assert_allclose(got, [0.2, -0.5], atol=1e-12)
    assert circular_mean_phase(np.array([0.1, 0.4]), np.array([1.0, 0.0])) == pytest.approx(0.1)
    assert np.isnan(circular_mean_phase(np.array([np.nan, np.nan])))


# ---------------------------------------------------------------- whole motions


def test_a_beat_locked_motion_scores_one_far_above_its_chance() -> None:
    got = scores(beat_locked(), beat_grid())
    assert set(got) == set(RHYTHM_METRICS)
    assert got["bas"] == pytest.approx(1.0) and got["bas_motion"] == pytest.approx(1.0)
    assert got["bas"] == pytest.approx(motion_beat_align_score(beat_locked(), beat_grid(), BAILANDO))
    chance = np.exp(-(np.arange(-15, 15) ** 2) / 18).mean()  # 0.25: uniform phase on a 30-frame grid
    assert got["bas_chance"] == pytest.approx(chance, abs=0.06)
    assert got["bas_excess"] > 0.65
    assert got["phase_lock_r"] == pytest.approx(1.0)
    assert got["phase_lock_mean_phase"] == pytest.approx(0.0, abs=1e-9)


def test_half_a_beat_late_keeps_the_lock_but_loses_bas() -> None:
    onehot = beat_grid()
    shift = half_beat_frames(onehot, FRAMES - 1)
    assert shift == PERIOD // 2
    got = scores(delayed_joints(beat_locked(), shift), onehot)
    assert got["bas"] < 0.01 and got["bas_excess"] < -0.1
    assert got["phase_lock_r"] == pytest.approx(1.0, abs=1e-6)
    assert abs(got["phase_lock_mean_phase"]) == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize("noise_m", [1e-4, 1e-2])  # a still pose with tiny noise; white-noise jitter
def test_motion_unrelated_to_the_music_has_no_excess_and_no_lock(noise_m: float) -> None:
    rng = np.random.default_rng(7)
    pieces = [scores(rng.normal(0, noise_m, (FRAMES, 24, 3)), beat_grid()) for _ in range(8)]
    excess = np.mean([p["bas_excess"] for p in pieces])
    assert abs(excess) < 0.06
    assert np.mean([p["bas"] for p in pieces]) > 0.15  # BAS alone looks respectable...
    assert np.mean([p["phase_lock_r"] for p in pieces]) < 0.3  # ...phase locking does not


def test_bad_inputs_name_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="no music beats"):
        scores(beat_locked(), np.zeros(FRAMES))
    with pytest.raises(ValueError, match="1-d array"):
        beat_phases(np.zeros((2, 2)), np.array([1]))
    with pytest.raises(ValueError, match="sigma must be positive"):
        shifted_beat_align_scores(np.array([1]), np.array([1]), 10, np.array([1]), sigma=0.0)
