"""Inverse kinematics: SMPL joint positions -> axis-angle rotations + root translation.

Generated dances are joint positions only, (T, 24, 3) metres, y-up. A BVH file needs joint rotations, so we
fit, frame by frame and vectorised over frames, the rotations whose forward kinematics
(:func:`danceba.motion.skeleton.forward_kinematics`, fixed SMPL rest offsets) reproduce the joints:

- The root translation is the pelvis position, ``joints[:, 0]``.
- Joints with several children (pelvis 0 -> 1, 2, 3; chest 9 -> 12, 13, 14) get the rotation that best
  maps all their rest child offsets onto the target child vectors at once (Kabsch / orthogonal Procrustes,
  the least-squares problem ``Rotation.align_vectors`` solves; here batched with one SVD per frame).
- Joints with one child get the *swing*: the smallest rotation, in the parent's frame, that turns the rest
  bone direction onto the target direction (the single-pair case of ``Rotation.align_vectors``).
- Leaf joints (toes, head, hands) move no other joint: their rotation is the identity.

Target vectors are taken from the *reconstructed* parent position, so when bone lengths differ from the
SMPL ones (generated motion) each bone still points at its target and errors do not accumulate down the
chain. With matching bone lengths the fit is exact up to rounding.

Twist about a bone (and any rotation of a leaf joint) is unobservable from positions: it changes no joint
position. The swing solution has zero twist relative to the parent frame, which is continuous over time
except when a bone turns fully back onto its rest direction (angle pi), where the swing axis is undefined.
Where twist of a parent would show up in a grandchild, the child's own rotation absorbs it, so the 24
positions are still reproduced; the rotations are *a* solution, not the dancer's true joint rotations.

Bone lengths cannot change, so when they do in the input, the residual is reported as ``mean_error_mm``
(mean per-joint position error of FK(fit) against the input). An optional few steps of gradient descent on
the FK error (``refine_steps``) can lower it further.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from danceba.motion.skeleton import (
    NUM_JOINTS,
    SMALL_ANGLE,
    SMPL_OFFSETS,
    SMPL_PARENTS,
    axis_angle_to_matrix,
    forward_kinematics,
    joint_rotations_view,
)


def axis_angle_to_matrix_torch(axis_angle: torch.Tensor) -> torch.Tensor:
    """Torch twin of :func:`danceba.motion.skeleton.axis_angle_to_matrix`: (..., 3) -> (..., 3, 3), differentiable."""
    if axis_angle.shape[-1:] != (3,):
        raise ValueError(f"axis_angle: expected shape (..., 3), got {tuple(axis_angle.shape)}")
    theta2 = (axis_angle * axis_angle).sum(-1)
    small = theta2 < SMALL_ANGLE**2
    safe = torch.where(small, torch.ones_like(theta2), theta2).sqrt()
    a = torch.where(small, 1.0 - theta2 / 6.0, torch.sin(safe) / safe)
    b = torch.where(small, 0.5 - theta2 / 24.0, (1.0 - torch.cos(safe)) / (safe * safe))
    x, y, z = axis_angle.unbind(-1)
    zero = torch.zeros_like(x)
    skew = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape((*axis_angle.shape, 3))
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device).expand(skew.shape)
    return eye + a[..., None, None] * skew + b[..., None, None] * (skew @ skew)


def forward_kinematics_torch(poses: torch.Tensor, trans: torch.Tensor) -> torch.Tensor:
    """Torch twin of :func:`danceba.motion.skeleton.forward_kinematics` (same shapes; computed in the inputs' dtype and device)."""
    rotations, lead = joint_rotations_view(poses)
    if tuple(trans.shape) != (*lead, 3):
        raise ValueError(
            f"trans: expected shape {(*lead, 3)} to match poses {tuple(poses.shape)}, got {tuple(trans.shape)}"
        )
    offsets = torch.as_tensor(SMPL_OFFSETS, dtype=rotations.dtype, device=rotations.device)
    local = axis_angle_to_matrix_torch(rotations)
    world = [local[..., 0, :, :]]
    positions = [trans]
    for i in range(1, NUM_JOINTS):
        parent = SMPL_PARENTS[i]
        positions.append(world[parent] @ offsets[i] + positions[parent])
        world.append(world[parent] @ local[..., i, :, :])
    return torch.stack(positions, dim=-2)


CHILDREN: tuple[tuple[int, ...], ...] = tuple(
    tuple(c for c in range(NUM_JOINTS) if SMPL_PARENTS[c] == j) for j in range(NUM_JOINTS)
)
_EPS = 1e-9


def _unit(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., 3) vectors -> unit vectors (zero where the norm vanishes) and the norms (...)."""
    norm = np.linalg.norm(v, axis=-1)
    return v / np.where(norm > _EPS, norm, 1.0)[..., None], norm


def swing_rotvec(rest: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Smallest rotation taking direction ``rest`` (3,) onto each ``target`` (T, 3): (T, 3) axis-angle.

    A vanishing target keeps the rest direction (identity). An opposite target (angle pi, axis undefined)
    turns about a fixed axis perpendicular to ``rest``.
    """
    a, _ = _unit(np.asarray(rest, dtype=np.float64))
    b, b_norm = _unit(np.asarray(target, dtype=np.float64))
    b = np.where((b_norm > _EPS)[..., None], b, a)
    axis, sin = _unit(np.cross(a, b))
    angle = np.arctan2(sin, b @ a)
    perpendicular, _ = _unit(np.cross(a, np.eye(3)[np.argmin(np.abs(a))]))
    opposite = (sin <= 1e-12) & (angle > np.pi / 2)
    axis = np.where(opposite[..., None], perpendicular, axis)
    return axis * angle[..., None]


def kabsch_rotation(rest: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Rotations R minimising sum_k |R rest_k - target_tk|^2: rest (K, 3), target (T, K, 3) -> (T, 3, 3).

    The batched orthogonal Procrustes solution (one 3x3 SVD per frame, reflections excluded); the same
    optimum as ``Rotation.align_vectors(target[t], rest)``.
    """
    h = np.einsum("ki,tkj->tij", np.asarray(rest, dtype=np.float64), np.asarray(target, dtype=np.float64))
    u, _, vt = np.linalg.svd(h)
    v = np.swapaxes(vt, -1, -2)
    d = np.sign(np.linalg.det(v @ np.swapaxes(u, -1, -2)))
    d = np.where(d == 0, 1.0, d)
    fix = np.broadcast_to(np.eye(3), h.shape).copy()
    fix[:, 2, 2] = d
    return v @ fix @ np.swapaxes(u, -1, -2)


def _analytic_fit(joints: np.ndarray) -> np.ndarray:
    """Swing/Kabsch fit down the tree: joints (T, 24, 3) float64 -> local axis-angle (T, 24, 3)."""
    n_frames = len(joints)
    local = np.zeros((n_frames, NUM_JOINTS, 3))
    world = np.zeros((n_frames, NUM_JOINTS, 3, 3))
    position = np.zeros_like(joints)
    position[:, 0] = joints[:, 0]
    identity = np.broadcast_to(np.eye(3), (n_frames, 3, 3))
    for j in range(NUM_JOINTS):
        parent_world = identity if j == 0 else world[:, SMPL_PARENTS[j]]
        children = CHILDREN[j]
        targets = joints[:, children] - position[:, j, None]  # (T, K, 3) world
        if len(children) == 1:
            in_parent = np.einsum("tji,tj->ti", parent_world, targets[:, 0])  # parent_world^T @ target
            local[:, j] = swing_rotvec(SMPL_OFFSETS[children[0]], in_parent)
            world[:, j] = parent_world @ axis_angle_to_matrix(local[:, j])
        elif children:
            world[:, j] = kabsch_rotation(SMPL_OFFSETS[list(children)], targets)
            relative = np.swapaxes(parent_world, -1, -2) @ world[:, j]
            local[:, j] = Rotation.from_matrix(relative).as_rotvec()
        else:
            world[:, j] = parent_world
        for c in children:
            position[:, c] = world[:, j] @ SMPL_OFFSETS[c] + position[:, j]
    return local


def refine_rotations(
    rotations: np.ndarray, root_positions: np.ndarray, joints: np.ndarray, steps: int, lr: float = 1e-2
) -> tuple[np.ndarray, np.ndarray]:
    """A few Adam steps on the mean squared FK error, starting from a fit (shapes as :func:`fit_rotations`).

    Returns the refined (rotations (T, 24, 3), root_positions (T, 3)), or the inputs if none improves.
    """
    target = torch.as_tensor(joints, dtype=torch.float64)
    poses = torch.tensor(rotations, dtype=torch.float64, requires_grad=True)
    trans = torch.tensor(root_positions, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.Adam([poses, trans], lr=lr)

    def loss() -> torch.Tensor:
        return ((forward_kinematics_torch(poses, trans) - target) ** 2).sum(-1).mean()

    best = (rotations, root_positions)
    with torch.no_grad():
        best_loss = float(loss())
    for _ in range(steps):
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()
        with torch.no_grad():
            now = float(loss())
        if now < best_loss:
            best_loss, best = now, (poses.detach().numpy().copy(), trans.detach().numpy().copy())
    return best


def mean_joint_error_mm(rotations: np.ndarray, root_positions: np.ndarray, joints: np.ndarray) -> float:
    """Mean per-joint distance, in millimetres, between FK(rotations, root_positions) and joints (T, 24, 3)."""
    fitted = forward_kinematics(np.asarray(rotations, np.float64), np.asarray(root_positions, np.float64))
    return float(np.linalg.norm(fitted - joints, axis=-1).mean() * 1000.0)


def fit_rotations(joints: np.ndarray, refine_steps: int = 0) -> tuple[np.ndarray, np.ndarray, float]:
    """Fit SMPL rotations to joint positions.

    Args:
        joints: (T, 24, 3) joint positions in metres, SMPL joint order, y-up.
        refine_steps: Adam steps on the FK error after the analytic fit (0 = analytic only).

    Returns:
        rotations (T, 24, 3) float64 axis-angle (joint 0 = global orientation), canonical (angle <= pi);
        root_positions (T, 3) float64 metres; mean_error_mm, the mean per-joint error of FK(fit) vs joints.
    """
    joints = np.asarray(joints)
    if joints.ndim != 3 or joints.shape[1:] != (NUM_JOINTS, 3) or len(joints) == 0:
        raise ValueError(f"joints: expected shape (T >= 1, 24, 3), got {joints.shape}")
    if not np.all(np.isfinite(joints)):
        raise ValueError("joints: contains NaN or infinite values")
    if refine_steps < 0:
        raise ValueError(f"refine_steps: must be >= 0, got {refine_steps}")
    joints = joints.astype(np.float64)
    rotations = _analytic_fit(joints)
    root_positions = joints[:, 0].copy()
    if refine_steps:
        rotations, root_positions = refine_rotations(rotations, root_positions, joints, refine_steps)
    return rotations, root_positions, mean_joint_error_mm(rotations, root_positions, joints)
