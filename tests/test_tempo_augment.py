"""Tempo augmentation on hand-made music and motion with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from danceba.features.columns import BEAT_COLUMN, BEAT_PERIOD, N_BAILANDO_FEATURES, ONSET_ENVELOPE
from danceba.features.motion import motion_beats
from danceba.features.rhythm import token_rhythm_features
from danceba.features.tempo_augment import (
    stretch_frames,
    stretch_music_frames,
    stretched_condition,
    stretched_id,
    stretched_length,
)
from danceba.strict_dataclass import ConfigError, build_dataclass
from danceba.tokenize_config import TokenizeConfig


def music_with_beats(n_frames: int, period: int) -> np.ndarray:
    """(n_frames, 438) features: beat one-hot every ``period`` frames, an onset spike on each beat."""
    features = np.zeros((n_frames, N_BAILANDO_FEATURES))
    features[::period, BEAT_COLUMN] = 1.0
    features[::period, ONSET_ENVELOPE] = 1.0
    features[:, 0] = np.arange(n_frames)  # a ramp in the first MFCC
    return features


def beat_locked_motion(n_frames: int, period: int) -> np.ndarray:
    """(n_frames, 24, 3): every joint swings sideways, at rest (speed minimum) on every beat."""
    t = np.arange(n_frames)
    x = np.cos(2 * np.pi * t / (2 * period))  # turning points (speed 0) at multiples of period
    return np.repeat(np.stack([x, np.zeros_like(x), np.zeros_like(x)], -1)[:, None], 24, axis=1)


def test_stretching_plays_the_frames_faster() -> None:
    ramp = np.arange(10.0)[:, None]
    assert stretched_length(10, 2.0) == 5 and stretched_length(10, 0.5) == 19
    np.testing.assert_allclose(stretch_frames(ramp, 2.0)[:, 0], [0, 2, 4, 6, 8])
    np.testing.assert_allclose(stretch_frames(ramp, 0.5)[:, 0], np.arange(19) / 2)
    assert stretched_id("mBR1", 1.1) == "mBR1x1.10"


def test_beats_move_with_the_tempo_and_stay_one_hot() -> None:
    music = music_with_beats(720, 30)  # 120 BPM at 60 fps
    faster = stretch_music_frames(music, 1.25)
    np.testing.assert_array_equal(np.flatnonzero(faster[:, BEAT_COLUMN]), np.arange(0, len(faster), 24))
    assert set(np.unique(faster[:, BEAT_COLUMN])) == {0.0, 1.0}
    np.testing.assert_allclose(faster[:5, 0], np.arange(5) * 1.25)  # other columns interpolated


def test_the_stretched_condition_reads_the_new_tempo() -> None:
    music = music_with_beats(720, 30)
    condition = stretched_condition(music, np.zeros((90, 21)), 1.25, "only")
    assert condition.shape == (72, 21)
    np.testing.assert_allclose(condition[:60, BEAT_PERIOD], 24 / 60)  # 150 BPM
    slower = stretched_condition(music, np.zeros((90, 21)), 0.8, "only")
    np.testing.assert_allclose(slower[:90, BEAT_PERIOD], 37.5 / 60, atol=1 / 60)
    np.testing.assert_array_equal(
        stretched_condition(music, np.zeros((90, 21)), 1.0, "only"), token_rhythm_features(music, 90)
    )
    with pytest.raises(ValueError, match="bailando438"):
        stretched_condition(music[:, :35], np.zeros((90, 35)), 1.25, "none")


def test_appended_rhythm_columns_are_recomputed_and_bailando_columns_stretched() -> None:
    at_60 = music_with_beats(720, 30)
    at_7p5 = np.concatenate([at_60[::8], token_rhythm_features(at_60, 90)], axis=1)
    condition = stretched_condition(at_60, at_7p5, 1.25, "append")
    assert condition.shape == (72, N_BAILANDO_FEATURES + 21)
    np.testing.assert_allclose(condition[:10, 0], np.arange(10) * 1.25 * 8)
    np.testing.assert_allclose(condition[:60, N_BAILANDO_FEATURES + BEAT_PERIOD], 24 / 60)


def test_a_beat_locked_dance_stays_on_the_stretched_beats() -> None:
    period = 30
    music, motion = music_with_beats(720, period), beat_locked_motion(720, period)
    for factor in (0.85, 1.15):
        beats = np.flatnonzero(stretch_music_frames(music, factor)[:, BEAT_COLUMN])
        moves, n_frames = motion_beats(stretch_frames(motion, factor))
        inner = beats[(beats > 20) & (beats < n_frames - 20)]
        distance = np.abs(inner[:, None] - moves[None]).min(axis=1)
        assert distance.max() <= 1, (factor, distance)
        assert len(moves) == pytest.approx(len(inner), abs=2)


@pytest.mark.parametrize("factors", [[1.0], [0.9, 0.9], [0.9, 0.904], [2.5], [0.4]])
def test_tokenize_refuses_factors_that_are_not_augmentations(factors: list[float]) -> None:
    with pytest.raises(ConfigError, match="tempo_factors"):
        build_dataclass(TokenizeConfig, {"tempo_factors": factors}, "tokenize")
