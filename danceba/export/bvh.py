"""BVH export and import of SMPL motion (24 joints, axis-angle rotations + root position).

File layout written by :func:`write_bvh`:

- ``HIERARCHY``: the SMPL tree depth first, joint names from ``SMPL_JOINT_NAMES``. ``OFFSET`` = the SMPL
  rest offsets (``SMPL_OFFSETS``, neutral shape), y-up, body facing +z. The root's OFFSET is zero, so its
  position channels are the pelvis position itself. Leaf joints (toes, head, hands) end in an ``End Site``
  whose offset only gives the last bone a length in viewers (it carries no channel).
- Lengths in **metres** by default (``length_unit="m"``): Blender's BVH importer (default Scale 1.0,
  Forward -Z, Up Y) then builds a 1.7 m tall armature, z-up, with no setting changed. Tools
  that expect centimetres (MotionBuilder, many mocap libraries) take ``length_unit="cm"``.
- ``CHANNELS``: root ``Xposition Yposition Zposition`` + 3 rotations, every other joint 3 rotations. As in
  every BVH reader, a joint's local rotation is R = R_first @ R_second @ R_third of its listed rotation
  channels, i.e. intrinsic Euler angles in that order (scipy ``Rotation.from_euler("ZXY", ...)``, upper
  case = intrinsic). Default orders (:data:`JOINT_ROTATION_ORDERS`) keep clear of gimbal lock: the root
  turns about the vertical first (``YXZ``, locks only with the body horizontal), every other joint has
  its bone's own axis (the twist axis) in the middle, which a swing below 180 degrees never locks (the
  IK of :mod:`danceba.export.ik` gives swing-only rotations). ``rotation_order="ZYX"`` etc. forces one
  order on all joints.
- ``MOTION``: ``Frames``, ``Frame Time`` = 1 / fps, then one line per frame, angles in degrees, made
  continuous over time (of the two Euler decompositions of a rotation, each shifted by multiples of 360,
  the one nearest the previous frame), so curves do not jump when a dancer turns.

:func:`read_bvh` parses any whitespace layout of such a file, maps the joints back to SMPL order by name,
infers the length unit from the offsets, and refuses files whose skeleton is not SMPL's (then FK with the
SMPL offsets would not reproduce the motion).
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from danceba.atomic import atomic_path
from danceba.export.ik import CHILDREN, fit_rotations
from danceba.motion.skeleton import NUM_JOINTS, SMPL_JOINT_NAMES, SMPL_OFFSETS, SMPL_PARENTS

LENGTH_UNITS: dict[str, float] = {"m": 1.0, "cm": 100.0}
# End-site offsets of the leaf joints, metres in the joint's rest frame: toes forward, head up, hands out.
END_SITES: dict[int, tuple[float, float, float]] = {
    10: (0.0, 0.0, 0.05),
    11: (0.0, 0.0, 0.05),
    15: (0.0, 0.1, 0.0),
    22: (0.08, 0.0, 0.0),
    23: (-0.08, 0.0, 0.0),
}
_AXES = "XYZ"


def depth_first_order(joint: int = 0) -> list[int]:
    """SMPL joint indices in BVH (depth-first, children in index order) order."""
    order = [joint]
    for child in CHILDREN[joint]:
        order += depth_first_order(child)
    return order


def _twist_in_the_middle(joint: int) -> str:
    """Euler order whose middle axis is the joint's bone axis (largest component of its child offsets)."""
    children = list(CHILDREN[joint])
    bone = SMPL_OFFSETS[children].sum(axis=0) if children else SMPL_OFFSETS[joint]
    middle = int(np.argmax(np.abs(bone)))
    return _AXES[(middle + 2) % 3] + _AXES[middle] + _AXES[(middle + 1) % 3]  # e.g. Y -> "XYZ"


JOINT_ROTATION_ORDERS: tuple[str, ...] = ("YXZ", *(_twist_in_the_middle(j) for j in range(1, NUM_JOINTS)))


def _rotation_orders(rotation_order: str | None) -> tuple[str, ...]:
    if rotation_order is None:
        return JOINT_ROTATION_ORDERS
    order = rotation_order.upper()
    if sorted(order) != list(_AXES):
        raise ValueError(f"rotation_order: expected a permutation of 'XYZ' or None, got {rotation_order!r}")
    return (order,) * NUM_JOINTS


def continuous_euler(angles: np.ndarray) -> np.ndarray:
    """Tait-Bryan angles (T, ..., 3) in degrees -> the same rotations with angles continuous in time.

    (a, b, c) and (a + 180, 180 - b, c + 180) are the same rotation in every Tait-Bryan order, and any
    angle may move by 360; each frame takes the variant nearest (L1) the previous frame's angles.
    """
    out = np.array(angles, dtype=np.float64, copy=True)
    flip = np.array([180.0, 180.0, 180.0]), np.array([1.0, -1.0, 1.0])
    for t in range(1, len(out)):
        previous = out[t - 1]
        candidates = np.stack([out[t], flip[0] + flip[1] * out[t]])  # (2, ..., 3)
        candidates += 360.0 * np.round((previous - candidates) / 360.0)
        distance = np.abs(candidates - previous).sum(axis=-1)  # (2, ...)
        out[t] = np.where((distance[1] < distance[0])[..., None], candidates[1], candidates[0])
    return out


def _hierarchy_lines(joint: int, depth: int, orders: tuple[str, ...], scale: float) -> list[str]:
    pad = "\t" * depth
    keyword = "ROOT" if joint == 0 else "JOINT"
    offset = SMPL_OFFSETS[joint] * scale
    rotations = " ".join(f"{axis}rotation" for axis in orders[joint])
    channels = f"6 Xposition Yposition Zposition {rotations}" if joint == 0 else f"3 {rotations}"
    lines = [f"{pad}{keyword} {SMPL_JOINT_NAMES[joint]}", f"{pad}{{"]
    lines += [f"{pad}\tOFFSET {offset[0]:.6f} {offset[1]:.6f} {offset[2]:.6f}", f"{pad}\tCHANNELS {channels}"]
    for child in CHILDREN[joint]:
        lines += _hierarchy_lines(child, depth + 1, orders, scale)
    if not CHILDREN[joint]:
        end = np.asarray(END_SITES[joint]) * scale
        lines += [f"{pad}\tEnd Site", f"{pad}\t{{", f"{pad}\t\tOFFSET {end[0]:.6f} {end[1]:.6f} {end[2]:.6f}"]
        lines += [f"{pad}\t}}"]
    return [*lines, f"{pad}}}"]


def _check_motion(rotations: np.ndarray, root_positions: np.ndarray, fps: float) -> None:
    if rotations.ndim != 3 or rotations.shape[1:] != (NUM_JOINTS, 3) or len(rotations) == 0:
        raise ValueError(f"rotations: expected shape (T >= 1, 24, 3) axis-angle, got {rotations.shape}")
    if root_positions.shape != (len(rotations), 3):
        raise ValueError(f"root_positions: expected shape ({len(rotations)}, 3), got {root_positions.shape}")
    if not (np.all(np.isfinite(rotations)) and np.all(np.isfinite(root_positions))):
        raise ValueError("rotations/root_positions: contain NaN or infinite values")
    if not fps > 0:
        raise ValueError(f"fps: must be > 0, got {fps}")


def write_bvh(
    path: str | os.PathLike[str],
    rotations: np.ndarray,
    root_positions: np.ndarray,
    fps: float = 60.0,
    rotation_order: str | None = None,
    length_unit: str = "m",
) -> None:
    """Write SMPL motion as a BVH file, atomically.

    Args:
        path: the .bvh file to write.
        rotations: (T, 24, 3) axis-angle, SMPL joint order, joint 0 = global orientation.
        root_positions: (T, 3) pelvis positions in metres, y-up.
        fps: frame rate; written as ``Frame Time: 1/fps``.
        rotation_order: None for the per-joint :data:`JOINT_ROTATION_ORDERS`, or one intrinsic Euler
            order (a permutation of "XYZ") for every joint.
        length_unit: "m" (Blender-ready, default) or "cm" for OFFSETs and root positions.
    """
    rotations, root_positions = np.asarray(rotations, np.float64), np.asarray(root_positions, np.float64)
    _check_motion(rotations, root_positions, fps)
    orders = _rotation_orders(rotation_order)
    if length_unit not in LENGTH_UNITS:
        raise ValueError(f"length_unit: expected one of {sorted(LENGTH_UNITS)}, got {length_unit!r}")
    scale = LENGTH_UNITS[length_unit]
    joints = depth_first_order()
    euler = np.zeros((len(rotations), NUM_JOINTS, 3))
    with warnings.catch_warnings():  # gimbal lock: angles are still a valid decomposition
        warnings.filterwarnings("ignore", message="Gimbal lock detected", category=UserWarning)
        for order in set(orders):
            chosen = [j for j in joints if orders[j] == order]
            euler[:, chosen] = Rotation.from_rotvec(rotations[:, chosen]).as_euler(order, degrees=True)
    euler = continuous_euler(euler[:, joints]).reshape(len(rotations), NUM_JOINTS * 3)
    frames = np.concatenate([root_positions * scale, euler], axis=1)
    text = io.StringIO()
    text.write("HIERARCHY\n" + "\n".join(_hierarchy_lines(0, 0, orders, scale)) + "\n")
    text.write(f"MOTION\nFrames: {len(frames)}\nFrame Time: {1.0 / fps:.8f}\n")
    np.savetxt(text, frames, fmt="%.6f", delimiter=" ")
    with atomic_path(path) as tmp:
        tmp.write_text(text.getvalue(), encoding="utf-8")


class _Tokens:
    """Whitespace-separated tokens of a BVH file with position-aware errors."""

    def __init__(self, path: Path, text: str) -> None:
        self.path, self.items, self.i = path, text.split(), 0

    def next(self, what: str) -> str:
        if self.i >= len(self.items):
            raise ValueError(f"{self.path}: unexpected end of file, expected {what}")
        self.i += 1
        return self.items[self.i - 1]

    def expect(self, *words: str) -> None:
        for word in words:
            token = self.next(repr(word))
            if token.lower() != word.lower():
                raise ValueError(f"{self.path}: expected {word!r}, got {token!r} (token {self.i})")

    def numbers(self, count: int, what: str) -> np.ndarray:
        tokens = [self.next(what) for _ in range(count)]
        try:
            return np.array([float(t) for t in tokens])
        except ValueError:
            raise ValueError(f"{self.path}: expected {count} numbers for {what}, got {tokens}") from None


def _parse_joint(
    tok: _Tokens, parent: str | None, joints: list[tuple[str, str | None, np.ndarray, list[str]]]
):
    """Parse one ROOT/JOINT block after its keyword; appends (name, parent, offset, channels) depth first."""
    name = tok.next("a joint name")
    tok.expect("{", "OFFSET")
    offset = tok.numbers(3, f"OFFSET of {name}")
    tok.expect("CHANNELS")
    count = tok.numbers(1, f"CHANNELS count of {name}")[0]
    channels = [tok.next(f"channel of {name}") for _ in range(int(count))]
    joints.append((name, parent, offset, channels))
    while True:
        token = tok.next(f"JOINT, End Site or '}}' in {name}")
        if token.upper() == "JOINT":
            _parse_joint(tok, name, joints)
        elif token.lower() == "end":
            tok.expect("Site", "{", "OFFSET")
            tok.numbers(3, f"End Site OFFSET of {name}")
            tok.expect("}")
        elif token == "}":
            return
        else:
            raise ValueError(f"{tok.path}: unexpected {token!r} in joint {name}")


def _smpl_joint_indices(path: Path, joints: list) -> list[int]:
    """Map parsed joints to SMPL indices; raise unless names and parents form the SMPL tree."""
    names = [j[0] for j in joints]
    if sorted(names) != sorted(SMPL_JOINT_NAMES):
        raise ValueError(f"{path}: joints {names} are not the 24 SMPL joints {list(SMPL_JOINT_NAMES)}")
    index = [SMPL_JOINT_NAMES.index(n) for n in names]
    for (name, parent, _, _), i in zip(joints, index, strict=True):
        expected = None if SMPL_PARENTS[i] < 0 else SMPL_JOINT_NAMES[SMPL_PARENTS[i]]
        if parent != expected:
            raise ValueError(f"{path}: joint {name} has parent {parent}, SMPL's is {expected}")
    return index


def _length_scale(path: Path, offsets: np.ndarray) -> float:
    """Infer the length unit (file = scale * metres) from the offsets (24, 3) in SMPL order."""
    offsets, smpl = offsets[1:], SMPL_OFFSETS[1:]  # the root's OFFSET only shifts the whole motion
    scale = float(np.sum(offsets * smpl) / np.sum(smpl * smpl))
    if not scale > 0 or np.abs(offsets - scale * smpl).max() > 1e-3 * scale:
        raise ValueError(f"{path}: OFFSETs are not the SMPL rest skeleton (at any scale)")
    return scale


def read_bvh(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray, float]:
    """Read a BVH file of the SMPL skeleton (as :func:`write_bvh` writes, any channel order or unit).

    Returns:
        rotations (T, 24, 3) float64 axis-angle in SMPL joint order; root_positions (T, 3) float64 in
        metres (position channels + the root OFFSET, divided by the inferred unit); fps = 1 / Frame Time (rounded to an integer when within 1e-3 of one).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"BVH file not found: {path}")
    tok = _Tokens(path, path.read_text(encoding="utf-8"))
    tok.expect("HIERARCHY", "ROOT")
    joints: list = []
    _parse_joint(tok, None, joints)
    tok.expect("MOTION", "Frames:")
    n_frames = int(tok.numbers(1, "Frames")[0])
    tok.expect("Frame", "Time:")
    frame_time = float(tok.numbers(1, "Frame Time")[0])
    if n_frames < 1 or not frame_time > 0:
        raise ValueError(f"{path}: need Frames >= 1 and Frame Time > 0, got {n_frames} and {frame_time}")
    index = _smpl_joint_indices(path, joints)
    n_channels = sum(len(j[3]) for j in joints)
    values = np.array(tok.items[tok.i :], dtype=np.float64) if tok.i < len(tok.items) else np.zeros(0)
    if values.size != n_frames * n_channels:
        raise ValueError(
            f"{path}: expected {n_frames} frames x {n_channels} channels, got {values.size} values"
        )
    values = values.reshape(n_frames, n_channels)
    offsets = np.zeros((NUM_JOINTS, 3))
    rotations = np.zeros((n_frames, NUM_JOINTS, 3))
    root_positions = np.zeros((n_frames, 3))
    column = 0
    for (name, _, offset, channels), i in zip(joints, index, strict=True):
        offsets[i] = offset
        kinds = [c[1:].lower() for c in channels]
        positions = [c[0].upper() for c, k in zip(channels, kinds, strict=True) if k == "position"]
        order = "".join(c[0].upper() for c, k in zip(channels, kinds, strict=True) if k == "rotation")
        if sorted(order) != list(_AXES) or len(channels) != 3 + len(positions):
            raise ValueError(f"{path}: joint {name} channels {channels}: need X/Y/Z rotations (+ positions)")
        if positions and (i != 0 or sorted(positions) != list(_AXES)):
            raise ValueError(f"{path}: joint {name}: position channels are only supported on the root (XYZ)")
        block = values[:, column : column + len(channels)]
        rotation_columns = [k == "rotation" for k in kinds]
        rotations[:, i] = Rotation.from_euler(order, block[:, rotation_columns], degrees=True).as_rotvec()
        for axis, col in zip(positions, np.flatnonzero(~np.array(rotation_columns)), strict=True):
            root_positions[:, _AXES.index(axis)] = block[:, col]
        column += len(channels)
    scale = _length_scale(path, offsets)
    fps = 1.0 / frame_time
    fps = float(round(fps)) if abs(fps - round(fps)) < 1e-3 else fps
    return rotations, (root_positions + offsets[0]) / scale, fps


def write_bvh_from_joints(
    path: str | os.PathLike[str], joints: np.ndarray, fps: float = 60.0, refine_steps: int = 0
) -> float:
    """Fit rotations to joint positions (T, 24, 3) metres (:func:`fit_rotations`) and write them as BVH.

    Returns the fit's mean per-joint error in millimetres.
    """
    rotations, root_positions, error_mm = fit_rotations(joints, refine_steps=refine_steps)
    write_bvh(path, rotations, root_positions, fps=fps)
    return error_mm
