"""Token-rate rhythm features derived from the 60 fps beats and onsets that BAS scores against.

Bailando's 7.5 fps features carry their own beat column, from librosa's beat tracker run at 3840 Hz /
hop 512: its tempo grid is 450 / lag BPM, so a 100-125 BPM song is tracked at 112.5 BPM and its beats
drift up to half a beat from the 60 fps beats that BAS reads (σ = 3 frames). A token is 8 motion frames,
so "where is the beat inside this token" is below the 7.5 fps resolution altogether.

:func:`token_rhythm_features` summarises, for every token ``j`` (60 fps frames ``8j .. 8j + 7``), the 60 fps
beat one-hot (column 53) and onset envelope (column 52) of the same song. Columns of the (T7.5, 21) array:

=================  =======  ===================================================================
BEAT_AT_FRAME      0:8      1 where a 60 fps beat falls on frame ``8j + o`` (o = 0..7), else 0
PHASE_SIN_COS      8:12     sin, cos of 2π·(beat phase) at frames ``8j`` and ``8j + 4``
BEAT_PERIOD        12       local beat period in seconds (the beat interval containing ``8j``)
ONSET_AT_FRAME     13:21    onset envelope at frames ``8j + o``, divided by the song's 99th percentile
=================  =======  ===================================================================

Beat phase at frame f between beats b_k <= f < b_{k+1} is (f - b_k) / (b_{k+1} - b_k); before the first
and after the last beat it continues at the first / last beat interval. A song with fewer than two beats
has phase 0 and period 0 everywhere. The GPT pairs row ``j`` with the prediction of token ``j`` (see
``danceba.data.windows``), i.e. with exactly the frames that token decodes to.
"""

from __future__ import annotations

import numpy as np

from danceba.features.columns import (
    BEAT_AT_FRAME,
    BEAT_COLUMN,
    BEAT_PERIOD,
    FRAMES_PER_TOKEN,
    N_RHYTHM_FEATURES,
    ONSET_AT_FRAME,
    ONSET_ENVELOPE,
    PHASE_SIN_COS,
)

MOTION_FPS = 60.0


def beat_phase(beats: np.ndarray, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Beat phase in [0, 1) and the local beat period (frames) of every frame.

    beats (B,) sorted 60 fps beat frames -> phase (n_frames,), period (n_frames,) float64. Frames before
    the first / after the last beat continue the first / last interval; with B < 2 both are 0.
    """
    frames = np.arange(n_frames, dtype=np.float64)
    beats = np.unique(np.asarray(beats, dtype=np.float64))
    if beats.size < 2:
        return np.zeros(n_frames), np.zeros(n_frames)
    interval = np.clip(np.searchsorted(beats, frames, side="right") - 1, 0, beats.size - 2)
    start, period = beats[interval], np.diff(beats)[interval]
    return np.mod((frames - start) / period, 1.0), period


def token_rhythm_features(features_60fps: np.ndarray, n_tokens: int) -> np.ndarray:
    """(T60, 438) Bailando features at 60 fps -> (n_tokens, 21) float32 rhythm features at 7.5 fps.

    Frames past the end of the 60 fps features (the 7.5 fps grid may reach up to 7 frames further) read as
    no beat and no onset; phase and period continue the last beat interval.
    """
    features_60fps = np.asarray(features_60fps)
    if features_60fps.ndim != 2 or features_60fps.shape[1] <= BEAT_COLUMN:
        raise ValueError(f"features_60fps: expected a (T, 438) array, got shape {features_60fps.shape}")
    if n_tokens < 1:
        raise ValueError(f"n_tokens: expected >= 1, got {n_tokens}")
    n_frames = n_tokens * FRAMES_PER_TOKEN
    beat = np.zeros(n_frames)
    onset = np.zeros(n_frames)
    available = min(n_frames, len(features_60fps))
    beat[:available] = features_60fps[:available, BEAT_COLUMN] > 0.5
    onset[:available] = features_60fps[:available, ONSET_ENVELOPE]
    scale = np.percentile(features_60fps[:, ONSET_ENVELOPE], 99) if len(features_60fps) else 0.0
    onset = onset / scale if scale > 0 else onset
    phase, period = beat_phase(np.flatnonzero(beat[:available]), n_frames)
    token_start = np.arange(n_tokens) * FRAMES_PER_TOKEN
    angle = 2 * np.pi * phase[np.stack([token_start, token_start + FRAMES_PER_TOKEN // 2], axis=1)]
    out = np.zeros((n_tokens, N_RHYTHM_FEATURES))
    out[:, BEAT_AT_FRAME] = beat.reshape(n_tokens, FRAMES_PER_TOKEN)
    out[:, PHASE_SIN_COS] = np.stack(
        [np.sin(angle[:, 0]), np.cos(angle[:, 0]), np.sin(angle[:, 1]), np.cos(angle[:, 1])], 1
    )
    out[:, BEAT_PERIOD] = period[token_start] / MOTION_FPS
    out[:, ONSET_AT_FRAME] = onset.reshape(n_tokens, FRAMES_PER_TOKEN)
    return out.astype(np.float32)


def with_token_rhythm(features_7p5fps: np.ndarray, features_60fps: np.ndarray) -> np.ndarray:
    """The 7.5 fps features (T, D) with the 21 rhythm columns appended: (T, D + 21) float32."""
    rhythm = token_rhythm_features(features_60fps, len(features_7p5fps))
    return np.concatenate([np.asarray(features_7p5fps, dtype=np.float32), rhythm], axis=1)


def token_condition(features_7p5fps: np.ndarray, features_60fps: np.ndarray, token_rhythm: str) -> np.ndarray:
    """The GPT's 7.5 fps condition for ``music_features.token_rhythm``: ``none`` -> the features as they are
    (T, D); ``append`` -> (T, D + 21); ``only`` -> the (T, 21) rhythm columns alone."""
    if token_rhythm == "none":
        return np.asarray(features_7p5fps, dtype=np.float32)
    if token_rhythm == "append":
        return with_token_rhythm(features_7p5fps, features_60fps)
    if token_rhythm == "only":
        return token_rhythm_features(features_60fps, len(features_7p5fps))
    raise ValueError(f"token_rhythm: expected none, append or only, got {token_rhythm!r}")
