"""The generate stage's controls: the sham-music derangement and the VQ-VAE reconstruction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from danceba.data.aistpp import music_tempo_bpm
from danceba.floor import FLOOR_JOINT_HEIGHT_M
from danceba.generation.dances import (
    Song,
    fit_length,
    music_derangement,
    reconstruct_joints,
    reconstruction_dances,
    sham_music_songs,
)
from danceba.models.vqvae import SepVQVAE, SepVQVAER
from danceba.models.vqvae_config import VQVAEConfig

TINY_VQVAE = VQVAEConfig(width=16, depth=1, emb_width=16, l_bins=16)


def test_derangement_moves_every_music_id_and_avoids_equal_tempos() -> None:
    ids = ["mBR0", "mPO0", "mBR1", "mPO1", "mHO4", "mLO2"]  # 80, 80, 90, 90, 130, 100 BPM
    other = music_derangement(ids + ids[:2], seed=3)  # repeats are one id
    assert sorted(other) == sorted(ids) and sorted(other.values()) == sorted(ids)
    assert all(other[m] != m for m in ids)
    assert all(music_tempo_bpm(m) != music_tempo_bpm(other[m]) for m in ids)
    assert music_derangement(ids, seed=3) == other  # seeded
    assert any(music_derangement(ids, seed=s) != other for s in range(4, 10))
    assert music_derangement(["a", "b"], seed=0) == {"a": "b", "b": "a"}  # unknown tempos are fine
    with pytest.raises(ValueError, match="at least 2 distinct music ids"):
        music_derangement(["mBR0", "mBR0"], seed=0)


def test_fit_length_crops_or_tiles_from_the_start() -> None:
    features = np.arange(10.0).reshape(5, 2)
    np.testing.assert_array_equal(fit_length(features, 3), features[:3])
    np.testing.assert_array_equal(fit_length(features, 7), features[[0, 1, 2, 3, 4, 0, 1]])
    with pytest.raises(ValueError, match="length must be positive"):
        fit_length(features, 0)


def test_sham_songs_hear_another_song_at_their_own_length() -> None:
    rng = np.random.default_rng(0)
    music_of = {f"piece{k}": f"mBR{k % 3}" for k in range(6)}
    features = {m: rng.normal(size=(10 + 3 * i, 4)) for i, m in enumerate(sorted(set(music_of.values())))}
    songs = [Song(name, features[m], k, 10 + k) for k, (name, m) in enumerate(music_of.items())]
    shams, fed = sham_music_songs(songs, music_of, seed=1)
    assert [s.name for s in shams] == [s.name for s in songs]
    for song, sham in zip(songs, shams, strict=True):
        assert fed[song.name] != music_of[song.name]  # no piece keeps its own music id
        assert (sham.first_up, sham.first_down) == (song.first_up, song.first_down)
        assert sham.music_7p5fps.shape == song.music_7p5fps.shape
        donor = next(s for s in songs if music_of[s.name] == fed[song.name])
        np.testing.assert_array_equal(
            sham.music_7p5fps, fit_length(donor.music_7p5fps, len(song.music_7p5fps))
        )
    assert sham_music_songs(songs, music_of, seed=1)[1] == fed


@pytest.fixture(scope="module")
def vqvae() -> SepVQVAER:
    torch.manual_seed(0)
    model = SepVQVAER(TINY_VQVAE).train()
    SepVQVAE.forward(model, torch.randn(2, 64, 72))  # a stage-1 training forward initialises the codebooks
    return model.eval()


def test_reconstruction_has_the_ground_truth_s_length_cut_to_the_hop(vqvae: SepVQVAER) -> None:
    joints = np.random.default_rng(0).normal(size=(70, 24, 3)).astype(np.float32)
    out = reconstruct_joints(vqvae, joints)
    assert out.shape == (64, 24, 3) and out.dtype == np.float32 and np.isfinite(out).all()
    np.testing.assert_allclose(out[0, 0, [0, 2]], 0.0)  # root integrated from the decoded velocity, from 0
    assert abs(float(out[:, :, 1].min()) - FLOOR_JOINT_HEIGHT_M) < 1e-5  # and its height on the floor
    both = reconstruction_dances(vqvae, {"b": joints[:16], "a": joints})
    assert list(both) == ["a", "b"] and both["b"].shape == (16, 24, 3)
    np.testing.assert_array_equal(both["a"], out)
    with pytest.raises(ValueError, match="at least 8 frames"):
        reconstruct_joints(vqvae, joints[:7])
