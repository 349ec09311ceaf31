"""Music features: Bailando 438-d layout and beats, both motion rates, audio input, EDGE 35-d."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import scipy.ndimage
import soundfile

from danceba.features import columns, music
from danceba.features.columns import BEAT_COLUMN, CHROMA, MFCC, MFCC_DELTA, ONSET_ENVELOPE, TEMPOGRAM
from danceba.features.music import (
    SAMPLE_RATE_7P5FPS,
    SAMPLE_RATE_60FPS,
    MusicInputError,
    bailando_features,
    beat_frames,
    edge_features,
    load_audio,
    music_features_7p5fps,
    music_features_60fps,
    music_features_for_motion,
)

SECONDS = 12.0
FIRST_CLICK = 0.25  # seconds


def click_track(bpm: float, sample_rate: int, seconds: float = SECONDS) -> np.ndarray:
    """A C-E dyad with a 1 kHz click (2 ms attack, 15 ms decay) on every beat. (n,) float32."""
    time = np.arange(int(seconds * sample_rate)) / sample_rate
    audio = 0.05 * np.sin(2 * np.pi * 261.63 * time) + 0.05 * np.sin(2 * np.pi * 329.63 * time)
    for onset in np.arange(FIRST_CLICK, seconds, 60.0 / bpm):
        since = time - onset
        inside = (since >= 0) & (since < 0.08)
        envelope = np.exp(-since[inside] / 0.015) * np.minimum(1.0, since[inside] / 0.002)
        audio[inside] += 0.8 * envelope * np.sin(2 * np.pi * 1000.0 * since[inside])
    return audio.astype(np.float32)


@pytest.fixture(scope="module")
def audio_120bpm() -> np.ndarray:
    return click_track(120, SAMPLE_RATE_60FPS)


@pytest.fixture(scope="module")
def features_120bpm(audio_120bpm) -> np.ndarray:
    return bailando_features(audio_120bpm, SAMPLE_RATE_60FPS, chroma_octaves=7)


def test_shape_dtype_and_column_constants(audio_120bpm, features_120bpm):
    assert features_120bpm.shape == (1 + audio_120bpm.size // 512, 438)
    assert features_120bpm.dtype == np.float32
    widths = [len(range(438)[part]) for part in (MFCC, MFCC_DELTA, CHROMA, TEMPOGRAM)]
    assert widths == [20, 20, 12, 384]
    assert (ONSET_ENVELOPE, BEAT_COLUMN) == (52, 53)
    assert set(np.unique(features_120bpm[:, BEAT_COLUMN])) == {0.0, 1.0}


def test_columns_match_the_reference_recipe_in_plain_librosa():
    """Bailando's extract_acoustic_feature, call by call (two STFTs, 2-D median HPSS), on 3 s."""
    audio = click_track(120, SAMPLE_RATE_60FPS, seconds=3.0)
    sr = SAMPLE_RATE_60FPS
    ours = bailando_features(audio, sr)
    mfcc = librosa.feature.mfcc(
        S=librosa.power_to_db(librosa.feature.melspectrogram(y=audio, sr=sr), ref=np.max)
    )
    harmonic, percussive = librosa.effects.hpss(audio)
    onset = librosa.onset.onset_strength(y=percussive, sr=sr, aggregate=np.median)
    np.testing.assert_allclose(ours[:, MFCC], mfcc.T, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(ours[:, MFCC_DELTA], librosa.feature.delta(mfcc, width=3).T, atol=1e-3)
    chroma = librosa.feature.chroma_cqt(y=harmonic, sr=sr, n_octaves=7)
    np.testing.assert_allclose(ours[:, CHROMA], chroma.T, atol=1e-6)
    np.testing.assert_allclose(ours[:, ONSET_ENVELOPE], onset, atol=1e-6)
    np.testing.assert_allclose(
        ours[:, TEMPOGRAM], librosa.feature.tempogram(onset_envelope=onset, sr=sr).T, atol=1e-6
    )


def test_fast_hpss_is_identical_to_librosa():
    audio = click_track(100, SAMPLE_RATE_7P5FPS, seconds=6.0)
    harmonic, percussive = music.hpss_stft(librosa.stft(audio))
    expected = librosa.decompose.hpss(librosa.stft(audio))
    np.testing.assert_array_equal(harmonic, expected[0])
    np.testing.assert_array_equal(percussive, expected[1])


@pytest.mark.parametrize("shape", [(40, 200), (40, 5), (3, 40), (9, 1)])
def test_row_median_filter_equals_scipy_2d_reflect(rng, shape):
    magnitude = np.abs(rng.standard_normal(shape)).astype(np.float32)
    expected = scipy.ndimage.median_filter(magnitude, size=(1, 31), mode="reflect")
    np.testing.assert_array_equal(music._median_filter_rows(magnitude, 31), expected)


def test_beat_column_is_beat_track_on_the_onset_envelope(features_120bpm):
    _, beats = librosa.beat.beat_track(
        onset_envelope=features_120bpm[:, ONSET_ENVELOPE], sr=SAMPLE_RATE_60FPS, hop_length=512
    )
    assert len(beats) > 10
    np.testing.assert_array_equal(beat_frames(features_120bpm), beats)


@pytest.mark.parametrize("bpm", [120, 100])
def test_click_track_beats_fall_every_60_over_bpm_seconds(bpm, audio_120bpm, features_120bpm):
    features = (
        features_120bpm
        if bpm == 120
        else bailando_features(click_track(bpm, SAMPLE_RATE_60FPS), SAMPLE_RATE_60FPS)
    )
    interior = beat_frames(features)[1:-1]  # the tracker's first and last beats may be off
    period = 60.0 / bpm * 60  # frames at 60 fps
    assert len(interior) >= SECONDS * bpm / 60 - 6
    assert np.all(np.abs(np.diff(interior) - period) <= 1)
    click_frames = (FIRST_CLICK + np.arange(40) * 60.0 / bpm) * 60
    nearest = np.min(np.abs(interior[:, None] - click_frames[None]), axis=1)
    assert np.all(nearest <= 2), nearest  # on the clicks, not between them


def test_7p5fps_frame_count_and_beats(tmp_path, audio_120bpm):
    path = tmp_path / "m120.wav"
    soundfile.write(path, audio_120bpm, SAMPLE_RATE_60FPS)
    features = music_features_7p5fps(path)
    n = int(SECONDS * SAMPLE_RATE_7P5FPS)
    assert features.shape == (1 + n // 512, 438)
    assert abs(features.shape[0] - SECONDS * 7.5) <= 1
    # 120 BPM is 3.75 tokens per beat; at 7.5 fps the tracker's tempo grid is 450 / lag BPM, so it
    # settles on a 4-token beat (112.5 BPM): the reference's behaviour, and why BAS uses 60 fps beats.
    steps = np.diff(beat_frames(features)[1:-1])
    assert len(steps) >= 12 and np.all((steps >= 3) & (steps <= 5))


def test_one_decode_gives_both_rates(tmp_path, audio_120bpm, features_120bpm):
    path = tmp_path / "m120.wav"
    soundfile.write(path, audio_120bpm, SAMPLE_RATE_60FPS, subtype="FLOAT")
    both = music_features_for_motion(path)
    np.testing.assert_array_equal(both.at_60fps, features_120bpm)
    np.testing.assert_array_equal(both.at_7p5fps, music_features_7p5fps(path))


def test_stereo_44k1_input_matches_mono_at_the_target_rate(tmp_path, features_120bpm):
    mono_44k1 = click_track(120, 44100)
    side = 0.1 * np.sin(2 * np.pi * 50 * np.arange(mono_44k1.size) / 44100).astype(np.float32)
    path = tmp_path / "stereo.wav"
    soundfile.write(path, np.stack([mono_44k1 + side, mono_44k1 - side], axis=1), 44100, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(path, 44100), mono_44k1, atol=1e-6)
    features = music_features_60fps(path)
    assert features.shape == features_120bpm.shape
    np.testing.assert_array_equal(beat_frames(features), beat_frames(features_120bpm))
    for part, atol in [(MFCC, 10.0), (CHROMA, 1e-3), (ONSET_ENVELOPE, 1e-2), (TEMPOGRAM, 1e-3)]:
        np.testing.assert_allclose(features[:, part], features_120bpm[:, part], atol=atol)


@pytest.mark.parametrize(("suffix", "subtype"), [(".flac", "PCM_16"), (".ogg", "VORBIS")])
def test_flac_and_ogg_input(tmp_path, suffix, subtype, features_120bpm):
    audio = click_track(120, 22050)
    path = tmp_path / f"m120{suffix}"
    soundfile.write(path, audio, 22050, subtype=subtype)
    features = music_features_60fps(path)
    assert features.shape == features_120bpm.shape
    assert np.all(np.abs(beat_frames(features)[1:-1] - beat_frames(features_120bpm)[1:-1]) <= 1)


def test_bad_files_raise_music_input_error_naming_the_file(tmp_path):
    missing = tmp_path / "missing.wav"
    with pytest.raises(MusicInputError, match=r"missing\.wav.*no such"):
        load_audio(missing, SAMPLE_RATE_60FPS)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00not really a wave file" * 10)
    with pytest.raises(MusicInputError, match=r"corrupt\.wav.*cannot decode"):
        load_audio(corrupt, SAMPLE_RATE_60FPS)
    silent = tmp_path / "silent.wav"
    soundfile.write(silent, np.zeros(30720, dtype=np.float32), 30720)
    with pytest.raises(MusicInputError, match=r"silent\.wav.*silent"):
        music_features_60fps(silent)
    empty = tmp_path / "empty.wav"
    soundfile.write(empty, np.zeros(0, dtype=np.float32), 30720)
    with pytest.raises(MusicInputError, match=r"empty\.wav.*empty"):
        music_features_7p5fps(empty)
    short = tmp_path / "short.wav"
    soundfile.write(short, click_track(120, 30720, seconds=0.3), 30720)
    with pytest.raises(MusicInputError, match=r"short\.wav.*too short"):
        music_features_7p5fps(short)  # 0.3 s is 1152 samples at 3840 Hz, less than one 2048-point STFT


def test_too_short_audio_and_wrong_features_are_rejected():
    with pytest.raises(ValueError, match="at least 2048 samples"):
        bailando_features(np.ones(100, dtype=np.float32), SAMPLE_RATE_60FPS)
    with pytest.raises(ValueError, match="438"):
        beat_frames(np.zeros((10, 35)))


def test_edge_35d_shape_layout_and_beats():
    sample_rate, fps = 15360, 30
    audio = click_track(120, sample_rate)
    features = edge_features(audio, sample_rate, fps, bpm_hint=120)
    assert features.shape == (1 + audio.size // 512, 35) and features.dtype == np.float32
    for column in (columns.EDGE_ONSET_PEAK, columns.EDGE_BEAT):
        assert set(np.unique(features[:, column])) == {0.0, 1.0}
    steps = np.diff(np.flatnonzero(features[:, columns.EDGE_BEAT])[1:-1])
    assert np.all(np.abs(steps - 15) <= 1)  # 0.5 s at 30 fps
    assert edge_features(audio, sample_rate, fps).shape == features.shape  # tempo estimated
    with pytest.raises(ValueError, match="whole number"):
        edge_features(audio, sample_rate, 7)
