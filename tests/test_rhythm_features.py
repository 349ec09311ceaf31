"""Token-rate rhythm features from the 60 fps beats, music normalisation in the GPT, the sham-music CE."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from danceba.data.windows import TokenWindows
from danceba.features.columns import (
    BEAT_AT_FRAME,
    BEAT_COLUMN,
    BEAT_PERIOD,
    ONSET_AT_FRAME,
    ONSET_ENVELOPE,
    PHASE_SIN_COS,
)
from danceba.features.rhythm import beat_phase, token_condition, token_rhythm_features, with_token_rhythm
from danceba.models.gpt import build_gpt
from danceba.trainers.gpt import music_statistics, sham_music_windows
from tests.tiny_models import TINY_GPT


def features_with_beats(n_frames: int, beats: np.ndarray) -> np.ndarray:
    features = np.zeros((n_frames, 438), np.float32)
    features[beats, BEAT_COLUMN] = 1.0
    features[beats, ONSET_ENVELOPE] = 2.0
    return features


def test_beat_phase_is_linear_between_beats_and_continues_outside():
    phase, period = beat_phase(np.array([10, 40, 70]), 100)
    assert phase[10] == 0 and phase[40] == 0 and phase[70] == 0
    assert phase[25] == pytest.approx(0.5)
    assert phase[0] == pytest.approx((0 - 10) / 30 % 1)  # before the first beat: the first interval
    assert phase[85] == pytest.approx(0.5)  # after the last beat: the last interval
    assert set(np.unique(period)) == {30.0}


def test_beat_phase_without_two_beats_is_zero():
    phase, period = beat_phase(np.array([5]), 20)
    assert not phase.any() and not period.any()


def test_token_rhythm_marks_the_beat_frame_inside_its_token():
    beats = np.array([3, 35, 67, 99])  # every 32 frames = 112.5 BPM, at offset 3 of tokens 0, 4, 8, 12
    rhythm = token_rhythm_features(features_with_beats(128, beats), 16)
    assert rhythm.shape == (16, 21) and rhythm.dtype == np.float32
    hits = np.argwhere(rhythm[:, BEAT_AT_FRAME] == 1)
    assert hits.tolist() == [[0, 3], [4, 3], [8, 3], [12, 3]]
    assert np.allclose(rhythm[:, BEAT_PERIOD], 32 / 60)
    assert np.allclose(rhythm[4, ONSET_AT_FRAME][3], 1.0)  # onset divided by the song's 99th percentile
    # frame 8j sits (8j - 3) / 32 beats after a beat: token 2 (frame 16) is at phase 13/32
    sin, cos = rhythm[2, PHASE_SIN_COS][:2]
    assert np.arctan2(sin, cos) % (2 * np.pi) == pytest.approx(2 * np.pi * 13 / 32, abs=1e-5)


def test_token_rhythm_pads_past_the_60fps_end_and_rejects_bad_input():
    rhythm = token_rhythm_features(features_with_beats(121, np.array([0, 30, 60, 90])), 16)
    assert not rhythm[15, BEAT_AT_FRAME].any()  # frames 120..127: only 120 exists, no beat there
    assert np.isfinite(rhythm).all()
    with pytest.raises(ValueError, match="features_60fps"):
        token_rhythm_features(np.zeros((10, 3)), 2)
    joined = with_token_rhythm(np.ones((16, 438)), features_with_beats(128, np.array([0, 32])))
    assert joined.shape == (16, 459) and (joined[:, :438] == 1).all()


def test_token_condition_none_append_only():
    at_7p5, at_60 = np.full((16, 438), 3.0), features_with_beats(128, np.array([0, 32, 64]))
    assert np.array_equal(token_condition(at_7p5, at_60, "none"), at_7p5)
    assert token_condition(at_7p5, at_60, "append").shape == (16, 459)
    only = token_condition(at_7p5, at_60, "only")
    assert np.array_equal(only, token_rhythm_features(at_60, 16))
    with pytest.raises(ValueError, match="token_rhythm"):
        token_condition(at_7p5, at_60, "both")


def test_music_norm_z_scores_before_the_embedding_and_travels_in_the_state_dict():
    config = replace(TINY_GPT, music_norm=True)
    model = build_gpt(config).eval()
    mean, std = torch.linspace(-1, 1, config.n_music), torch.linspace(0, 2, config.n_music)
    model.gpt_base.set_music_statistics(mean, std)
    assert model.gpt_base.music_std[0] == 1.0  # a constant column is divided by 1, not 0
    music = torch.randn(2, 5, config.n_music)
    assert torch.allclose(model.gpt_base.normalise_music(music), (music - mean) / model.gpt_base.music_std)
    copy = build_gpt(config).eval()
    copy.load_state_dict(model.state_dict())
    up = torch.randint(0, config.vocab_up, (2, 5))
    assert torch.equal(copy(up, up, music)[0], model(up, up, music)[0])
    plain = build_gpt(TINY_GPT)
    assert "gpt_base.music_mean" not in plain.state_dict()
    with pytest.raises(ValueError, match="music_norm=False"):
        plain.gpt_base.set_music_statistics(mean, std)


def windows(n_music: int = 4) -> TokenWindows:
    rng = np.random.default_rng(0)
    music = {f"m{i}": rng.normal(i, 1, (40, n_music)).astype(np.float32) for i in range(3)}
    ids = ["m0", "m1", "m2", "m0"]
    return TokenWindows(
        rng.integers(0, 8, (4, 6)), rng.integers(0, 8, (4, 6)), ids, np.array([0, 3, 30, 34]), music
    )


def test_sham_music_pairs_every_window_with_another_song():
    data = windows()
    sham = sham_music_windows(data, seed=1)
    assert all(a != b for a, b in zip(data.music_id, sham.music_id, strict=True))
    assert torch.equal(sham.up, data.up)
    assert (sham.music_start + 1 + sham.block <= 40).all()  # starts clamped to fit the other song
    with pytest.raises(ValueError, match="two music ids"):
        sham_music_windows(
            TokenWindows(
                data.up.numpy(), data.down.numpy(), ["m0"] * 4, np.zeros(4), {"m0": data.music["m0"].numpy()}
            )
        )


def test_music_statistics_are_over_every_frame_of_every_song():
    data = windows()
    mean, std = music_statistics(data)
    frames = torch.cat([data.music[k] for k in sorted(data.music)])
    assert torch.allclose(mean, frames.mean(0)) and torch.allclose(std, frames.std(0, correction=0))
