"""BVH export/import and the joints -> rotations IK fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from danceba.data.mini_motion import DancerStyle, synthesize_motion
from danceba.export.bvh import (
    JOINT_ROTATION_ORDERS,
    continuous_euler,
    depth_first_order,
    read_bvh,
    write_bvh,
    write_bvh_from_joints,
)
from danceba.export.ik import (
    CHILDREN,
    fit_rotations,
    kabsch_rotation,
    mean_joint_error_mm,
    swing_rotvec,
)
from danceba.motion.skeleton import SMPL_JOINT_NAMES, SMPL_OFFSETS, forward_kinematics

LEAVES = [j for j in range(24) if not CHILDREN[j]]


def _random_motion(rng: np.random.Generator, n_frames: int = 30, scale: float = 0.4):
    rotations = rng.normal(0.0, scale, (n_frames, 24, 3))
    rotations[:, 0] = rng.normal(0.0, 1.5, (n_frames, 3))  # any global orientation
    return rotations, rng.normal(0.0, 1.0, (n_frames, 3))


def _mini_joints(n_frames: int = 120, genre: str = "gBR") -> np.ndarray:
    rng = np.random.default_rng(5)
    poses, trans = synthesize_motion(genre, 110.0, n_frames, DancerStyle.draw(rng), rng, rng)
    return forward_kinematics(poses.astype(np.float64), trans)


# ------------------------------------------------------------------------------------------ BVH


def test_bvh_round_trip_reproduces_the_joints(tmp_path: Path, rng: np.random.Generator) -> None:
    rotations, root = _random_motion(rng)
    write_bvh(tmp_path / "a.bvh", rotations, root, fps=60)
    read_rotations, read_root, fps = read_bvh(tmp_path / "a.bvh")
    assert fps == 60.0 and read_rotations.shape == (30, 24, 3) and read_root.shape == (30, 3)
    np.testing.assert_allclose(read_root, root, atol=1e-6)
    np.testing.assert_allclose(
        forward_kinematics(read_rotations, read_root), forward_kinematics(rotations, root), atol=1e-4
    )


def test_bvh_file_structure(tmp_path: Path, rng: np.random.Generator) -> None:
    rotations, root = _random_motion(rng, n_frames=7)
    write_bvh(tmp_path / "a.bvh", rotations, root, fps=30)
    lines = (tmp_path / "a.bvh").read_text().splitlines()
    names = [line.split()[1] for line in lines if line.split()[:1] in (["ROOT"], ["JOINT"])]
    assert names == [SMPL_JOINT_NAMES[j] for j in depth_first_order()]
    assert sorted(names) == sorted(SMPL_JOINT_NAMES)
    assert sum(line.strip() == "End Site" for line in lines) == len(LEAVES) == 5
    channels = [line.split() for line in lines if line.strip().startswith("CHANNELS")]
    assert channels[0] == [
        "CHANNELS",
        "6",
        *"Xposition Yposition Zposition Yrotation Xrotation Zrotation".split(),
    ]
    assert ["CHANNELS", "3", "Zrotation", "Xrotation", "Yrotation"] in channels  # the arms
    assert all(c[1] == "3" for c in channels[1:]) and len(channels) == 24
    motion = lines.index("MOTION")
    assert lines[motion + 1 : motion + 3] == ["Frames: 7", "Frame Time: 0.03333333"]
    frames = lines[motion + 3 :]
    assert len(frames) == 7 and all(len(f.split()) == 6 + 23 * 3 for f in frames)
    offsets = [line.split()[1:] for line in lines if line.strip().startswith("OFFSET")]
    np.testing.assert_allclose(np.array(offsets[1], dtype=float), SMPL_OFFSETS[1], atol=1e-6)  # lhip, metres


def test_bvh_in_centimetres_and_another_rotation_order(tmp_path: Path, rng: np.random.Generator) -> None:
    rotations, root = _random_motion(rng, n_frames=5)
    write_bvh(tmp_path / "cm.bvh", rotations, root, rotation_order="yxz", length_unit="cm")
    text = (tmp_path / "cm.bvh").read_text()
    assert "CHANNELS 3 Yrotation Xrotation Zrotation" in text
    assert f"OFFSET {100 * SMPL_OFFSETS[1, 0]:.6f}" in text
    read_rotations, read_root, _ = read_bvh(tmp_path / "cm.bvh")
    np.testing.assert_allclose(read_root, root, atol=1e-7)
    np.testing.assert_allclose(
        forward_kinematics(read_rotations, read_root), forward_kinematics(rotations, root), atol=1e-4
    )


def test_read_bvh_tolerates_any_whitespace(tmp_path: Path, rng: np.random.Generator) -> None:
    rotations, root = _random_motion(rng, n_frames=4)
    write_bvh(tmp_path / "a.bvh", rotations, root)
    messy = "\r\n\n".join(
        "   " + line.replace("\t", "  ").replace(" ", " \t ")
        for line in (tmp_path / "a.bvh").read_text().splitlines()
    )
    (tmp_path / "messy.bvh").write_text(messy)
    expected, got = read_bvh(tmp_path / "a.bvh"), read_bvh(tmp_path / "messy.bvh")
    np.testing.assert_array_equal(expected[0], got[0])
    np.testing.assert_array_equal(expected[1], got[1])


def test_euler_channels_stay_continuous_through_turns_and_big_swings(tmp_path: Path) -> None:
    n = 240
    phase = np.linspace(0.0, 1.0, n)
    rotations = np.zeros((n, 24, 3))
    yaw = Rotation.from_euler("y", 4 * np.pi * phase[:, None])  # two full turns, 6 degrees per frame
    rotations[:, 0] = (yaw * Rotation.from_euler("x", 0.2 * np.sin(6 * np.pi * phase)[:, None])).as_rotvec()
    raise_arm = 2.6 * np.sin(np.pi * phase)  # shoulder up to 150 degrees and back
    rotations[:, SMPL_JOINT_NAMES.index("lshoulder")] = np.stack(
        [0.3 * raise_arm, 0 * phase, raise_arm], axis=1
    )
    rotations[:, SMPL_JOINT_NAMES.index("lknee")] = np.stack(
        [2.2 * np.sin(np.pi * phase), 0 * phase, 0 * phase], 1
    )
    write_bvh(tmp_path / "turn.bvh", rotations, np.zeros((n, 3)))
    lines = (tmp_path / "turn.bvh").read_text().splitlines()
    frames = np.array([line.split() for line in lines[lines.index("MOTION") + 3 :]], dtype=float)
    assert np.abs(np.diff(frames, axis=0)).max() < 8.0  # degrees per frame: no 180/360-degree jumps
    read_rotations, _, _ = read_bvh(tmp_path / "turn.bvh")
    np.testing.assert_allclose(
        Rotation.from_rotvec(read_rotations).as_matrix(),
        Rotation.from_rotvec(rotations).as_matrix(),
        atol=1e-6,
    )


def test_continuous_euler_keeps_every_rotation(rng: np.random.Generator) -> None:
    path = Rotation.from_rotvec(np.cumsum(rng.normal(0.0, 0.3, (100, 3)), axis=0))  # a wild random walk
    for order in ("ZYX", "YXZ", "XZY"):
        angles = path.as_euler(order, degrees=True)
        smooth = continuous_euler(angles)
        np.testing.assert_allclose(
            Rotation.from_euler(order, smooth, degrees=True).as_matrix(), path.as_matrix(), atol=1e-9
        )
        assert np.abs(np.diff(smooth, axis=0)).sum() <= np.abs(np.diff(angles, axis=0)).sum()


def test_default_rotation_orders_put_the_bone_axis_in_the_middle() -> None:
    orders = dict(zip(SMPL_JOINT_NAMES, JOINT_ROTATION_ORDERS, strict=True))
    assert orders["root"] == "YXZ"  # yaw first
    assert orders["lknee"][1] == orders["spine"][1] == "Y"  # legs and spine run along y
    assert orders["lelbow"][1] == orders["rshoulder"][1] == "X"  # arms run along x
    assert orders["lankle"][1] == "Z"  # the foot points forward


def test_read_bvh_rejects_bad_files(tmp_path: Path, rng: np.random.Generator) -> None:
    rotations, root = _random_motion(rng, n_frames=3)
    write_bvh(tmp_path / "a.bvh", rotations, root)
    text = (tmp_path / "a.bvh").read_text()
    with pytest.raises(FileNotFoundError, match=r"missing\.bvh"):
        read_bvh(tmp_path / "missing.bvh")
    (tmp_path / "renamed.bvh").write_text(text.replace("JOINT lelbow", "JOINT lforearm"))
    with pytest.raises(ValueError, match="not the 24 SMPL joints"):
        read_bvh(tmp_path / "renamed.bvh")
    (tmp_path / "short.bvh").write_text(text.rsplit("\n", 2)[0])
    with pytest.raises(ValueError, match="3 frames x 75 channels"):
        read_bvh(tmp_path / "short.bvh")
    (tmp_path / "other.bvh").write_text(text.replace(f"OFFSET {SMPL_OFFSETS[4, 0]:.6f}", "OFFSET 0.3"))
    with pytest.raises(ValueError, match="not the SMPL rest skeleton"):
        read_bvh(tmp_path / "other.bvh")


def test_write_bvh_rejects_bad_input_and_writes_nothing(tmp_path: Path, rng: np.random.Generator) -> None:
    rotations, root = _random_motion(rng, n_frames=3)
    with pytest.raises(ValueError, match="rotations"):
        write_bvh(tmp_path / "a.bvh", rotations[:, :23], root)
    with pytest.raises(ValueError, match="root_positions"):
        write_bvh(tmp_path / "a.bvh", rotations, root[:2])
    with pytest.raises(ValueError, match="rotation_order"):
        write_bvh(tmp_path / "a.bvh", rotations, root, rotation_order="XXZ")
    with pytest.raises(ValueError, match="length_unit"):
        write_bvh(tmp_path / "a.bvh", rotations, root, length_unit="inch")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------ IK


def test_swing_is_the_minimal_rotation_and_matches_scipy(rng: np.random.Generator) -> None:
    rest = SMPL_OFFSETS[4]
    targets = rng.normal(size=(20, 3))
    swing = swing_rotvec(rest, targets)
    turned = Rotation.from_rotvec(swing).apply(rest / np.linalg.norm(rest))
    np.testing.assert_allclose(turned, targets / np.linalg.norm(targets, axis=1, keepdims=True), atol=1e-12)
    for target, rotvec in zip(targets[:5], swing[:5], strict=True):
        reference, _ = Rotation.align_vectors(target[None], rest[None])  # single pair: minimal rotation
        np.testing.assert_allclose(rotvec, reference.as_rotvec(), atol=1e-9)
    opposite, vanishing = swing_rotvec(rest, np.stack([-rest, np.zeros(3)]))
    np.testing.assert_allclose(Rotation.from_rotvec(opposite).apply(rest), -rest, atol=1e-12)
    np.testing.assert_allclose(vanishing, 0.0)


def test_batched_kabsch_matches_align_vectors(rng: np.random.Generator) -> None:
    rest = SMPL_OFFSETS[[12, 13, 14]]
    truth = Rotation.random(6, random_state=3)
    targets = np.stack([r.apply(rest) for r in truth]) + rng.normal(0.0, 0.02, (6, 3, 3))
    matrices = kabsch_rotation(rest, targets)
    for t in range(6):
        reference, _ = Rotation.align_vectors(targets[t], rest)
        np.testing.assert_allclose(matrices[t], reference.as_matrix(), atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(matrices), 1.0, atol=1e-12)


@pytest.mark.parametrize("genre", ["gBR", "gJB"])
def test_fit_reproduces_mini_dance_joints(genre: str) -> None:
    joints = _mini_joints(genre=genre)
    rotations, root, error_mm = fit_rotations(joints)
    assert rotations.shape == (120, 24, 3) and root.shape == (120, 3)
    assert error_mm < 1e-3  # target < 10 mm; bone lengths match, so the fit is exact up to rounding
    np.testing.assert_allclose(forward_kinematics(rotations, root), joints, atol=1e-8)


def test_fit_reproduces_random_moderate_poses(rng: np.random.Generator) -> None:
    rotations, root = _random_motion(rng, n_frames=50, scale=0.6)
    joints = forward_kinematics(rotations, root)
    fitted, fitted_root, error_mm = fit_rotations(joints)
    assert error_mm < 1e-3
    assert error_mm == pytest.approx(mean_joint_error_mm(fitted, fitted_root, joints))


def test_leaf_rotations_are_unobservable_and_fitted_as_identity(rng: np.random.Generator) -> None:
    rotations, root = _random_motion(rng, n_frames=10)
    twisted = rotations.copy()
    twisted[:, LEAVES] = rng.normal(0.0, 1.0, (10, len(LEAVES), 3))
    np.testing.assert_allclose(
        forward_kinematics(twisted, root), forward_kinematics(rotations, root), atol=1e-12
    )
    fitted, _, _ = fit_rotations(forward_kinematics(twisted, root))
    np.testing.assert_allclose(fitted[:, LEAVES], 0.0)


def test_fit_with_other_bone_lengths_reports_the_residual_and_refining_lowers_it() -> None:
    joints = _mini_joints(n_frames=20)
    stretched = joints[:, :1] + 1.05 * (joints - joints[:, :1])  # a 5 % taller dancer
    rotations, root, error_mm = fit_rotations(stretched)
    assert 1.0 < error_mm < 40.0
    assert error_mm == pytest.approx(mean_joint_error_mm(rotations, root, stretched))
    _, _, refined_mm = fit_rotations(stretched, refine_steps=20)
    assert refined_mm < error_mm


def test_write_bvh_from_joints_round_trips(tmp_path: Path) -> None:
    joints = _mini_joints(n_frames=60)
    error_mm = write_bvh_from_joints(tmp_path / "dance.bvh", joints, fps=60)
    rotations, root, fps = read_bvh(tmp_path / "dance.bvh")
    assert error_mm < 1e-3 and fps == 60.0
    np.testing.assert_allclose(forward_kinematics(rotations, root), joints, atol=1e-4)


def test_fit_rejects_bad_joints() -> None:
    with pytest.raises(ValueError, match="joints"):
        fit_rotations(np.zeros((5, 22, 3)))
    with pytest.raises(ValueError, match="joints"):
        fit_rotations(np.zeros((0, 24, 3)))
    bad = np.zeros((2, 24, 3))
    bad[1, 3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fit_rotations(bad)
