"""Tempo augmentation: training dances and their music time-stretched together (``tokenize.tempo_factors``).

The embedded data has one tempo per song and 4 training songs per genre; most held-out songs have a tempo
outside their genre's training tempi, and the GPT overfits the few it sees (val CE flat after 600 steps).
A factor ``s`` plays a training sequence ``s`` times faster: motion and music frame ``t`` of the copy are
frame ``s·t`` of the original (linear interpolation between frames), so 120 BPM at ``s = 1.1`` becomes
132 BPM with the dance still on its beats. Music is stretched as features, not as audio: every feature
column is interpolated in time, and the beat one-hot column is re-placed at ``round(b / s)`` for each beat
``b`` (interpolating a one-hot would smear it), so the beats the rhythm columns derive from move exactly
with the motion. Only the training split is augmented; val and test stay as recorded.

A stretched copy of music ``mBR1`` at ``s = 1.1`` is keyed ``mBR1x1.10`` (:func:`stretched_id`), its
sequences ``<name>x1.10``.
"""

from __future__ import annotations

import numpy as np

from danceba.features.columns import BEAT_COLUMN, N_BAILANDO_FEATURES
from danceba.features.rhythm import token_condition


def stretched_id(name: str, factor: float) -> str:
    """The key of a stretched copy: ``mBR1`` at 1.1 -> ``mBR1x1.10``."""
    return f"{name}x{factor:.2f}"


def stretched_length(n_frames: int, factor: float) -> int:
    """Frames of a copy played ``factor`` times faster: every t' with s·t' <= n_frames - 1."""
    return int(np.floor((n_frames - 1) / factor + 1e-9)) + 1


def stretch_frames(values: np.ndarray, factor: float, n_out: int | None = None) -> np.ndarray:
    """values (T, ...) -> (n_out, ...) float64 sampled at frames ``factor·t'`` (linear interpolation;
    n_out defaults to :func:`stretched_length`)."""
    values = np.asarray(values, dtype=np.float64)
    n_out = stretched_length(len(values), factor) if n_out is None else n_out
    t = np.arange(n_out) * factor
    below = np.clip(np.floor(t).astype(np.int64), 0, len(values) - 1)
    above = np.clip(below + 1, 0, len(values) - 1)
    weight = (t - below).reshape(-1, *([1] * (values.ndim - 1)))
    return (1 - weight) * values[below] + weight * values[above]


def stretch_music_frames(features: np.ndarray, factor: float, n_out: int | None = None) -> np.ndarray:
    """Bailando-layout music features (T, >= 54) -> (n_out, D) float64: columns interpolated, beat
    one-hot (column 53) re-placed at ``round(b / factor)``."""
    stretched = stretch_frames(features, factor, n_out)
    beats = np.round(np.flatnonzero(np.asarray(features)[:, BEAT_COLUMN] > 0.5) / factor).astype(np.int64)
    stretched[:, BEAT_COLUMN] = 0.0
    stretched[beats[beats < len(stretched)], BEAT_COLUMN] = 1.0
    return stretched


def stretched_condition(
    features_60fps: np.ndarray, features_7p5fps: np.ndarray, factor: float, token_rhythm: str
) -> np.ndarray:
    """The GPT condition (the layout of ``music_features_7p5fps.parquet``) of a song played ``factor``
    times faster: (T7.5', D) float32, T7.5' = round(T7.5 / factor).

    features_60fps (T60, 438) and features_7p5fps (T7.5, D) are the song's two tables; the 7.5 fps
    Bailando columns (all but the 21 appended rhythm columns) are stretched as they are, the rhythm columns
    recomputed from the stretched 60 fps beats and onsets (:func:`danceba.features.rhythm.token_condition`).
    """
    if features_60fps.shape[1] != N_BAILANDO_FEATURES:
        raise ValueError(
            f"tempo augmentation needs the {N_BAILANDO_FEATURES}-d Bailando features "
            f"(music_features.kind: bailando438), got {features_60fps.shape[1]} columns"
        )
    n_tokens = max(round(len(features_7p5fps) / factor), 1)
    at_60fps = stretch_music_frames(features_60fps, factor)
    at_7p5fps = (
        stretch_music_frames(features_7p5fps[:, :N_BAILANDO_FEATURES], factor, n_tokens)
        if token_rhythm != "only"
        else np.zeros((n_tokens, 0))
    )
    return token_condition(at_7p5fps, at_60fps, token_rhythm)
