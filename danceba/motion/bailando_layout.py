"""Bailando's motion layout and the helpers that convert to and from it.

72 channels per 60 fps frame, 24 SMPL joints x 3. Channels ``[:3]`` carry the root (absolute position,
zeroed for stage 1, or root velocity ``x[t+1] - x[t]`` for stage 2); the other joints are root-relative.
The VQ-VAE (:mod:`danceba.models.vqvae`) splits a frame into an upper-body (45-d) and a lower-body
(27-d, root first) half. The helpers take numpy arrays or torch tensors, leading batch dims allowed.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch
from einops import rearrange

from danceba.motion.skeleton import LOWER_BODY_JOINTS, NUM_JOINTS, UPPER_BODY_JOINTS

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)

SMPL_DOWN = LOWER_BODY_JOINTS  # root, hips, knees, ankles, toes: 27 channels
SMPL_UP = UPPER_BODY_JOINTS  # spine, neck, head, arms: 45 channels
N_JOINTS = NUM_JOINTS
JOINT_CHANNELS = 3
ROOT_CHANNELS = slice(0, JOINT_CHANNELS)


def split_body(x72: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T, 72) -> (up (B, T, 45), down (B, T, 27)); down channels [:3] are the root."""
    joints = rearrange(x72, "b t (j c) -> b t j c", c=JOINT_CHANNELS)
    up, down = joints[:, :, list(SMPL_UP)], joints[:, :, list(SMPL_DOWN)]
    return rearrange(up, "b t j c -> b t (j c)"), rearrange(down, "b t j c -> b t (j c)")


def merge_body(up: torch.Tensor, down: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`split_body`: (B, T, 45), (B, T, 27) -> (B, T, 72)."""
    b, t, _ = up.shape
    joints = up.new_zeros(b, t, N_JOINTS, JOINT_CHANNELS)
    joints[:, :, list(SMPL_UP)] = rearrange(up, "b t (j c) -> b t j c", c=JOINT_CHANNELS)
    joints[:, :, list(SMPL_DOWN)] = rearrange(down, "b t (j c) -> b t j c", c=JOINT_CHANNELS)
    return rearrange(joints, "b t j c -> b t (j c)")


def _copy(x: ArrayT) -> ArrayT:
    return x.clone() if isinstance(x, torch.Tensor) else np.array(x, copy=True)


def _check_layout(x72: ArrayT, name: str) -> None:
    if x72.ndim < 2 or x72.shape[-1] != N_JOINTS * JOINT_CHANNELS:
        raise ValueError(f"{name}: expected shape (..., T, 72), got {tuple(x72.shape)}")


def to_bailando_layout(joints: ArrayT) -> ArrayT:
    """Absolute joints (..., T, 24, 3) -> (..., T, 72): root absolute in [:3], other joints root-relative."""
    if joints.ndim < 3 or tuple(joints.shape[-2:]) != (N_JOINTS, JOINT_CHANNELS):
        raise ValueError(f"joints: expected shape (..., T, 24, 3), got {tuple(joints.shape)}")
    x = joints - joints[..., :1, :]
    x[..., 0, :] = joints[..., 0, :]
    return x.reshape(*joints.shape[:-2], N_JOINTS * JOINT_CHANNELS)


def zero_root(x72: ArrayT) -> ArrayT:
    """Copy of (..., T, 72) with the root channels [:3] set to 0 (stage 1, GPT tokens)."""
    _check_layout(x72, "x72")
    x = _copy(x72)
    x[..., ROOT_CHANNELS] = 0
    return x


def with_root_velocity(x72: ArrayT) -> ArrayT:
    """Copy of (..., T, 72) whose root channels hold x[t+1] - x[t]; the last velocity is repeated."""
    _check_layout(x72, "x72")
    if x72.shape[-2] < 2:
        raise ValueError(f"x72: need at least 2 frames for a root velocity, got {x72.shape[-2]}")
    x = _copy(x72)
    x[..., :-1, ROOT_CHANNELS] = x72[..., 1:, ROOT_CHANNELS] - x72[..., :-1, ROOT_CHANNELS]
    x[..., -1, ROOT_CHANNELS] = x[..., -2, ROOT_CHANNELS]
    return x


def integrate_root_velocity(vel: ArrayT) -> ArrayT:
    """Root velocity (..., T, 3) -> root positions (..., T, 3): p[0] = 0, p[t] = p[t-1] + v[t-1]."""
    if vel.ndim < 2 or vel.shape[-1] != JOINT_CHANNELS:
        raise ValueError(f"vel: expected shape (..., T, 3), got {tuple(vel.shape)}")
    if isinstance(vel, torch.Tensor):
        return torch.cat([torch.zeros_like(vel[..., :1, :]), vel[..., :-1, :].cumsum(dim=-2)], dim=-2)
    return np.concatenate([np.zeros_like(vel[..., :1, :]), np.cumsum(vel[..., :-1, :], axis=-2)], axis=-2)


def joints_from_bailando_layout(x72: ArrayT, root_is_velocity: bool) -> ArrayT:
    """Decoded (..., T, 72) -> absolute joints (..., T, 24, 3).

    With ``root_is_velocity`` the root channels are integrated (trajectory starting at 0), otherwise they
    are taken as the absolute root position."""
    _check_layout(x72, "x72")
    root = x72[..., ROOT_CHANNELS]
    if root_is_velocity:
        root = integrate_root_velocity(root)
    joints = x72.reshape(*x72.shape[:-1], N_JOINTS, JOINT_CHANNELS) + root[..., None, :]
    joints[..., 0, :] = root
    return joints


def sliding_windows(x: ArrayT, length: int = 240, stride: int = 8) -> ArrayT:
    """(T, C) -> (N, length, C): every full window starting at 0, stride, 2*stride, ... (copy)."""
    if x.ndim != 2:
        raise ValueError(f"x: expected shape (T, C), got {tuple(x.shape)}")
    if length < 1 or stride < 1:
        raise ValueError(f"length and stride must be positive, got length={length}, stride={stride}")
    if x.shape[0] < length:  # no full window
        empty = (0, length, x.shape[1])
        return x.new_zeros(empty) if isinstance(x, torch.Tensor) else np.zeros(empty, dtype=x.dtype)
    if isinstance(x, torch.Tensor):
        return x.unfold(0, length, stride).transpose(1, 2).contiguous()
    return np.ascontiguousarray(
        np.lib.stride_tricks.sliding_window_view(x, length, axis=0)[::stride].swapaxes(1, 2)
    )


def mpjpe_mm(pred: ArrayT, target: ArrayT) -> float:
    """Mean per-joint position error in millimetres of joints in metres, (..., 24, 3) each."""
    if tuple(pred.shape) != tuple(target.shape) or pred.shape[-1] != JOINT_CHANNELS:
        raise ValueError(
            f"pred, target: expected equal shapes (..., J, 3), got {tuple(pred.shape)}, {tuple(target.shape)}"
        )
    if isinstance(pred, torch.Tensor):
        return float(torch.linalg.norm((pred - target).double(), dim=-1).mean()) * 1000.0
    return float(np.linalg.norm(np.asarray(pred, np.float64) - target, axis=-1).mean()) * 1000.0
