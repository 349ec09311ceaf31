"""The embedded mini dataset: determinism, AIST++ layout and splits, music tempo, beat-locked motion."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile
from scipy.ndimage import gaussian_filter1d
from scipy.signal import argrelextrema

from danceba.config import MiniDatasetConfig
from danceba.data.aistpp import (
    AistppLayout,
    list_sequences,
    parse_sequence_name,
    read_ignore_list,
    read_motion_pkl,
    read_split,
    validate_layout,
)
from danceba.data.mini import MiniDatasetSummary, plan_mini_dataset, write_mini_dataset
from danceba.skeleton import SMPL_JOINT_NAMES, forward_kinematics

TINY = MiniDatasetConfig(
    seed=7,
    genres=("gBR", "gJB"),
    music_per_genre=2,
    dancers_per_music=1,
    choreographies_per_dancer=2,
    seconds=6.0,
    sample_rate=16000,
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> MiniDatasetSummary:
    return write_mini_dataset(tmp_path_factory.mktemp("mini"), TINY)


def _joints(layout: AistppLayout, name: str) -> np.ndarray:
    motion = read_motion_pkl(layout.motion_path(name))
    return forward_kinematics(motion.poses, motion.trans_normalised)  # (N, 24, 3) metres


def test_same_seed_gives_identical_bytes_and_another_seed_differs(
    tiny: MiniDatasetSummary, tmp_path: Path
) -> None:
    again = write_mini_dataset(tmp_path / "again", TINY)
    other = write_mini_dataset(tmp_path / "other", dataclasses.replace(TINY, seed=8))
    assert again.sequences == tiny.sequences == other.sequences
    for relative in (f"motions/{tiny.sequences[0]}.pkl", f"wavs/{tiny.musics[0].music_id}.wav"):
        first = (tiny.root / relative).read_bytes()
        assert (again.root / relative).read_bytes() == first, relative
        assert (other.root / relative).read_bytes() != first, relative


def test_layout_is_complete_and_names_parse(tiny: MiniDatasetSummary) -> None:
    layout = AistppLayout(tiny.root)
    report = validate_layout(layout)
    assert report.complete
    assert len(tiny.sequences) == 2 * 2 * 1 * 2
    for name in tiny.sequences:
        parts = parse_sequence_name(name)
        assert (
            parts.genre in TINY.genres and parts.camera == "cAll" and parts.music_id[1:3] == parts.genre[1:]
        )
        motion = read_motion_pkl(layout.motion_path(name))
        assert motion.n_frames == tiny.frames_per_sequence == 360
        assert 90.0 <= motion.scaling <= 100.0
        assert np.abs(motion.trans).max() > 10.0  # stored in AIST++ units: divide by smpl_scaling
    for music in tiny.musics:
        info = soundfile.info(layout.wav_path(music.music_id))
        assert (info.samplerate, info.subtype, info.frames) == (16000, "PCM_16", 6 * 16000)


def test_splits_are_disjoint_in_music_and_like_crossmodal(tiny: MiniDatasetSummary) -> None:
    layout = AistppLayout(tiny.root)
    splits = {split: read_split(layout, split) for split in ("train", "val", "test")}
    assert all(splits.values()), {k: len(v) for k, v in splits.items()}
    music = {split: {parse_sequence_name(n).music_id for n in names} for split, names in splits.items()}
    assert music["train"].isdisjoint(music["val"] | music["test"])
    assert music["val"] == music["test"] == {"mBR0", "mJB5"}  # AIST++'s own test music for these genres
    assert all(n.split("_")[1] == "sBM" and n.endswith("_ch01") for n in splits["val"])
    assert all(n.split("_")[1] == "sBM" and n.endswith("_ch02") for n in splits["test"])
    ignored = read_ignore_list(layout)
    assert 1 <= len(ignored) <= 2 and ignored <= set(splits["train"])
    assert len(list_sequences(layout, "train")) == len(splits["train"]) - len(ignored)


def test_default_config_gives_nonempty_splits_of_a_small_size() -> None:
    musics, sequences = plan_mini_dataset(MiniDatasetConfig())
    test_music = {m.music_id for m in musics if m.split == "testval"}
    assert len(musics) == 15 and len(sequences) == 60
    assert test_music == {"mBR0", "mPO1", "mLO2", "mHO5", "mJB5"}
    assert sum(s.music_id not in test_music for s in sequences) == 40
    tempi = {m.genre: sorted(n.bpm for n in musics if n.genre == m.genre) for m in musics}
    assert all(len(set(bpms)) == 3 for bpms in tempi.values())


@pytest.mark.parametrize(
    "key, value", [("music_per_genre", 1), ("choreographies_per_dancer", 1), ("genres", ("gXX",))]
)
def test_bad_config_is_rejected_naming_the_key(key: str, value: object) -> None:
    with pytest.raises(ValueError, match=key):
        plan_mini_dataset(dataclasses.replace(TINY, **{key: value}))


def test_music_tempo_matches_the_music_id(tiny: MiniDatasetSummary) -> None:
    import librosa

    layout = AistppLayout(tiny.root)
    for music in tiny.musics:
        audio, rate = soundfile.read(layout.wav_path(music.music_id))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            # The tempo prior from the music id, as mint and EDGE call it (without it an 80 BPM piece of
            # 6 s can lock onto its eighth-note hi-hats).
            tempo, beat_times = librosa.beat.beat_track(y=audio, sr=rate, units="time", start_bpm=music.bpm)
        assert abs(float(np.atleast_1d(tempo)[0]) - music.bpm) / music.bpm < 0.04, music
        grid = np.arange(0.0, TINY.seconds, 60.0 / music.bpm)
        # librosa's onsets lag the attack by about one hop (32 ms here); beats sit on the nominal grid.
        assert np.median(np.abs(beat_times[:, None] - grid[None]).min(axis=1)) < 0.05, music


def test_motion_speed_minima_fall_on_the_music_beats(tiny: MiniDatasetSummary) -> None:
    layout = AistppLayout(tiny.root)
    bpm = {m.music_id: m.bpm for m in tiny.musics}
    hits = []
    for name in tiny.sequences:
        joints = _joints(layout, name)
        speed = np.linalg.norm(np.diff(joints, axis=0), axis=-1).mean(axis=1)  # (N-1,)
        minima = argrelextrema(gaussian_filter1d(speed, 5), np.less)[0]
        beats = np.arange(0.0, len(speed), 3600.0 / bpm[parse_sequence_name(name).music_id])
        beats = np.round(beats[(beats >= 5) & (beats < len(speed) - 5)]).astype(int)
        hits += list(np.abs(beats[:, None] - minima[None]).min(axis=1) <= 3)
    assert np.mean(hits) >= 0.8, np.mean(hits)


def test_genres_move_differently(tiny: MiniDatasetSummary) -> None:
    layout = AistppLayout(tiny.root)
    profiles: dict[str, list[np.ndarray]] = {}
    for name in tiny.sequences:
        joints = _joints(layout, name)
        joints = joints - joints[:, :1]
        speed = np.linalg.norm(np.diff(joints, axis=0), axis=-1).mean(axis=0)  # (24,) per-joint speed
        profiles.setdefault(name[:3], []).append(speed / speed.sum())
    centroids = {genre: np.mean(p, axis=0) for genre, p in profiles.items()}
    between = np.linalg.norm(centroids["gBR"] - centroids["gJB"])
    within = max(np.linalg.norm(p - centroids[g]) for g, ps in profiles.items() for p in ps)
    assert between > 1.5 * within, (between, within)


def test_motion_is_plausible(tiny: MiniDatasetSummary) -> None:
    layout = AistppLayout(tiny.root)
    knees = [SMPL_JOINT_NAMES.index(n) for n in ("lknee", "rknee")]
    feet = [SMPL_JOINT_NAMES.index(n) for n in ("lankle", "rankle", "ltoes", "rtoes")]
    for name in set(tiny.sequences) - set(tiny.ignored):
        poses = read_motion_pkl(layout.motion_path(name)).poses
        assert np.all(poses[:, knees, 0] > 0.0) and np.all(poses[:, knees, 0] < 2.4), (
            name
        )  # flex forward only
        assert np.all(poses[:, SMPL_JOINT_NAMES.index("lelbow"), 1] < 0.0), name  # no hyperextension
        assert np.all(poses[:, SMPL_JOINT_NAMES.index("relbow"), 1] > 0.0), name
        np.testing.assert_allclose(_joints(layout, name)[:, feet, 1].min(axis=1), 0.02, atol=1e-3)
