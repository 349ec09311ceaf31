"""Keep a decoded dancer on the floor: the root is integrated from velocities, so its height is free.

The VQ-VAE decodes the root as a velocity; integrating it from the origin put the generated pelvis at
height 0 and the feet 0.8 m below the floor, sinking further over a long song (a 324 s song ended 3.2 m
under it). :func:`place_on_floor` moves each frame vertically by a slowly varying offset: the lowest joint's
running minimum over ``window_s`` seconds, smoothed over the same span, is brought to the floor level of
the training data. Steps and jumps shorter than the window keep their shape; the start offset and slow
drift go. Only the height changes; the horizontal path is the decoder's.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import minimum_filter1d, uniform_filter1d

from danceba.physical_metrics import UP_AXIS

FLOOR_JOINT_HEIGHT_M = 0.02  # the lowest joint's resting height in the training motions (mini data: 0.02)
FLOOR_WINDOW_S = 2.0  # the correction changes over this span; moves shorter than it are kept


def floor_offset(joints: np.ndarray, fps: float, window_s: float = FLOOR_WINDOW_S) -> np.ndarray:
    """(T,) heights to add so that the lowest joint's running minimum sits at the floor.

    joints (T, J, 3), y-up, metres; ``window_s`` seconds of running minimum, then the same span of
    moving average (edges: nearest frame).
    """
    joints = np.asarray(joints)
    if joints.ndim != 3 or joints.shape[-1] != 3 or len(joints) == 0:
        raise ValueError(f"floor: joints must be (T, J, 3) with T >= 1, got {joints.shape}")
    window = max(1, round(window_s * fps))
    lowest = joints[:, :, UP_AXIS].min(axis=1).astype(np.float64)
    resting = uniform_filter1d(minimum_filter1d(lowest, window, mode="nearest"), window, mode="nearest")
    return FLOOR_JOINT_HEIGHT_M - resting


def place_on_floor(joints: np.ndarray, fps: float, window_s: float = FLOOR_WINDOW_S) -> np.ndarray:
    """joints (T, J, 3) moved vertically by :func:`floor_offset` (a new array, same dtype)."""
    placed = np.array(joints, copy=True)
    placed[:, :, UP_AXIS] += floor_offset(joints, fps, window_s).astype(placed.dtype)[:, None]
    return placed
