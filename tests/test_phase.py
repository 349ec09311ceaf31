"""STFT phase features (PRE input): shapes, crop, values against numpy, per-channel reading."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from danceba.features.phase import official_stft_phase, per_channel_stft_phase


def _uncropped(music: torch.Tensor) -> torch.Tensor:
    return official_stft_phase(music, seq_len=10**9)


def test_official_t29_has_50_frames_cropped_to_the_middle_29(rng):
    music = torch.from_numpy(rng.standard_normal((2, 29, 438)).astype(np.float32))
    full = _uncropped(music)
    assert full.shape == (2, 50, 257)
    phase = official_stft_phase(music)
    assert phase.shape == (2, 29, 257)
    torch.testing.assert_close(phase, full[:, 10:39])


def test_official_t28_has_48_frames_cropped_to_29(rng):
    music = torch.from_numpy(rng.standard_normal((1, 28, 438)).astype(np.float32))
    assert _uncropped(music).shape == (1, 48, 257)
    phase = official_stft_phase(music)
    assert phase.shape == (1, 29, 257)
    torch.testing.assert_close(phase, _uncropped(music)[:, 9:38])


@pytest.mark.parametrize("t", [1, 2, 7, 16])
def test_official_short_windows_are_not_cropped(rng, t):
    music = torch.from_numpy(rng.standard_normal((1, t, 438)).astype(np.float32))
    assert official_stft_phase(music).shape == (1, 1 + (438 * t) // 256, 257)


def test_official_matches_numpy_rfft_of_reflect_padded_frames(rng):
    music = rng.standard_normal((2, 3, 50))  # 150 samples per item
    n_fft, hop = 32, 16
    phase = official_stft_phase(torch.from_numpy(music), n_fft=n_fft, hop_length=hop, seq_len=1000).numpy()
    for b in range(2):
        signal = np.pad(music[b].reshape(-1), n_fft // 2, mode="reflect")
        frames = 1 + (signal.size - n_fft) // hop
        expected = np.stack([np.angle(np.fft.rfft(signal[k * hop : k * hop + n_fft])) for k in range(frames)])
        assert phase[b].shape == expected.shape == (1 + 150 // hop, n_fft // 2 + 1)
        # Compare on the unit circle: angles of near-real bins may sit at +pi vs -pi.
        np.testing.assert_allclose(np.exp(1j * phase[b]), np.exp(1j * expected), atol=1e-9)


def test_half_precision_input_is_computed_in_float32(rng):
    music = torch.from_numpy(rng.standard_normal((1, 29, 438)).astype(np.float32)).bfloat16()
    phase = official_stft_phase(music)
    assert phase.dtype == torch.bfloat16
    torch.testing.assert_close(phase.float(), official_stft_phase(music.float()), atol=0.02, rtol=0)


def test_official_rejects_signals_too_short_to_reflect_pad():
    with pytest.raises(ValueError, match="more than 256 samples"):
        official_stft_phase(torch.zeros(1, 1, 200))


def test_official_rejects_wrong_rank():
    with pytest.raises(ValueError, match=r"\(B, t, C\)"):
        official_stft_phase(torch.zeros(29, 438))


def test_per_channel_shape_and_channel_layout(rng):
    music = torch.from_numpy(rng.standard_normal((2, 20, 3)).astype(np.float32))
    phase = per_channel_stft_phase(music)
    assert phase.shape == (2, 20, 3 * 5)
    alone = per_channel_stft_phase(music[:, :, 1:2])  # channel 1 on its own
    torch.testing.assert_close(phase[:, :, 5:10], alone)


def test_per_channel_pure_sinusoid_phase_advances_linearly():
    n_fft, t, k = 8, 64, 1  # bin 1: the sinusoid completes one cycle per 8 frames
    time = np.arange(t)
    music = torch.from_numpy(np.cos(2 * np.pi * k * time / n_fft))[None, :, None]
    phase = per_channel_stft_phase(music, n_fft=n_fft).numpy()[0, :, k]
    interior = phase[n_fft : t - n_fft]  # away from the reflect-padded ends
    step = np.angle(np.exp(1j * np.diff(interior)))  # wrapped phase increment per frame
    np.testing.assert_allclose(step, 2 * np.pi * k / n_fft, atol=1e-9)


def test_phase_functions_have_no_parameters_and_build_no_graph(rng):
    music = torch.from_numpy(rng.standard_normal((1, 29, 438)).astype(np.float32))
    assert not official_stft_phase(music).requires_grad
    assert not per_channel_stft_phase(music).requires_grad
