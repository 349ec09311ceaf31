"""Music of the embedded mini dataset, synthesised per genre (written as ``wavs/<music_id>.wav``, 16-bit).

A drum kit (kick on every beat plus genre fills, snare on the backbeats, hi-hats on eighths or
sixteenths), a bass line and chord pads following a four-bar progression, at the AIST tempo of its id
(``mBR2`` -> 100 BPM, ``mHO1`` -> 115 BPM). Beat k is at ``k * 60 / bpm`` seconds, starting at 0.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import oaconvolve

from danceba.data.mini_styles import GENRE_STYLES, GenreStyle


def _midi_hz(midi: np.ndarray | float) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69.0) / 12.0)


def _harmonics(phase: np.ndarray, count: int, power: int) -> np.ndarray:
    """sum_{h=1..count} sin(h * phase) / h**power, by the recurrence sin(hx) = 2 cos x sin((h-1)x) - sin((h-2)x)."""
    two_cos, previous, current = 2 * np.cos(phase), np.zeros_like(phase), np.sin(phase)
    total = current.copy()
    for h in range(2, count + 1):
        previous, current = current, two_cos * current - previous
        total += current / h**power
    return total


def _drum_shots(style: GenreStyle, sample_rate: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One-shot samples (each (L,) float64) for kick, snare, closed and open hi-hat."""
    t = np.arange(int(0.4 * sample_rate)) / sample_rate
    kick_hz = style.kick_hz + 120.0 * np.exp(-t / 0.025)  # pitch drop
    kick = np.sin(2 * np.pi * np.cumsum(kick_hz) / sample_rate) * np.exp(-t / 0.18)
    bright = np.diff(rng.standard_normal((3, t.size + 2)), n=2, axis=-1) / 4.0  # high-passed noise
    snare = (0.6 * bright[0] + 0.4 * np.sin(2 * np.pi * 190.0 * t)) * np.exp(-t / 0.09)
    hat = bright[1] * np.exp(-t / style.hat_decay_s)
    open_hat = 0.7 * bright[2] * np.exp(-t / 0.15)
    return {"kick": kick, "snare": snare, "hat": hat, "open_hat": open_hat}


def synthesize_music(
    genre: str, bpm: float, seconds: float, sample_rate: int, rng: np.random.Generator
) -> np.ndarray:
    """A loop of drums, bass and chord pads at ``bpm``; beat k at ``k * 60 / bpm`` s. Returns (S,) float32.

    Peak-normalised to 0.9, with a little noise. ``rng`` fixes the key, drum noise and the noise floor.
    """
    style = GENRE_STYLES[genre]
    n = round(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    step = 15.0 / bpm  # one sixteenth note, seconds
    k = np.arange(int(seconds / step) + 1)
    onsets = k * step + style.swing * step * (k % 2)
    accent = np.where(k % 4 == 0, 1.0, 0.7)
    shots = _drum_shots(style, sample_rate, rng)

    def place(pattern: str, char: str, shot: np.ndarray) -> np.ndarray:
        sample = np.round(onsets * sample_rate).astype(int)
        hit = np.array([pattern[i % 16] == char for i in k]) & (sample < n)
        train = np.zeros(n)
        np.add.at(train, sample[hit], accent[hit])
        return oaconvolve(train, shot)[:n]

    drums = (
        place(style.kick, "x", shots["kick"])
        + 0.55 * place(style.snare, "x", shots["snare"])
        + 0.25 * place(style.hat, "x", shots["hat"])
        + 0.25 * place(style.hat, "o", shots["open_hat"])
    )
    key = int(rng.integers(36, 48))  # bass key, C2..B2
    chord = np.array(style.chords)[(k // 16) % len(style.chords)]  # (steps, 2) per sixteenth
    bass_steps = np.flatnonzero([style.bass[i % 16] == "x" for i in k])
    note = np.clip(np.searchsorted(onsets[bass_steps], t, side="right") - 1, 0, None)
    tau = np.maximum(t - onsets[bass_steps][note], 0.0)
    bass_hz = _midi_hz(key + chord[bass_steps[note], 0])
    bass_env = (1.0 - np.exp(-tau / 0.004)) * np.exp(-tau / 0.25)
    bass = bass_env * _harmonics(2 * np.pi * bass_hz * tau, style.bass_harmonics, power=1)

    bar_s = 16 * step
    chords = np.array(style.chords, dtype=np.float64)  # (bars in the progression, 2)
    triads = (
        key + 24 + chords[:, :1] + np.stack([0 * chords[:, 1], 4 - chords[:, 1], 7 + 0 * chords[:, 1]], 1)
    )
    bar = (t // bar_s).astype(int) % len(chords)
    phase = 2 * np.pi * _midi_hz(triads)[bar] * t[:, None]  # (S, 3) one column per chord note
    pad_env = np.sin(np.pi * (t % bar_s) / bar_s) ** 2
    pad = pad_env * _harmonics(phase, style.pad_harmonics, power=2).sum(axis=1)
    music = drums + 0.35 * bass + 0.12 * pad + 0.003 * rng.standard_normal(n)
    return (0.9 * music / np.abs(music).max()).astype(np.float32)
