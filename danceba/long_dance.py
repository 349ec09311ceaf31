"""Does a whole-song dance stay the same dance? Per-segment drift and the seams between windows.

A dance of any length is cut into ``segment_s`` segments (20 s by default, the length of a test piece);
each is compared with the first: the feet's height while they touch the floor, how far the root has
moved, and the joint-speed statistics. Seams: the largest joint displacement between consecutive frames,
to be read against the same figure's high percentile in the training motions (a jump at a window
boundary shows up there).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np

from danceba.physical_metrics import FOOT_JOINTS, HORIZONTAL_AXES, UP_AXIS

SEGMENT_S = 20.0
CONTACT_SPEED_M_S = 0.1  # a foot joint slower than this touches the floor
ROOT = 0


@dataclass(frozen=True)
class SegmentStats:
    """One segment of a dance, against the dance's first segment."""

    start_s: float
    seconds: float
    foot_height_at_contact_m: float  # median height of the foot joints while slower than CONTACT_SPEED_M_S
    root_offset_m: float  # horizontal distance of the segment's mean root position from the first segment's
    root_height_m: float  # mean root height
    joint_speed_mean_m_s: float
    joint_speed_ratio: float  # joint_speed_mean against the first segment's
    max_frame_jump_m: float  # largest joint displacement between consecutive frames in the segment


def frame_displacements(joints: np.ndarray) -> np.ndarray:
    """(T, J, 3) -> (T - 1, J) distance (m) each joint moves between consecutive frames."""
    return np.linalg.norm(np.diff(joints, axis=0), axis=-1)


def max_frame_jump(joints: np.ndarray) -> float:
    """The largest displacement (m) of any joint between two consecutive frames of (T, J, 3)."""
    return float(frame_displacements(joints).max()) if len(joints) > 1 else 0.0


def frame_jump_percentile(motions: Iterable[np.ndarray], percentile: float = 99.9) -> float:
    """The ``percentile`` of per-frame maximum joint displacements over the given motions (m)."""
    jumps = [frame_displacements(m).max(axis=1) for m in motions if len(m) > 1]
    if not jumps:
        raise ValueError("frame_jump_percentile: no motion with two frames or more")
    return float(np.percentile(np.concatenate(jumps), percentile))


def segment_stats(joints: np.ndarray, fps: float, segment_s: float = SEGMENT_S) -> list[SegmentStats]:
    """Per-segment statistics of one dance (T, 24, 3), y-up, metres; a last segment shorter than half a
    segment is merged into the previous one."""
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1:] != (24, 3) or len(joints) < 2:
        raise ValueError(f"segment_stats: joints must be (T >= 2, 24, 3), got {joints.shape}")
    size = max(2, round(segment_s * fps))
    starts = list(range(0, len(joints), size))
    if len(starts) > 1 and len(joints) - starts[-1] < size / 2:
        starts.pop()
    bounds = [*starts[1:], len(joints)]
    first_root = joints[starts[0] : bounds[0], ROOT][:, HORIZONTAL_AXES].mean(axis=0)
    out: list[SegmentStats] = []
    for start, stop in zip(starts, bounds, strict=True):
        part = joints[start:stop]
        speeds = frame_displacements(part) * fps  # (T - 1, J) m/s
        feet = part[1:, FOOT_JOINTS, UP_AXIS]
        touching = speeds[:, FOOT_JOINTS] < CONTACT_SPEED_M_S
        root = part[:, ROOT]
        speed_mean = float(speeds.mean())
        out.append(
            SegmentStats(
                start_s=start / fps,
                seconds=(stop - start) / fps,
                foot_height_at_contact_m=float(np.median(feet[touching])) if touching.any() else float("nan"),
                root_offset_m=float(np.linalg.norm(root[:, HORIZONTAL_AXES].mean(axis=0) - first_root)),
                root_height_m=float(root[:, UP_AXIS].mean()),
                joint_speed_mean_m_s=speed_mean,
                joint_speed_ratio=speed_mean / out[0].joint_speed_mean_m_s if out else 1.0,
                max_frame_jump_m=max_frame_jump(joints[max(0, start - 1) : stop]),  # the seam before it too
            )
        )
    return out


def segment_table(stats: list[SegmentStats]) -> list[dict[str, float]]:
    """The segments as plain dicts (JSON)."""
    return [asdict(s) for s in stats]
