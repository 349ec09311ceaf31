"""STFT phase of the music features: the input of Danceba's Phase-based Rhythm Extraction (PRE).

Two readings of "the phase of the music":

* ``official`` (default, what Danceba's released ``models/LPE.py`` computes): each item's
  ``(t, C)`` window of 7.5 fps music features is flattened time-major into ONE signal of ``t * C``
  samples, then ``angle(stft(signal, n_fft=512, hop=256))`` with torch's defaults (rectangular
  window, ``center=True``, reflect padding, one-sided: 257 bins), frames first, centre-cropped to
  ``seq_len`` frames. For t = 29, C = 438: 12702 samples, 50 frames, frames 10..38 kept. For
  t = 28: 48 frames, frames 9..37 kept. For t < 17 there is no crop and there are
  ``1 + floor(438 t / 256)`` frames (more than t: the official code then adds mis-aligned slices;
  that is the model's business, not this function's).
* ``per_channel`` (the paper text's reading): an STFT over time for each of the C channels,
  hop 1, so that every music frame gets one phase vector of ``C * (n_fft // 2 + 1)`` values.

Both are plain functions without parameters: they are differentiable where ``torch.angle`` is, and
build no autograd graph for inputs that do not require gradients (music features never do).

Short inputs: ``center=True`` reflect-pads ``n_fft // 2`` samples on each side, which torch can only
do when the signal has more than ``n_fft // 2`` samples. ``official_stft_phase`` therefore needs
``t * C > n_fft // 2`` (t = 1 with 438 channels is fine: 438 > 256) and ``per_channel_stft_phase``
needs ``t > n_fft // 2`` (t >= 5 at n_fft 8). Shorter inputs raise a ``ValueError`` saying so.

The model computes the phase of each window it sees (``models/pre.py``), as the released code does;
no pipeline stage writes it to disk (a table per song would repeat what every forward computes, and
at window edges the padding differs from the window the model sees).
"""

from __future__ import annotations

from typing import Literal

import torch
from einops import rearrange

PhaseMode = Literal["official", "per_channel"]


def _check_music(music: torch.Tensor, name: str = "music") -> None:
    if not isinstance(music, torch.Tensor) or music.dim() != 3:
        shape = tuple(music.shape) if isinstance(music, torch.Tensor) else type(music).__name__
        raise ValueError(f"{name}: expected a (B, t, C) tensor, got {shape}")
    if not torch.is_floating_point(music):
        raise ValueError(f"{name}: expected a floating-point tensor, got {music.dtype}")


def _stft_phase(signal: torch.Tensor, n_fft: int, hop_length: int, what: str) -> torch.Tensor:
    """angle(STFT) of (N, L) signals with torch's defaults -> (N, frames, n_fft // 2 + 1)."""
    length = signal.shape[-1]
    if length <= n_fft // 2:
        raise ValueError(
            f"{what}: the STFT reflect-pads n_fft//2 = {n_fft // 2} samples on each side, so the signal "
            f"needs more than {n_fft // 2} samples; got {length}"
        )
    dtype = signal.dtype
    if dtype not in (torch.float32, torch.float64):
        signal = signal.float()  # torch.stft has no half / bfloat16 kernels
    window = torch.ones(n_fft, dtype=signal.dtype, device=signal.device)  # torch's default (window=None)
    spectrum = torch.stft(
        signal,
        n_fft=n_fft,
        hop_length=hop_length,
        window=window,
        center=True,
        pad_mode="reflect",
        onesided=True,
        return_complex=True,
    )  # (N, bins, frames)
    return torch.angle(spectrum).transpose(1, 2).to(dtype)  # (N, frames, bins)


def official_stft_phase(
    music: torch.Tensor, n_fft: int = 512, hop_length: int = 256, seq_len: int = 29
) -> torch.Tensor:
    """Danceba's official PRE phase.

    music (B, t, C) -> phase (B, F, n_fft // 2 + 1), F = min(1 + t*C // hop_length, seq_len).

    Flattens time x channel into one signal per batch item (B, t*C), takes ``torch.stft`` with
    torch's defaults (rectangular window, center=True, reflect padding, one-sided), its angle,
    frames first, and centre-crops to ``seq_len`` frames when there are more
    (start = (frames - seq_len) // 2).
    """
    _check_music(music)
    batch = music.shape[0]
    signal = music.reshape(batch, -1)  # (B, t*C), time-major like the official `view(B, -1)`
    phase = _stft_phase(
        signal, n_fft, hop_length, f"official_stft_phase(music of shape {tuple(music.shape)})"
    )
    frames = phase.shape[1]
    if frames > seq_len:
        start = (frames - seq_len) // 2
        phase = phase[:, start : start + seq_len]
    return phase


def per_channel_stft_phase(music: torch.Tensor, n_fft: int = 8, hop_length: int = 1) -> torch.Tensor:
    """The paper-text reading: an STFT over time for each channel.

    music (B, t, C) -> (B, ceil(t / hop_length), C * (n_fft // 2 + 1)), channel-major in the last
    axis (channel c's bins are ``[c * bins, (c + 1) * bins)``). With ``center=True`` frame k is
    centred on music frame ``k * hop_length``, so at the default hop 1 there is one phase vector per
    music frame; the trailing extra frame of the centred STFT is cropped.
    """
    _check_music(music)
    batch, t, _ = music.shape
    signal = rearrange(music, "b t c -> (b c) t")
    phase = _stft_phase(
        signal, n_fft, hop_length, f"per_channel_stft_phase(music of shape {tuple(music.shape)})"
    )
    frames = -(-t // hop_length)  # frames centred on samples 0, hop, ..., < t
    phase = phase[:, :frames]  # (B*C, frames, bins)
    return rearrange(phase, "(b c) f k -> b f (c k)", b=batch)
