"""SMPL skeleton: constants, Rodrigues, forward kinematics (numpy, and the IK fit's torch twin), body split."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from danceba.export.ik import forward_kinematics_torch
from danceba.motion.bailando_layout import SMPL_DOWN, SMPL_UP, merge_body, split_body
from danceba.motion.skeleton import (
    LOWER_BODY_JOINTS,
    SMPL_JOINT_NAMES,
    SMPL_OFFSETS,
    SMPL_PARENTS,
    UPPER_BODY_JOINTS,
    axis_angle_to_matrix,
    forward_kinematics,
    rest_pose_joints,
)


def _fk_with_scipy(poses: np.ndarray, trans: np.ndarray) -> np.ndarray:
    """Independent FK for one frame: chain scipy Rotation objects. poses (24, 3), trans (3,)."""
    local = [Rotation.from_rotvec(poses[i]) for i in range(24)]
    world: list[Rotation] = [local[0]]
    positions = [trans]
    for i in range(1, 24):
        parent = SMPL_PARENTS[i]
        positions.append(world[parent].apply(SMPL_OFFSETS[i]) + positions[parent])
        world.append(world[parent] * local[i])
    return np.stack(positions)


def test_constants_are_consistent() -> None:
    assert len(SMPL_PARENTS) == len(SMPL_JOINT_NAMES) == 24
    assert SMPL_OFFSETS.shape == (24, 3)
    assert all(SMPL_PARENTS[i] < i for i in range(1, 24))
    assert sorted(LOWER_BODY_JOINTS + UPPER_BODY_JOINTS) == list(range(24))
    assert SMPL_JOINT_NAMES[SMPL_PARENTS[SMPL_JOINT_NAMES.index("lelbow")]] == "lshoulder"


def test_rest_pose_reproduces_the_manual_feature_constants() -> None:
    rest = rest_pose_joints(absolute=True)
    expected = {
        "lshoulder": [1.99113488e-01, 2.36807942e-01, -1.80702247e-02],
        "lelbow": [4.54445392e-01, 2.21158922e-01, -4.10167128e-02],
        "rshoulder": [-1.91692337e-01, 2.36928746e-01, -1.23055102e-02],
        "lhip": [5.64076714e-02, -3.23069185e-01, 1.09197125e-02],
        "rhip": [-6.24834076e-02, -3.31302464e-01, 1.50412619e-02],
    }
    for name, position in expected.items():
        np.testing.assert_allclose(rest[SMPL_JOINT_NAMES.index(name)], position, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(rest_pose_joints()[0], 0.0)


def test_axis_angle_to_matrix_matches_scipy_including_near_zero(rng: np.random.Generator) -> None:
    aa = np.concatenate([rng.normal(size=(50, 3)), rng.normal(size=(5, 3)) * 1e-7, np.zeros((1, 3))])
    np.testing.assert_allclose(axis_angle_to_matrix(aa), Rotation.from_rotvec(aa).as_matrix(), atol=1e-12)
    assert axis_angle_to_matrix(aa.astype(np.float32)).dtype == np.float32
    with pytest.raises(ValueError, match="axis_angle"):
        axis_angle_to_matrix(np.zeros((4, 2)))


def test_fk_matches_an_independent_scipy_chain(rng: np.random.Generator) -> None:
    poses = rng.normal(scale=0.6, size=(6, 24, 3))
    trans = rng.normal(size=(6, 3))
    joints = forward_kinematics(poses, trans)
    assert joints.shape == (6, 24, 3)
    for frame in range(6):
        np.testing.assert_allclose(joints[frame], _fk_with_scipy(poses[frame], trans[frame]), atol=1e-12)


def test_zero_pose_gives_accumulated_offsets() -> None:
    trans = np.array([0.3, 0.9, -0.2])
    joints = forward_kinematics(np.zeros(72), trans)
    np.testing.assert_allclose(joints, rest_pose_joints() + trans, atol=1e-12)


def test_root_rotation_about_y_rotates_every_joint() -> None:
    poses = np.zeros((24, 3))
    poses[0] = [0.0, np.pi / 2, 0.0]
    joints = forward_kinematics(poses, np.zeros(3))
    rest = rest_pose_joints()
    # +90 degrees about y maps (x, y, z) -> (z, y, -x).
    np.testing.assert_allclose(joints, np.stack([rest[:, 2], rest[:, 1], -rest[:, 0]], axis=-1), atol=1e-12)


def test_fk_is_vectorised_over_leading_dims_and_keeps_float32(rng: np.random.Generator) -> None:
    poses = rng.normal(scale=0.5, size=(2, 3, 72)).astype(np.float32)
    trans = rng.normal(size=(2, 3, 3)).astype(np.float32)
    batched = forward_kinematics(poses, trans)
    assert batched.shape == (2, 3, 24, 3) and batched.dtype == np.float32
    single = forward_kinematics(poses[1, 2].reshape(24, 3), trans[1, 2])
    np.testing.assert_allclose(batched[1, 2], single, atol=1e-6)
    with pytest.raises(ValueError, match="trans"):
        forward_kinematics(poses, trans[0])
    with pytest.raises(ValueError, match="poses"):
        forward_kinematics(np.zeros((5, 70)), np.zeros((5, 3)))


def test_torch_fk_matches_numpy_and_has_gradients(rng: np.random.Generator) -> None:
    poses = rng.normal(scale=0.5, size=(4, 24, 3))
    poses[0] = 0.0  # exercises the small-angle branch
    trans = rng.normal(size=(4, 3))
    poses_t = torch.tensor(poses, requires_grad=True)
    joints_t = forward_kinematics_torch(poses_t, torch.tensor(trans))
    np.testing.assert_allclose(joints_t.detach().numpy(), forward_kinematics(poses, trans), atol=1e-12)
    joints_t.sum().backward()
    assert poses_t.grad is not None and torch.isfinite(poses_t.grad).all()


def test_the_layout_splits_the_skeleton_s_body_halves_and_merges_them_back(rng: np.random.Generator) -> None:
    assert (SMPL_DOWN, SMPL_UP) == (LOWER_BODY_JOINTS, UPPER_BODY_JOINTS)  # one definition of the halves
    joints = torch.tensor(rng.normal(size=(5, 7, 72)))
    up, down = split_body(joints)
    assert up.shape == (5, 7, 45) and down.shape == (5, 7, 27)
    torch.testing.assert_close(
        down[..., 3:6], joints[..., 3:6], rtol=0, atol=0
    )  # lhip: the second lower joint
    torch.testing.assert_close(
        up[..., :3], joints[..., 9:12], rtol=0, atol=0
    )  # belly (3): the first upper joint
    torch.testing.assert_close(merge_body(up, down), joints, rtol=0, atol=0)
