"""Control rows built from the ground truth: half a beat late, jitter, still, mismatched music."""

from __future__ import annotations

import numpy as np
import pytest

from danceba.control_rows import (
    delayed_joints,
    half_beat_frames,
    half_beat_late_dances,
    jitter_dances,
    mismatched_dances,
    still_dances,
)
from danceba.evaluation import Dance


def ground_truth(rng: np.random.Generator, n: int = 4, frames: int = 300) -> list[Dance]:
    return [
        Dance(f"piece{k}", rng.normal(size=(frames, 24, 3)).astype(np.float32), f"mBR{k % 2}")
        for k in range(n)
    ]


def onehot(period: int, frames: int = 400, first: int = 7) -> np.ndarray:
    out = np.zeros(frames)
    out[first::period] = 1
    return out


def test_half_a_beat_is_half_the_median_beat_interval() -> None:
    assert half_beat_frames(onehot(30), 299) == 15
    assert half_beat_frames(onehot(40), 299) == 20  # 90 BPM
    beats = np.zeros(400)
    beats[[0, 30, 60, 100, 130]] = 1  # intervals 30, 30, 40, 30: median 30
    assert half_beat_frames(beats, 399) == 15
    with pytest.raises(ValueError, match="at least 2 music beats"):
        half_beat_frames(onehot(30, first=290), 299)


def test_delay_pads_with_the_first_frame_and_keeps_the_length(rng: np.random.Generator) -> None:
    joints = rng.normal(size=(50, 24, 3))
    late = delayed_joints(joints, 15)
    assert late.shape == joints.shape
    np.testing.assert_array_equal(late[:15], np.repeat(joints[:1], 15, axis=0))
    np.testing.assert_array_equal(late[15:], joints[:35])
    with pytest.raises(ValueError, match="frames must be in"):
        delayed_joints(joints, 50)


def test_half_beat_late_row_uses_each_piece_s_own_music(rng: np.random.Generator) -> None:
    gt = ground_truth(rng)
    rows = half_beat_late_dances(gt, {"mBR0": onehot(30), "mBR1": onehot(40)})
    for dance, source in zip(rows, gt, strict=True):
        shift = 15 if source.music_id == "mBR0" else 20
        np.testing.assert_array_equal(dance.joints[shift:], source.joints[:-shift])
        assert dance.music_id == source.music_id and dance.name == source.name
    with pytest.raises(ValueError, match="piece0: half beat"):
        half_beat_late_dances(gt, {"mBR0": np.zeros(400), "mBR1": onehot(40)})


def test_jitter_is_seeded_noise_around_the_mean_pose(rng: np.random.Generator) -> None:
    gt = ground_truth(rng)
    a, b = jitter_dances(gt, 0.01, seed=5), jitter_dances(gt, 0.01, seed=5)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.joints, y.joints)
    assert not np.array_equal(a[0].joints, jitter_dances(gt, 0.01, seed=6)[0].joints)
    assert not np.array_equal(a[0].joints - gt[0].joints.mean(0), a[1].joints - gt[1].joints.mean(0))
    deviation = a[0].joints - gt[0].joints.mean(axis=0)
    assert deviation.std() == pytest.approx(0.01, rel=0.05) and abs(deviation.mean()) < 1e-3
    assert a[0].joints.shape == gt[0].joints.shape and a[0].joints.dtype == np.float32


def test_still_holds_the_first_pose(rng: np.random.Generator) -> None:
    gt = ground_truth(rng)
    still = still_dances(gt, 1e-4, seed=0)
    assert np.abs(still[1].joints - gt[1].joints[0]).max() < 1e-3
    assert still[1].joints.std(axis=0).mean() == pytest.approx(1e-4, rel=0.1)
    with pytest.raises(ValueError, match="noise_m must be positive"):
        still_dances(gt, 0.0, seed=0)


def test_mismatched_rows_never_keep_their_music(rng: np.random.Generator) -> None:
    gt = ground_truth(rng, n=6)
    rows = mismatched_dances(gt, seed=0)
    by_name = {d.name: d for d in gt}
    for dance, source in zip(rows, gt, strict=True):
        donor = by_name[dance.name.split("<-")[1]]
        assert dance.music_id == source.music_id != donor.music_id
    with pytest.raises(ValueError, match="another music"):
        mismatched_dances([Dance("a", gt[0].joints, "mBR0"), Dance("b", gt[1].joints, "mBR0")], 0)


def test_mismatched_rows_pair_two_equal_songs_where_shuffles_fail(rng: np.random.Generator) -> None:
    """10 + 10 pieces on 2 songs: 1 in 184,756 shuffles works, so the rotation pairs them (as for
    AIST++'s 40 test pieces on 10 songs, where all 100 shuffles failed)."""
    joints = ground_truth(rng, n=1)[0].joints
    gt = [Dance(f"p{i}", joints, "mBR0" if i < 10 else "mPO1") for i in range(20)]
    rows = mismatched_dances(gt, seed=0)
    by_name = {d.name: d for d in gt}
    donors = [by_name[d.name.split("<-")[1]] for d in rows]
    assert all(d.music_id != source.music_id for d, source in zip(donors, gt, strict=True))
    assert sorted(d.name for d in donors) == sorted(d.name for d in gt)  # each dance given exactly once
    lopsided = [Dance(f"q{i}", joints, "mBR0" if i < 3 else "mPO1") for i in range(5)]
    with pytest.raises(ValueError, match="another music"):
        mismatched_dances(lopsided, seed=0)
