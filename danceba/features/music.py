"""Music features, frame-aligned to motion: Bailando's 438-d (default) and EDGE's 35-d baseline.

Bailando's ``extract_acoustic_feature`` (librosa defaults, hop 512, 2048-point STFT), rewritten for
librosa 0.11 with keyword arguments. Columns of the (T, 438) array:

====================  =========  ===============================================================
MFCC                  0:20       ``mfcc(S=power_to_db(melspectrogram(y), ref=max))``
MFCC_DELTA            20:40      ``delta(mfcc, width=3)``
CHROMA                40:52      ``chroma_cqt(y=harmonic, n_octaves=...)`` on the HPSS harmonic part
ONSET_ENVELOPE        52         ``onset_strength(y=percussive, aggregate=np.median)``
BEAT_COLUMN           53         one-hot of ``beat_track(onset_envelope=...)`` (BAS reads this column)
TEMPOGRAM             54:438     ``tempogram(onset_envelope=...)``, 384 lags
====================  =========  ===============================================================

Rates: 30720 Hz / 512 = 60 fps (motion frames, chroma over 7 octaves) and 3840 Hz / 512 = 7.5 fps
(motion tokens, 5 octaves: 7 would pass the 1920 Hz Nyquist). Every librosa stage is centred, so
frame k describes time ``k / fps`` like motion frame k, and T = 1 + n_samples // 512. At 7.5 fps
the beat tracker's tempo grid is coarse (450 / lag BPM: 120 BPM becomes a 4-token, 112.5 BPM beat);
that is the reference's behaviour, and the 60 fps beats are the ones BAS reads.

Same maths, less work than the reference: the audio's STFT is computed once and feeds both the mel
spectrogram and the HPSS (librosa computes the identical STFT twice), and the HPSS median filters run
as one 1-D filter over the mirrored rows / columns laid end to end (bit-identical to the 2-D
``scipy.ndimage.median_filter`` with a (1, 31) / (31, 1) kernel that ``librosa.effects.hpss`` uses,
and ~5x faster). The file is decoded once for both rates (:func:`music_features_for_motion`).

Audio is read with soundfile (WAV, FLAC, OGG, MP3 with libsndfile >= 1.1), averaged to mono and
resampled with soxr (librosa's default ``soxr_hq``). Bad input raises :class:`MusicInputError`.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import librosa
import numpy as np
import scipy.ndimage
import soundfile

from danceba.features.columns import (
    BEAT_COLUMN,
    FRAMES_PER_TOKEN,
    N_BAILANDO_FEATURES,
)

HOP_LENGTH = 512
N_FFT = 2048  # librosa's default STFT size, used by every Bailando stage
SAMPLE_RATE_60FPS = 60 * HOP_LENGTH  # 30720
SAMPLE_RATE_7P5FPS = SAMPLE_RATE_60FPS // FRAMES_PER_TOKEN  # 3840
CHROMA_OCTAVES_60FPS = 7
CHROMA_OCTAVES_7P5FPS = 5
HPSS_KERNEL = 31  # librosa.decompose.hpss default
SILENCE_PEAK = 1e-4  # -80 dBFS: a track whose loudest sample is below this is "silent"


class MusicInputError(ValueError):
    """An audio file is missing, unreadable, empty or silent; the message names the file."""


class MotionAlignedFeatures(NamedTuple):
    """Bailando features of one track at both motion rates."""

    at_60fps: np.ndarray  # (T60, 438) float32, one row per motion frame
    at_7p5fps: np.ndarray  # (T7.5, 438) float32, one row per motion token


# ----------------------------------------------------------------------------------------------
# Audio input
# ----------------------------------------------------------------------------------------------


def read_audio(path: str | os.PathLike[str]) -> tuple[np.ndarray, int]:
    """Decode a file at its own rate -> (mono float32 samples (n,), sample rate). Channels are averaged."""
    if not os.path.isfile(path):
        raise MusicInputError(f"{os.fspath(path)}: no such audio file")
    try:
        samples, sample_rate = soundfile.read(path, dtype="float32", always_2d=True)  # (n, channels)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
        raise MusicInputError(f"{os.fspath(path)}: cannot decode audio ({error})") from error
    mono = samples.mean(axis=1, dtype=np.float32)
    if mono.size == 0:
        raise MusicInputError(f"{os.fspath(path)}: the audio is empty (0 samples)")
    if not np.isfinite(mono).all():
        raise MusicInputError(f"{os.fspath(path)}: the audio has NaN or infinite samples")
    peak = float(np.abs(mono).max())
    if peak < SILENCE_PEAK:
        raise MusicInputError(f"{os.fspath(path)}: the audio is silent (peak {peak:.2e} < {SILENCE_PEAK:g})")
    return mono, int(sample_rate)


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """(n,) float32 at ``from_rate`` -> (ceil(n * to_rate / from_rate),) float32 at ``to_rate`` (soxr_hq)."""
    if from_rate == to_rate:
        return audio.astype(np.float32, copy=False)
    return librosa.resample(audio, orig_sr=from_rate, target_sr=to_rate, res_type="soxr_hq").astype(
        np.float32, copy=False
    )


def load_audio(path: str | os.PathLike[str], sample_rate: int) -> np.ndarray:
    """Any file soundfile reads, any rate, mono or stereo -> (n_samples,) float32 mono at ``sample_rate``."""
    audio, native_rate = read_audio(path)
    return resample(audio, native_rate, sample_rate)


# ----------------------------------------------------------------------------------------------
# Bailando 438-d
# ----------------------------------------------------------------------------------------------


def _median_filter_rows(magnitude: np.ndarray, size: int) -> np.ndarray:
    """Median over the last axis of a 2-D array, scipy's ``mode="reflect"``: (R, C) -> (R, C).

    Each row is padded by size // 2 mirrored samples (numpy's "symmetric" is scipy's "reflect"),
    the padded rows are laid end to end and filtered in ONE 1-D scipy call; a valid output sample's
    window never leaves its own padded row, so this equals the 2-D ``median_filter(size=(1, size))``
    bit for bit, several times faster.
    """
    half = size // 2
    padded = np.pad(magnitude, ((0, 0), (half, half)), mode="symmetric")
    filtered = scipy.ndimage.median_filter(padded.ravel(), size=size, mode="reflect").reshape(padded.shape)
    return np.ascontiguousarray(filtered[:, half : half + magnitude.shape[1]])


def hpss_stft(stft: np.ndarray, kernel_size: int = HPSS_KERNEL) -> tuple[np.ndarray, np.ndarray]:
    """``librosa.decompose.hpss`` defaults (margin 1, power 2, soft masks) on a complex STFT.

    stft (bins, frames) complex -> (harmonic, percussive) STFTs of the same shape.
    """
    magnitude, phase = librosa.magphase(stft)
    harmonic = _median_filter_rows(magnitude, kernel_size)  # median over time
    percussive = _median_filter_rows(magnitude.T, kernel_size).T  # median over frequency
    mask_harmonic = librosa.util.softmask(harmonic, percussive, power=2.0, split_zeros=True)
    mask_percussive = librosa.util.softmask(percussive, harmonic, power=2.0, split_zeros=True)
    return (magnitude * mask_harmonic) * phase, (magnitude * mask_percussive) * phase


def bailando_features(
    audio: np.ndarray, sample_rate: int, *, hop_length: int = HOP_LENGTH, chroma_octaves: int = 7
) -> np.ndarray:
    """Bailando's acoustic features. audio (n,) float mono -> (1 + n // hop_length, 438) float32.

    Column layout: module constants ``MFCC``, ``MFCC_DELTA``, ``CHROMA``, ``ONSET_ENVELOPE``,
    ``BEAT_COLUMN`` (= 53), ``TEMPOGRAM``.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1 or audio.size < N_FFT:
        raise ValueError(f"audio: expected a 1-D signal of at least {N_FFT} samples, got shape {audio.shape}")
    stft = librosa.stft(audio, n_fft=N_FFT, hop_length=hop_length)  # (1025, T), shared below
    mel_db = librosa.power_to_db(
        librosa.feature.melspectrogram(S=np.abs(stft) ** 2, sr=sample_rate), ref=np.max
    )
    mfcc = librosa.feature.mfcc(S=mel_db)  # (20, T)
    mfcc_delta = librosa.feature.delta(mfcc, width=3)
    harmonic_stft, percussive_stft = hpss_stft(stft)
    inverse = {"dtype": audio.dtype, "n_fft": N_FFT, "hop_length": hop_length, "length": audio.size}
    harmonic = librosa.istft(harmonic_stft, **inverse)
    percussive = librosa.istft(percussive_stft, **inverse)
    chroma = librosa.feature.chroma_cqt(
        y=harmonic, sr=sample_rate, hop_length=hop_length, n_octaves=chroma_octaves
    )
    onset_envelope = librosa.onset.onset_strength(
        y=percussive, sr=sample_rate, hop_length=hop_length, aggregate=np.median
    )
    _, beats = librosa.beat.beat_track(onset_envelope=onset_envelope, sr=sample_rate, hop_length=hop_length)
    beat_one_hot = np.zeros_like(onset_envelope)
    beat_one_hot[beats] = 1.0
    tempogram = librosa.feature.tempogram(
        onset_envelope=onset_envelope, sr=sample_rate, hop_length=hop_length
    )
    parts = [mfcc, mfcc_delta, chroma, onset_envelope[None], beat_one_hot[None], tempogram]
    frames = {part.shape[1] for part in parts}
    if len(frames) != 1:
        raise RuntimeError(f"librosa stages disagree on the frame count: {sorted(frames)}")
    return np.concatenate(parts, axis=0).T.astype(np.float32)


_OCTAVES = {SAMPLE_RATE_60FPS: CHROMA_OCTAVES_60FPS, SAMPLE_RATE_7P5FPS: CHROMA_OCTAVES_7P5FPS}


def _file_features(
    path: str | os.PathLike[str], audio: np.ndarray, native_rate: int, rate: int
) -> np.ndarray:
    """Resample a decoded file to ``rate`` (30720 or 3840 Hz) -> (T, 438); too short names the file."""
    audio = resample(audio, native_rate, rate)
    if audio.size < N_FFT:
        raise MusicInputError(
            f"{os.fspath(path)}: too short ({audio.size / rate:.3f} s; at least {N_FFT / rate:.3f} s needed)"
        )
    return bailando_features(audio, rate, chroma_octaves=_OCTAVES[rate])


def music_features_for_motion(path: str | os.PathLike[str]) -> MotionAlignedFeatures:
    """Decode once, resample to 30720 and 3840 Hz -> Bailando features at 60 fps and 7.5 fps."""
    audio, native_rate = read_audio(path)
    return MotionAlignedFeatures(
        at_60fps=_file_features(path, audio, native_rate, SAMPLE_RATE_60FPS),
        at_7p5fps=_file_features(path, audio, native_rate, SAMPLE_RATE_7P5FPS),
    )


def music_features_60fps(path: str | os.PathLike[str]) -> np.ndarray:
    """(T, 438) float32 at 60 fps, row k at time k / 60 s (one per motion frame)."""
    return _file_features(path, *read_audio(path), SAMPLE_RATE_60FPS)


def music_features_7p5fps(path: str | os.PathLike[str]) -> np.ndarray:
    """(T, 438) float32 at 7.5 fps, row k at time k / 7.5 s (one per motion token)."""
    return _file_features(path, *read_audio(path), SAMPLE_RATE_7P5FPS)


def beat_frames(features: np.ndarray) -> np.ndarray:
    """Frame indices of the music beats: rows where column ``BEAT_COLUMN`` (53) is 1. (T, 438) -> (n_beats,)."""
    features = np.asarray(features)
    if features.ndim != 2 or features.shape[1] != N_BAILANDO_FEATURES:
        raise ValueError(f"features: expected a (T, {N_BAILANDO_FEATURES}) array, got shape {features.shape}")
    return np.flatnonzero(features[:, BEAT_COLUMN] == 1)


# ----------------------------------------------------------------------------------------------
# EDGE 35-d baseline
# ----------------------------------------------------------------------------------------------


def edge_features(
    audio: np.ndarray, sample_rate: int, fps: float, bpm_hint: float | None = None
) -> np.ndarray:
    """EDGE's baseline features. audio (n,) mono -> (1 + n // hop, 35) float32, hop = sample_rate / fps.

    Columns: onset envelope (0), MFCC 20 (1:21), chroma CENS 12 (21:33), onset-peak one-hot (33),
    beat one-hot (34). EDGE runs at 15360 Hz / 30 fps; its beat tracker starts from the tempo the
    AIST music id encodes (``bpm_hint``); without a hint we start from librosa's tempo estimate on the
    same onset envelope (EDGE's fallback estimates it from the audio). EDGE's cut to 150 frames
    (5 s training slices) is left to the caller.
    """
    audio = np.asarray(audio, dtype=np.float32)
    hop = sample_rate / fps
    if hop != int(hop):
        raise ValueError(f"sample_rate / fps must be a whole number of samples, got {sample_rate} / {fps}")
    hop = int(hop)
    if audio.ndim != 1 or audio.size < N_FFT:
        raise ValueError(f"audio: expected a 1-D signal of at least {N_FFT} samples, got shape {audio.shape}")
    envelope = librosa.onset.onset_strength(y=audio, sr=sample_rate, hop_length=hop)
    mfcc = librosa.feature.mfcc(y=audio, sr=sample_rate, n_mfcc=20, hop_length=hop)
    chroma = librosa.feature.chroma_cens(y=audio, sr=sample_rate, hop_length=hop, n_chroma=12)
    peaks = librosa.onset.onset_detect(onset_envelope=envelope, sr=sample_rate, hop_length=hop)
    if bpm_hint is None:
        bpm_hint = float(librosa.feature.tempo(onset_envelope=envelope, sr=sample_rate, hop_length=hop)[0])
    _, beats = librosa.beat.beat_track(
        onset_envelope=envelope, sr=sample_rate, hop_length=hop, start_bpm=bpm_hint, tightness=100
    )
    peak_one_hot = np.zeros_like(envelope)
    peak_one_hot[peaks] = 1.0
    beat_one_hot = np.zeros_like(envelope)
    beat_one_hot[beats] = 1.0
    frames = min(envelope.size, mfcc.shape[1], chroma.shape[1])
    parts = [envelope[None], mfcc, chroma, peak_one_hot[None], beat_one_hot[None]]
    return np.concatenate([part[:, :frames] for part in parts], axis=0).T.astype(np.float32)
