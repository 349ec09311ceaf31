"""PFC, foot skating and mean joint speed on motions whose answers can be worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from danceba.physical_metrics import (
    FOOT_JOINTS,
    LEFT_FOOT,
    PHYSICAL_METRICS,
    RIGHT_FOOT,
    foot_skating,
    mean_joint_speed,
    physical_foot_contact,
    physical_scores,
)

FPS, FRAMES = 60, 121
T = np.arange(FRAMES) / FPS  # seconds


def standing() -> np.ndarray:
    """(T, 24, 3): a static body, feet on the floor (y = 0), root at 0.9 m."""
    p = np.zeros((FRAMES, 24, 3))
    p[:, 0, 1] = 0.9
    return p


def with_root(p: np.ndarray, x: np.ndarray | None = None, y: np.ndarray | None = None) -> np.ndarray:
    p = p.copy()
    if x is not None:
        p[:, 0, 0] = x
    if y is not None:
        p[:, 0, 1] = y
    return p


def sliding(p: np.ndarray, joints: tuple[int, ...], speed: float) -> np.ndarray:
    """The given joints slide along z at ``speed`` m/s."""
    p = p.copy()
    p[:, list(joints), 2] = speed * T[:, None]
    return p


def test_the_feet_are_smpl_ankles_and_toes() -> None:
    assert LEFT_FOOT == (7, 10) and RIGHT_FOOT == (8, 11) and FOOT_JOINTS == (7, 10, 8, 11)


# ---------------------------------------------------------------- PFC


def test_pfc_is_zero_when_the_feet_are_planted() -> None:
    accelerating = with_root(standing(), x=0.5 * 2.0 * T**2)  # 2 m/s² forward
    assert physical_foot_contact(accelerating) == 0.0
    one_foot_sliding = sliding(accelerating, LEFT_FOOT, 0.3)
    assert physical_foot_contact(one_foot_sliding) == 0.0  # the right foot holds


def test_pfc_of_both_feet_sliding_under_an_accelerating_root() -> None:
    """Constant acceleration: |a| / max|a| = 1 on every frame; at 30 fps each foot moves 0.3 / 30 = 0.01 m
    per frame, so PFC = 0.01 · 0.01 · 1 · 1e4 = 1."""
    motion = sliding(with_root(standing(), x=0.5 * 2.0 * T**2), FOOT_JOINTS, 0.3)
    assert physical_foot_contact(motion) == pytest.approx(1.0, rel=1e-6)
    assert physical_foot_contact(motion, pfc_fps=60) == pytest.approx(0.25, rel=1e-6)  # per-frame steps halve


def test_pfc_clamps_downward_acceleration_and_ignores_a_root_at_constant_velocity() -> None:
    feet_sliding = sliding(standing(), FOOT_JOINTS, 0.3)
    falling = with_root(feet_sliding, y=0.9 - 0.5 * 9.81 * T**2)  # free fall needs no contact
    assert physical_foot_contact(falling) == 0.0
    cruising = with_root(feet_sliding, x=1.3 * T)  # no acceleration beyond round-off
    assert physical_foot_contact(cruising) == 0.0
    pushed_up = with_root(feet_sliding, y=0.9 + 0.5 * 3.0 * T**2)
    assert physical_foot_contact(pushed_up) == pytest.approx(1.0, rel=1e-6)


def test_pfc_validates_its_rate() -> None:
    with pytest.raises(ValueError, match="must divide"):
        physical_foot_contact(standing(), pfc_fps=25)
    with pytest.raises(ValueError, match="at least 3 frames"):
        physical_foot_contact(standing()[:4])


# ---------------------------------------------------------------- foot skating and speed


def test_a_planted_foot_does_not_skate_and_a_sliding_one_skates_at_its_speed() -> None:
    assert foot_skating(standing()) == 0.0
    assert foot_skating(sliding(standing(), FOOT_JOINTS, 1.0)) == pytest.approx(1.0)
    half = foot_skating(sliding(standing(), LEFT_FOOT, 1.0))  # 2 of the 4 foot joints slide
    assert half == pytest.approx(0.5)


def test_a_foot_moving_in_the_air_is_not_skating() -> None:
    p = standing()
    lifted = np.arange(FRAMES) >= FRAMES // 2
    for joint in LEFT_FOOT:  # the left foot rises 20 cm and moves at 1 m/s only while up there
        p[lifted, joint, 1] = 0.2
        p[lifted, joint, 2] = 1.0 * T[lifted]
    assert foot_skating(p) == pytest.approx(0.0)
    floor_above_zero = standing()
    floor_above_zero[:, list(FOOT_JOINTS), 1] = 0.3  # each joint's own lowest height is its floor
    assert foot_skating(sliding(floor_above_zero, FOOT_JOINTS, 2.0)) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="contact_height_m"):
        foot_skating(p, contact_height_m=0.0)


def test_mean_joint_speed_shows_a_frozen_dance() -> None:
    assert mean_joint_speed(standing()) == 0.0
    moving = standing()
    moving[:, :, 0] += 2.0 * T[:, None]
    assert mean_joint_speed(moving) == pytest.approx(2.0)
    got = physical_scores(moving)
    assert set(got) == set(PHYSICAL_METRICS) and got["mean_joint_speed"] == pytest.approx(2.0)
    with pytest.raises(ValueError, match=r"\(T, 24, 3\)"):
        mean_joint_speed(np.zeros((10, 23, 3)))
