"""Kinetic (72-d) and geometric (32-d) motion features, and motion beats, as the Bailando metrics use them.

Everything is vectorised over frames and over many sequences at once (sequences are concatenated along
time and processed in chunks), with no per-frame Python loop. The published extractors (AIST++ API
``features/kinetic.py`` and ``features/manual.py``, copied by Bailando and Danceba) have two defects that
the published numbers depend on; :class:`MotionFeatureProtocol` names them so both variants can be run:

* the energy-expenditure acceleration uses ``v1 = p[m] - p[m-1] / ft`` (operator precedence), which makes
  the feature depend on absolute position (hence the "zero start" shift of every sequence);
* the geometric velocity primitives divide by ``1/120`` s although AIST++ runs at 60 fps.

Positions are processed in float64. The reference computes per-frame differences in the input dtype
(float32 for SMPL output), so values can differ from it at float32 rounding level.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.signal import argrelextrema

from danceba.motion.skeleton import NUM_JOINTS as N_JOINTS
from danceba.motion.skeleton import SMPL_JOINT_NAMES

_JOINT = {name: i for i, name in enumerate(SMPL_JOINT_NAMES)}
_AXIS = {"x": 0, "y": 1, "z": 2}

# Body-size constants from fixed SMPL rest-pose joints (AIST++ manual features): humerus length,
# shoulder width, hip width. Derived: hl = 0.25684, sw = 0.39085, hw = 0.11925.
_LSHOULDER = np.array([1.99113488e-01, 2.36807942e-01, -1.80702247e-02])
_LELBOW = np.array([4.54445392e-01, 2.21158922e-01, -4.10167128e-02])
_RSHOULDER = np.array([-1.91692337e-01, 2.36928746e-01, -1.23055102e-02])
_LHIP = np.array([5.64076714e-02, -3.23069185e-01, 1.09197125e-02])
_RHIP = np.array([-6.24834076e-02, -3.31302464e-01, 1.50412619e-02])
BODY_SCALES = {
    "hl": float(np.linalg.norm(_LSHOULDER - _LELBOW)),
    "sw": float(np.linalg.norm(_LSHOULDER - _RSHOULDER)),
    "hw": float(np.linalg.norm(_LHIP - _RHIP)),
}

# The 32 Müller-style features in output order: (primitive, four points, threshold factor and scale,
# or angle range in degrees). Virtual points: zero, y_unit, minus_y_unit, y_min (see _point).
GEOMETRIC_FEATURES: tuple[tuple[str, tuple[str, str, str, str], tuple[float, str | float]], ...] = (
    ("nmove", ("neck", "rhip", "lhip", "rwrist"), (1.8, "hl")),
    ("nmove", ("neck", "lhip", "rhip", "lwrist"), (1.8, "hl")),
    ("nplane", ("chest", "neck", "neck", "rwrist"), (0.2, "hl")),
    ("nplane", ("chest", "neck", "neck", "lwrist"), (0.2, "hl")),
    ("move", ("belly", "chest", "chest", "rwrist"), (1.8, "hl")),
    ("move", ("belly", "chest", "chest", "lwrist"), (1.8, "hl")),
    ("angle", ("relbow", "rshoulder", "relbow", "rwrist"), (0, 110)),
    ("angle", ("lelbow", "lshoulder", "lelbow", "lwrist"), (0, 110)),
    ("nplane", ("lshoulder", "rshoulder", "lwrist", "rwrist"), (2.5, "sw")),
    ("move", ("lwrist", "rwrist", "rwrist", "lwrist"), (1.4, "hl")),
    ("move", ("rwrist", "root", "lwrist", "root"), (1.4, "hl")),
    ("move", ("lwrist", "root", "rwrist", "root"), (1.4, "hl")),
    ("fast", ("rwrist",) * 4, (2.5, "hl")),
    ("fast", ("lwrist",) * 4, (2.5, "hl")),
    ("plane", ("root", "lhip", "ltoes", "rankle"), (0.38, "hl")),
    ("plane", ("root", "rhip", "rtoes", "lankle"), (0.38, "hl")),
    ("nplane", ("zero", "y_unit", "y_min", "rankle"), (1.2, "hl")),
    ("nplane", ("zero", "y_unit", "y_min", "lankle"), (1.2, "hl")),
    ("nplane", ("lhip", "rhip", "lankle", "rankle"), (2.1, "hw")),
    ("angle", ("rknee", "rhip", "rknee", "rankle"), (0, 110)),
    ("angle", ("lknee", "lhip", "lknee", "lankle"), (0, 110)),
    ("fast", ("rankle",) * 4, (2.5, "hl")),
    ("fast", ("lankle",) * 4, (2.5, "hl")),
    ("angle", ("neck", "root", "rshoulder", "relbow"), (25, 180)),
    ("angle", ("neck", "root", "lshoulder", "lelbow"), (25, 180)),
    ("angle", ("neck", "root", "rhip", "rknee"), (50, 180)),
    ("angle", ("neck", "root", "lhip", "lknee"), (50, 180)),
    ("plane", ("rankle", "neck", "lankle", "root"), (0.5, "hl")),
    ("angle", ("neck", "root", "zero", "y_unit"), (70, 110)),
    ("nplane", ("zero", "minus_y_unit", "y_min", "rwrist"), (-1.2, "hl")),
    ("nplane", ("zero", "minus_y_unit", "y_min", "lwrist"), (-1.2, "hl")),
    ("fast", ("root",) * 4, (2.3, "hl")),
)


@dataclass(frozen=True)
class MotionFeatureProtocol:
    """How joint positions become features; every quirk of the published code is a named choice.

    ``frame_time`` is the kinetic features' frame period (s); ``geometric_time_per_frame`` the one the
    geometric velocity primitives divide by (1/120 in the published code, 1/60 is the true period).
    ``zero_start`` subtracts the frame-0 root from every joint of every frame; ``max_frames`` caps
    predictions (not ground truth) to their first frames.
    """

    name: str
    acceleration_precedence_bug: bool = True
    geometric_time_per_frame: float = 1 / 120
    frame_time: float = 1 / 60
    sliding_window: int = 2
    zero_start: bool = True
    max_frames: int | None = 1200
    up_axis: Literal["x", "y", "z"] = "y"

    def __post_init__(self) -> None:
        if self.frame_time <= 0 or self.geometric_time_per_frame <= 0:
            raise ValueError(f"protocol {self.name!r}: frame times must be positive")
        if self.sliding_window < 0:
            raise ValueError(f"protocol {self.name!r}: sliding_window must be >= 0")
        if self.max_frames is not None and self.max_frames < 3:
            raise ValueError(f"protocol {self.name!r}: max_frames must be None or >= 3")
        if self.up_axis not in _AXIS:
            raise ValueError(f"protocol {self.name!r}: up_axis must be one of x, y, z, got {self.up_axis!r}")


BAILANDO = MotionFeatureProtocol(name="bailando")
CORRECTED = MotionFeatureProtocol(
    name="corrected", acceleration_precedence_bug=False, geometric_time_per_frame=1 / 60
)
_PROTOCOLS = {p.name: p for p in (BAILANDO, CORRECTED)}


def motion_protocol(name: str) -> MotionFeatureProtocol:
    """The named motion-feature protocol: ``"bailando"`` (published code) or ``"corrected"``."""
    if name not in _PROTOCOLS:
        raise ValueError(f"unknown motion feature protocol {name!r}; known: {sorted(_PROTOCOLS)}")
    return _PROTOCOLS[name]


def as_joints(
    joints: np.ndarray, *, min_frames: int = 1, what: str = "joints", to_float64: bool = True
) -> np.ndarray:
    """Validate (T, 24, 3) or (T, 72) positions and return them as (T, 24, 3), float64 by default."""
    arr = np.asarray(joints)
    if arr.ndim == 2 and arr.shape[1] == 3 * N_JOINTS:
        arr = arr.reshape(arr.shape[0], N_JOINTS, 3)
    if arr.ndim != 3 or arr.shape[1:] != (N_JOINTS, 3):
        raise ValueError(f"{what}: expected shape (T, 24, 3) or (T, 72), got {arr.shape}")
    if arr.shape[0] < min_frames:
        raise ValueError(f"{what}: needs at least {min_frames} frames, got {arr.shape[0]}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{what}: contains NaN or infinite values")
    return arr.astype(np.float64, copy=False) if to_float64 else arr


def prepare_for_features(
    joints: np.ndarray, protocol: MotionFeatureProtocol, *, prediction: bool, what: str = "joints"
) -> np.ndarray:
    """Apply the protocol's cap (predictions only) and zero start; (T, 24, 3) -> (T', 24, 3) float64."""
    p = as_joints(joints, what=what)
    if prediction and protocol.max_frames is not None:
        p = p[: protocol.max_frames]
    if protocol.zero_start:
        p = p - p[:1, :1]
    return p


def _chunks(sequences: Iterable[np.ndarray], min_frames: int, max_chunk_frames: int) -> Iterator[list]:
    """Group validated sequences into lists of at most ``max_chunk_frames`` frames (one long one alone)."""
    chunk: list[np.ndarray] = []
    n = 0
    for k, seq in enumerate(sequences):
        p = as_joints(seq, min_frames=min_frames, what=f"sequences[{k}]", to_float64=False)
        if chunk and n + len(p) > max_chunk_frames:
            yield chunk
            chunk, n = [], 0
        chunk.append(p)
        n += len(p)
    if chunk:
        yield chunk


def _layout(chunk: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Concatenate a chunk: positions (N, 24, 3), local frame index (N,), own length (N,), starts (S,)."""
    lengths = np.array([len(p) for p in chunk])
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    local = np.arange(lengths.sum()) - np.repeat(starts, lengths)
    p = np.asarray(chunk[0], np.float64) if len(chunk) == 1 else np.concatenate(chunk, dtype=np.float64)
    return p, local, np.repeat(lengths, lengths), starts


def _kinetic_chunk(chunk: list[np.ndarray], protocol: MotionFeatureProtocol) -> np.ndarray:
    """Kinetic features for a chunk of sequences; returns (S, 72) float64.

    Window sums are differences of prefix sums: the velocity window over d[m] = p[m] - p[m-1],
    1 <= m <= T-1, telescopes to p[hi] - p[lo-1]; the acceleration window over the terms
    ((p[m+1] - p[m]) / ft - v1) / ft, 1 <= m <= T-2, uses a cumulative sum of the terms.
    """
    p, local, length, starts = _layout(chunk)
    p = p.reshape(len(p), 3 * N_JOINTS)
    ft, w = protocol.frame_time, protocol.sliding_window
    g = np.arange(len(p))
    lo = g + np.maximum(local - w, 1) - local  # first m of each frame's window (global index)
    hi_v = g + np.minimum(local + w, length - 1) - local
    hi_a = g + np.minimum(local + w, length - 2) - local
    vel = (p[hi_v] - p[lo - 1]) / ((hi_v - lo + 1) * ft)[:, None]
    term = np.zeros_like(p)
    v2 = (p[2:] - p[1:-1]) / ft
    v1 = p[1:-1] - p[:-2] / ft if protocol.acceleration_precedence_bug else (p[1:-1] - p[:-2]) / ft
    term[1:-1] = (v2 - v1) / ft
    prefix = np.concatenate([np.zeros((1, p.shape[1])), np.cumsum(term, axis=0)])
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = (prefix[hi_a + 1] - prefix[lo]) / (hi_a - lo + 1)[:, None]
    vel, acc = vel.reshape(-1, N_JOINTS, 3), acc.reshape(-1, N_JOINTS, 3)
    up = _AXIS[protocol.up_axis]
    h1, h2 = (axis for axis in range(3) if axis != up)
    per_frame = np.empty((len(p), N_JOINTS, 3))
    per_frame[..., 0] = vel[..., h1] ** 2 + vel[..., h2] ** 2
    per_frame[..., 1] = vel[..., up] ** 2
    per_frame[..., 2] = np.sqrt(np.einsum("njk,njk->nj", acc, acc))
    per_frame[local == 0] = 0.0
    totals = np.add.reduceat(per_frame.reshape(len(p), -1), starts, axis=0)  # (S, 72)
    return totals / (np.array([len(c) for c in chunk]) - 1.0)[:, None]


def kinetic_features_batch(
    sequences: Iterable[np.ndarray], protocol: MotionFeatureProtocol = BAILANDO, max_chunk_frames: int = 8192
) -> np.ndarray:
    """Kinetic features of many (T_s, 24, 3) sequences (T_s >= 3); returns (S, 72) float32.

    Per joint j, index 3j+k: k=0 mean horizontal |v|^2, k=1 mean vertical |v|^2, k=2 mean |a|
    (energy expenditure), over frames 1..T-1, with velocities and accelerations averaged over a
    ±``sliding_window`` frame window. Positions are taken as given (apply :func:`prepare_for_features`).
    """
    out = [_kinetic_chunk(c, protocol) for c in _chunks(sequences, 3, max_chunk_frames)]
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 72), np.float32)


def kinetic_features(joints: np.ndarray, protocol: MotionFeatureProtocol = BAILANDO) -> np.ndarray:
    """Kinetic features of one (T, 24, 3) sequence; returns (72,) float32. See kinetic_features_batch."""
    return kinetic_features_batch([joints], protocol)[0]


def _feature_tables() -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per primitive: output columns (n,), point indices (4, n) into joints + virtual points, args (n, 2)."""
    point = {**_JOINT, "zero": 24, "y_unit": 25, "minus_y_unit": 26, "y_min": 27}
    tables: dict[str, list] = {}
    for col, (kind, names, arg) in enumerate(GEOMETRIC_FEATURES):
        row = [float(arg[0]) * BODY_SCALES[arg[1]], 0.0] if kind != "angle" else [*map(float, arg)]
        tables.setdefault(kind, []).append((col, [point[n] for n in names], row))
    return {
        kind: (
            np.array([c for c, _, _ in t]),
            np.array([i for _, i, _ in t]).T,
            np.array([r for _, _, r in t]),
        )
        for kind, t in tables.items()
    }


_TABLES = _feature_tables()


def _dot(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Dot product over the leading coordinate axis: (3, ...) x (3, ...) -> (...)."""
    return x[0] * y[0] + x[1] * y[1] + x[2] * y[2]


def _cross(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Cross product over the leading coordinate axis: (3, ...) x (3, ...) -> (3, ...)."""
    return np.stack([x[1] * y[2] - x[2] * y[1], x[2] * y[0] - x[0] * y[2], x[0] * y[1] - x[1] * y[0]])


def _norm(x: np.ndarray) -> np.ndarray:
    return np.sqrt(_dot(x, x))


def _along(x: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Signed length of x projected on direction: dot(x, direction) / |direction|."""
    return _dot(x, direction) / _norm(direction)


def _moved(cur: np.ndarray, prev: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Displacement of points i relative to points j since the previous frame: (3, n, F)."""
    return (cur[:, i] - cur[:, j]) - (prev[:, i] - prev[:, j])


def _geometric_rows(p: np.ndarray, protocol: MotionFeatureProtocol) -> np.ndarray:
    """Boolean features for every consecutive frame pair (p[t-1], p[t]); p (N, 24, 3) -> (32, N-1).

    Each primitive is evaluated for all its n features at once on coordinate-major (3, n, N-1) point
    arrays. Operation order follows the reference (dot / norm, then / time_per_frame).
    """
    up = _AXIS[protocol.up_axis]
    coords = np.ascontiguousarray(p.transpose(2, 1, 0))  # (3, 24, N)
    cur = np.zeros((3, N_JOINTS + 4, len(p) - 1))  # joints, zero, y_unit, minus_y_unit, y_min
    cur[:, :N_JOINTS] = coords[..., 1:]
    cur[up, 25], cur[up, 26] = 1.0, -1.0
    cur[up, 27] = coords[up, :, 1:].min(axis=0)
    prev = coords[..., :-1]
    tpf = protocol.geometric_time_per_frame
    rows = np.zeros((len(GEOMETRIC_FEATURES), len(p) - 1), dtype=bool)
    for kind, (cols, (ia, ib, ic, id_), arg) in _TABLES.items():
        a, lo, hi = cur[:, ia], arg[:, 0, None], arg[:, 1, None]  # points (3, n, F); args (n, 1)
        if kind == "fast":  # speed of a
            value = _norm(a - prev[:, ia]) / tpf
        elif kind == "move":  # velocity of c relative to a, along (b - a)
            value = _along(_moved(cur, prev, ic, ia), cur[:, ib] - a) / tpf
        elif kind == "nmove":  # velocity of d relative to a, along the normal cross(c - a, b - a)
            value = _along(_moved(cur, prev, id_, ia), _cross(cur[:, ic] - a, cur[:, ib] - a)) / tpf
        elif kind == "plane":  # signed distance of d from the plane through a, b, c
            value = _along(cur[:, id_] - a, _cross(cur[:, ic] - a, cur[:, ib] - a))
        elif kind == "nplane":  # signed distance of d from the plane through c with normal (b - a)
            value = _along(cur[:, id_] - cur[:, ic], cur[:, ib] - a)
        else:  # angle in degrees between (b - a) and (d - c), strictly inside (lo, hi)
            j, k = cur[:, ib] - a, cur[:, id_] - cur[:, ic]
            angle = np.degrees(np.arccos(_dot(j, k) / (_norm(j) * _norm(k))))
            rows[cols] = (angle > lo) & (angle < hi)
            continue
        rows[cols] = value > lo
    return rows


def _geometric_chunk(chunk: list[np.ndarray], protocol: MotionFeatureProtocol) -> np.ndarray:
    """Geometric features for a chunk of sequences; returns (S, 32) float32."""
    p, local, _, starts = _layout(chunk)
    with np.errstate(invalid="ignore", divide="ignore"):
        rows = _geometric_rows(p, protocol)  # column t-1 holds the pair ending at frame t
    rows &= local[1:] >= 1
    per_frame = np.concatenate([np.zeros((len(rows), 1), np.int32), rows.astype(np.int32)], axis=1)
    counts = np.add.reduceat(per_frame, starts, axis=1).T  # (S, 32)
    frames = np.array([len(c) - 1 for c in chunk])
    return (counts / frames[:, None]).astype(np.float32)  # as np.mean of the float32 rows


def geometric_features_batch(
    sequences: Iterable[np.ndarray], protocol: MotionFeatureProtocol = BAILANDO, max_chunk_frames: int = 8192
) -> np.ndarray:
    """Geometric features of many (T_s, 24, 3) sequences (T_s >= 2); returns (S, 32) float32.

    Each value is the fraction of frames 1..T-1 where the boolean feature holds (order and
    definitions: GEOMETRIC_FEATURES).
    """
    out = [_geometric_chunk(c, protocol) for c in _chunks(sequences, 2, max_chunk_frames)]
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 32), np.float32)


def geometric_features(joints: np.ndarray, protocol: MotionFeatureProtocol = BAILANDO) -> np.ndarray:
    """Geometric features of one (T, 24, 3) sequence; returns (32,) float32."""
    return geometric_features_batch([joints], protocol)[0]


def extract_motion_features(
    sequences: Iterable[np.ndarray],
    protocol: MotionFeatureProtocol = BAILANDO,
    *,
    prediction: bool,
    max_chunk_frames: int = 8192,
) -> tuple[np.ndarray, np.ndarray]:
    """Prepare (cap, zero start) and featurise sequences chunk by chunk (memory stays at one chunk).

    Returns kinetic (S, 72) and geometric (S, 32) float32 features.
    """
    prepared = (
        prepare_for_features(s, protocol, prediction=prediction, what=f"sequences[{k}]")
        for k, s in enumerate(sequences)
    )
    kinetic, geometric = [np.zeros((0, 72), np.float32)], [np.zeros((0, 32), np.float32)]
    for chunk in _chunks(prepared, 3, max_chunk_frames):
        kinetic.append(_kinetic_chunk(chunk, protocol).astype(np.float32))
        geometric.append(_geometric_chunk(chunk, protocol))
    return np.concatenate(kinetic), np.concatenate(geometric)


def motion_beats(joints: np.ndarray, sigma: float = 5.0) -> tuple[np.ndarray, int]:
    """Motion beats for BAS: strict local minima of the Gaussian-smoothed mean joint speed.

    joints (T, 24, 3) -> (beat frame indices (B,) int64, length T-1). Speed is per frame (no fps
    scaling), averaged over joints, smoothed with ``scipy.ndimage.gaussian_filter`` (reflect mode).
    """
    p = as_joints(joints, min_frames=2)
    speed = np.linalg.norm(np.diff(p, axis=0), axis=-1).mean(axis=1)
    smooth = gaussian_filter(speed, sigma)
    return argrelextrema(smooth, np.less)[0].astype(np.int64), len(speed)
