"""SMPL kinematic tree and forward kinematics without the SMPL model files.

The rest skeleton is the neutral-shape (betas = 0) SMPL body as published in EDGE's ``smpl_offsets``:
each joint's rest position relative to its parent, in metres, y-up, the body facing +z and its left
side at +x. Forward kinematics turns axis-angle joint rotations (24 x 3, the root's global orientation
first) and a root translation into the 24 joint positions:

    pos[0] = trans,                 R_world[0] = R(pose[0])
    pos[i] = R_world[p] @ offset[i] + pos[p],   R_world[i] = R_world[p] @ R(pose[i]),   p = parent[i]

This equals ``smplx.SMPL(...).joints[:, :24]`` with ``transl = trans - SMPL_REST_PELVIS``; every metric
here starts from zero-centred motion, so the constant pelvis offset cancels. For AIST++ pass
``trans = smpl_trans / smpl_scaling``.

Numpy only (no torch): the viewer and the feature code import it. The differentiable torch twin used by
the IK fit lives in :mod:`danceba.export.ik`. ``LOWER_BODY_JOINTS`` / ``UPPER_BODY_JOINTS`` are
Bailando's two body halves, which :mod:`danceba.motion.bailando_layout` splits a frame into.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

SMPL_JOINT_NAMES: tuple[str, ...] = (
    "root", "lhip", "rhip", "belly", "lknee", "rknee", "spine", "lankle", "rankle", "chest", "ltoes",
    "rtoes", "neck", "linshoulder", "rinshoulder", "head", "lshoulder", "rshoulder", "lelbow", "relbow",
    "lwrist", "rwrist", "lhand", "rhand",
)  # fmt: skip

SMPL_PARENTS: tuple[int, ...] = (
    -1,
    0,
    0,
    0,
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    9,
    9,
    9,
    12,
    13,
    14,
    16,
    17,
    18,
    19,
    20,
    21,
)

SMPL_OFFSETS = np.array(
    [
        [0.0, 0.0, 0.0],
        [0.05858135, -0.08228004, -0.01766408],
        [-0.06030973, -0.09051332, -0.01354254],
        [0.00443945, 0.12440352, -0.03838522],
        [0.04345142, -0.38646945, 0.008037],
        [-0.04325663, -0.38368791, -0.00484304],
        [0.00448844, 0.1379564, 0.02682033],
        [-0.01479032, -0.42687458, -0.037428],
        [0.01905555, -0.4200455, -0.03456167],
        [-0.00226458, 0.05603239, 0.00285505],
        [0.04105436, -0.06028581, 0.12204243],
        [-0.03483987, -0.06210566, 0.13032329],
        [-0.0133902, 0.21163553, -0.03346758],
        [0.07170245, 0.11399969, -0.01889817],
        [-0.08295366, 0.11247234, -0.02370739],
        [0.01011321, 0.08893734, 0.05040987],
        [0.12292141, 0.04520509, -0.019046],
        [-0.11322832, 0.04685326, -0.00847207],
        [0.2553319, -0.01564902, -0.02294649],
        [-0.26012748, -0.01436928, -0.03126873],
        [0.26570925, 0.01269811, -0.00737473],
        [-0.26910836, 0.00679372, -0.00602676],
        [0.08669055, -0.01063603, -0.01559429],
        [-0.0887537, -0.00865157, -0.01010708],
    ],
    dtype=np.float64,
)

# Absolute rest position of the pelvis in the SMPL (MALE, betas = 0) model frame; derived in the facts file.
SMPL_REST_PELVIS = np.array([-0.00217368, -0.24078915, 0.02858379], dtype=np.float64)

NUM_JOINTS = 24
LOWER_BODY_JOINTS: tuple[int, ...] = (0, 1, 2, 4, 5, 7, 8, 10, 11)
UPPER_BODY_JOINTS: tuple[int, ...] = (3, 6, 9, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23)

SMALL_ANGLE = 1e-4  # below this, Rodrigues' coefficients use their Taylor series


def rest_pose_joints(absolute: bool = False) -> np.ndarray:
    """Rest-pose (T-pose) joint positions, (24, 3) float64 metres.

    Relative to the pelvis (joint 0 at the origin) by default; ``absolute=True`` adds
    ``SMPL_REST_PELVIS``, giving the SMPL model-frame positions.
    """
    joints = np.zeros((NUM_JOINTS, 3))
    for i in range(1, NUM_JOINTS):
        joints[i] = joints[SMPL_PARENTS[i]] + SMPL_OFFSETS[i]
    return joints + SMPL_REST_PELVIS if absolute else joints


def axis_angle_to_matrix(axis_angle: np.ndarray) -> np.ndarray:
    """Rodrigues' formula, vectorised: (..., 3) axis-angle -> (..., 3, 3) rotation matrices.

    Uses the Taylor series of sin(t)/t and (1 - cos t)/t^2 near t = 0, so it is exact at zero and smooth.
    """
    aa = np.asarray(axis_angle)
    if aa.shape[-1:] != (3,):
        raise ValueError(f"axis_angle: expected shape (..., 3), got {aa.shape}")
    dtype = aa.dtype if np.issubdtype(aa.dtype, np.floating) else np.float64
    aa = aa.astype(np.float64, copy=False)
    theta2 = np.sum(aa * aa, axis=-1)
    theta = np.sqrt(theta2)
    small = theta < SMALL_ANGLE
    safe = np.where(small, 1.0, theta)
    a = np.where(small, 1.0 - theta2 / 6.0, np.sin(safe) / safe)
    b = np.where(small, 0.5 - theta2 / 24.0, (1.0 - np.cos(safe)) / (safe * safe))
    x, y, z = aa[..., 0], aa[..., 1], aa[..., 2]
    zero = np.zeros_like(x)
    skew = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], axis=-1).reshape((*aa.shape, 3))
    eye = np.broadcast_to(np.eye(3), skew.shape)
    matrix = eye + a[..., None, None] * skew + b[..., None, None] * (skew @ skew)
    return matrix.astype(dtype, copy=False)


def joint_rotations_view(poses: np.ndarray | torch.Tensor, name: str = "poses") -> tuple:
    """Accept (..., 72) or (..., 24, 3); return the (..., 24, 3) view and the leading shape."""
    shape = tuple(poses.shape)
    if shape[-2:] == (NUM_JOINTS, 3):
        return poses, shape[:-2]
    if shape[-1:] == (NUM_JOINTS * 3,):
        return poses.reshape((*shape[:-1], NUM_JOINTS, 3)), shape[:-1]
    raise ValueError(f"{name}: expected shape (..., 72) or (..., 24, 3), got {shape}")


def forward_kinematics(poses: np.ndarray, trans: np.ndarray) -> np.ndarray:
    """Joint positions from SMPL axis-angle rotations and root translation.

    Args:
        poses: (..., 72) or (..., 24, 3) axis-angle; joint 0 is the global (root) orientation.
        trans: (..., 3) root (pelvis) position in metres, same leading shape as ``poses``.

    Returns:
        (..., 24, 3) joint positions in metres, y-up, in the floating dtype of the inputs
        (computed in float64).
    """
    rotations, lead = joint_rotations_view(np.asarray(poses))
    trans = np.asarray(trans)
    if trans.shape != (*lead, 3):
        raise ValueError(
            f"trans: expected shape {(*lead, 3)} to match poses {tuple(np.shape(poses))}, got {trans.shape}"
        )
    out_dtype = np.result_type(rotations.dtype, trans.dtype)
    if not np.issubdtype(out_dtype, np.floating):
        out_dtype = np.float64
    local = axis_angle_to_matrix(rotations.astype(np.float64, copy=False))  # (..., 24, 3, 3)
    world = [local[..., 0, :, :]]
    positions = [trans.astype(np.float64, copy=False)]
    for i in range(1, NUM_JOINTS):
        parent = SMPL_PARENTS[i]
        positions.append(world[parent] @ SMPL_OFFSETS[i] + positions[parent])
        world.append(world[parent] @ local[..., i, :, :])
    return np.stack(positions, axis=-2).astype(out_dtype, copy=False)
