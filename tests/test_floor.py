"""The decoded dancer stays on the floor: start offset and drift removed, jumps and the path kept."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import minimum_filter1d

from danceba.floor import FLOOR_JOINT_HEIGHT_M, floor_offset, place_on_floor

FPS = 60


def sinking_dancer(seconds: float = 60.0, jump_at_s: float = 30.0) -> np.ndarray:
    """(T, 24, 3): feet stepping near -0.8 m, sinking 0.5 m a minute, one 0.3 m jump of 0.4 s."""
    t = np.arange(int(seconds * FPS)) / FPS
    rng = np.random.default_rng(0)
    body = rng.normal(0.0, 0.2, (24, 3)) + np.array([0.0, 0.9, 0.0])
    joints = np.repeat(body[None], len(t), axis=0)
    joints[:, 1:3, 1] = -0.8 + 0.05 * (np.sin(2 * np.pi * 2 * t)[:, None] > 0)  # feet lift at 2 Hz
    joints[:, 3:, 1] = np.maximum(joints[:, 3:, 1], 0.0)
    joints[:, :, 1] -= 0.5 * t[:, None] / 60.0
    jump = (t >= jump_at_s) & (t < jump_at_s + 0.4)
    joints[jump, :, 1] += 0.3 * np.sin(np.pi * (t[jump] - jump_at_s) / 0.4)[:, None]
    joints[:, :, 0] += 0.01 * t[:, None]  # walks along x
    return joints.astype(np.float32)


def test_the_lowest_joint_rests_on_the_floor_for_the_whole_song():
    joints = sinking_dancer()
    placed = place_on_floor(joints, FPS)
    lowest = placed[:, :, 1].min(axis=1)
    resting = minimum_filter1d(lowest, 2 * FPS)
    assert abs(float(np.median(resting)) - FLOOR_JOINT_HEIGHT_M) < 0.01
    assert float(np.abs(resting - FLOOR_JOINT_HEIGHT_M).max()) < 0.03  # no sinking by the end
    assert float(lowest.min()) > -0.01
    assert float(joints[:, :, 1].min()) < -1.2  # the input did sink


def test_jumps_and_the_horizontal_path_are_kept():
    joints = sinking_dancer()
    placed = place_on_floor(joints, FPS)
    jump = slice(30 * FPS, int(30.4 * FPS))
    before = slice(29 * FPS, int(29.5 * FPS))
    lift = placed[jump, 0, 1].max() - placed[before, 0, 1].mean()
    assert lift > 0.25  # of the 0.3 m jump
    assert np.array_equal(placed[:, :, [0, 2]], joints[:, :, [0, 2]])
    np.testing.assert_allclose(np.diff(placed[:, :, 1], axis=0), np.diff(joints[:, :, 1], axis=0), atol=2e-3)
    assert placed.dtype == joints.dtype and placed is not joints


def test_a_short_dance_and_a_bad_shape():
    assert floor_offset(np.zeros((1, 24, 3)), FPS).tolist() == [FLOOR_JOINT_HEIGHT_M]
    with pytest.raises(ValueError, match=r"\(T, J, 3\)"):
        floor_offset(np.zeros((10, 24)), FPS)
