"""The embedded mini dataset: determinism, AIST++ layout and splits, music tempo, beat-locked motion."""

from __future__ import annotations

import dataclasses
import hashlib
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile
from scipy.ndimage import gaussian_filter1d
from scipy.signal import argrelextrema

from danceba.config import load_params
from danceba.data.aistpp import (
    AistppLayout,
    list_sequences,
    parse_sequence_name,
    read_ignore_list,
    read_motion_pkl,
    read_split,
    validate_layout,
)
from danceba.data.data_config import MiniDatasetConfig
from danceba.data.mini import (
    MiniDatasetSummary,
    crossmodal_split,
    plan_mini_dataset,
    sequence_frames,
    write_mini_dataset,
)
from danceba.motion.skeleton import SMPL_JOINT_NAMES, forward_kinematics
from tests.project_files import ROOT

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


# ----------------------------------------------------------------------------------------------
# The knobs of the scale configuration (configs/scale.yaml): their defaults change nothing
# ----------------------------------------------------------------------------------------------

# sha256 over (relative path, sha256 of the bytes) of every file written, computed with the generator as it
# was before the knobs below existed (the same on this machine's native and AVX2-pinned kernels). The
# embedded default's dataset is also the one the committed dvc.lock records for data/raw.
SMALL = MiniDatasetConfig(
    seed=5, genres=("gBR", "gHO"), music_per_genre=2, dancers_per_music=1, choreographies_per_dancer=3,
    seconds=3.0, sample_rate=8000,
)  # fmt: skip
FROZEN_DIGESTS = {
    "small": "8f505fada9c1aba33554c1c21e5a55cfd95ea9bf3406a8d18b228c5ebcf3a7ce",
    "embedded": "f2b8dac4375805d19b040822fd6184950386374e2e942fc0be2f806f0673d11c",
}
AIST_TEST_MUSIC = {"mBR0", "mPO1", "mLO2", "mMH3", "mLH4", "mHO5", "mWA0", "mKR2", "mJS3", "mJB5"}


def _digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def test_default_knobs_write_the_same_bytes_as_before(tmp_path: Path) -> None:
    write_mini_dataset(tmp_path / "small", SMALL)
    assert _digest(tmp_path / "small") == FROZEN_DIGESTS["small"]


@pytest.mark.slow
def test_embedded_default_dataset_is_unchanged(tmp_path: Path) -> None:
    config = load_params(ROOT / "configs" / "embedded.yaml").data.mini
    write_mini_dataset(tmp_path / "raw", config)
    assert _digest(tmp_path / "raw") == FROZEN_DIGESTS["embedded"]


def test_scale_config_has_the_shape_of_aistpp() -> None:
    config = load_params(ROOT / "configs" / "scale.yaml").data.mini
    musics, sequences = plan_mini_dataset(config)
    testval = {m.music_id for m in musics if m.split == "testval"}
    splits = Counter(crossmodal_split(s, testval) for s in sequences)
    seconds = np.array([sequence_frames(config, s) for s in sequences]) / 60.0
    assert len(sequences) == len({s.name for s in sequences}) == 1408
    assert dict(splits) == {"train": 980, "val": 20, "test": 20, "other": 388}
    assert (
        len({s.genre for s in sequences}) == 10 and len(musics) == len({s.music_id for s in sequences}) == 60
    )
    assert testval == AIST_TEST_MUSIC
    assert config.ignored_train + config.ignored_other == 45 and config.ignored_train == 28
    assert 1.05e6 < seconds.sum() * 60 < 1.2e6  # AIST++: 1,123,113 frames (5.2 h)
    assert 12.5 < seconds.mean() < 14.0 and 7.0 <= seconds.min() and seconds.max() <= 48.0
    basic = [s for s in sequences if s.situation == "sBM"]
    assert all(s.situation == "sBM" for s in sequences if crossmodal_split(s, testval) in ("val", "test"))
    assert 1100 < len(basic) < 1300  # AIST++: ~1,200 basic, ~200 advanced dances


TRIMMED = dataclasses.replace(
    TINY, genres=("gBR", "gPO", "gJB"), dancers_per_music=2, choreographies_per_dancer=4, basic_choreographies=3,
    sequences=20, train_sequences=7, ignored_train=2, ignored_other=1, seconds=3.0, advanced_seconds=7.0,
    seconds_spread=0.2, sample_rate=8000,
)  # fmt: skip


def test_trimmed_grid_with_drawn_lengths_is_written_as_planned(tmp_path: Path) -> None:
    summary = write_mini_dataset(tmp_path / "a", TRIMMED)
    layout = AistppLayout(summary.root)
    musics, sequences = plan_mini_dataset(TRIMMED)
    assert len(summary.sequences) == 20 and (len(summary.train), len(summary.val), len(summary.test)) == (
        7,
        6,
        6,
    )
    assert validate_layout(layout).complete
    ignored = read_ignore_list(layout)
    assert len(ignored & set(summary.train)) == 2 and len(ignored - set(summary.train)) == 1
    assert not ignored & set(summary.val + summary.test)
    frames = {s.name: sequence_frames(TRIMMED, s) for s in sequences}
    assert summary.frames == sum(frames.values())
    for s in sequences:
        mean = 7.0 if s.situation == "sFM" else 3.0
        assert read_motion_pkl(layout.motion_path(s.name)).n_frames == frames[s.name]
        assert 0.8 * mean * 60 - 1 <= frames[s.name] <= 1.2 * mean * 60 + 1, s.name
    assert len(set(frames.values())) > 10  # lengths are drawn, not fixed
    for music in musics:
        longest = max(frames[s.name] for s in sequences if s.music_id == music.music_id)
        wav_seconds = soundfile.info(layout.wav_path(music.music_id)).duration
        assert wav_seconds >= longest / 60 - 1e-6 and wav_seconds >= TRIMMED.seconds - 1e-6
    again = write_mini_dataset(tmp_path / "b", TRIMMED)
    assert _digest(again.root) == _digest(summary.root)


@pytest.mark.parametrize(
    "change, key",
    [
        ({"sequences": 12}, "data.mini.sequences"),  # fewer than val + test + training sequences
        ({"sequences": 40}, "data.mini.sequences"),  # more than the grid holds
        ({"train_sequences": 99}, "data.mini.train_sequences"),
        ({"basic_choreographies": 1}, "basic_choreographies"),
        ({"basic_choreographies": 5}, "basic_choreographies"),
        ({"ignored_train": 8}, "data.mini.ignored_train"),
        ({"ignored_other": 9}, "data.mini.ignored_other"),
        ({"seconds": 2.2}, "data.mini.seconds"),  # shortest dance under 2 s with the spread
    ],
)
def test_impossible_trim_or_lengths_are_refused_naming_the_key(
    change: dict, key: str, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        write_mini_dataset(tmp_path, dataclasses.replace(TRIMMED, **change))
