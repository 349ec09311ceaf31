"""Dance of the embedded mini dataset, synthesised per genre (written as ``motions/<seq>.pkl``, 60 fps, y-up).

One key pose per music beat, eased from one to the next with a symmetric curve whose speed vanishes on
the beats, so the mean joint speed has its minima on the music beats. Key poses = neutral posture + the
genre's groove (a knee bounce every beat) + one lower-body and one upper-body move per bar from the
genre's vocabulary (ordered per choreography) + dancer style; small beat-locked side steps and slow
turns; the feet stay on the floor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation
from scipy.special import betainc

from danceba.data.aistpp import FPS
from danceba.data.mini_styles import GENRE_STYLES
from danceba.motion.skeleton import SMPL_JOINT_NAMES, forward_kinematics

_FEET = [SMPL_JOINT_NAMES.index(n) for n in ("lankle", "rankle", "ltoes", "rtoes")]
_POSTURE_JOINTS = ("belly", "spine", "chest", "neck", "lshoulder", "rshoulder", "lelbow", "relbow")
_SHIFT = 24  # row of a key pose holding the (dx, 0, dz) side-step offset, after the 24 joint rows


# ----------------------------------------------------------------------------------------------
# Key poses: Euler angles per joint (intrinsic XYZ, radians) in SMPL's frame: +x left, +y up, +z forward.
# Knee flexion +x, hip flexion -x, left shoulder down -z, left elbow flexion -y; right side mirrored.
# ----------------------------------------------------------------------------------------------

_SIDES = {n: {"l": "r", "r": "l"}[n[0]] + n[1:] for n in SMPL_JOINT_NAMES if n[0] in "lr" and n != "root"}


def _pose(**angles: tuple[float, float, float]) -> np.ndarray:
    """Key pose (25, 3): rows 0..23 joint Euler angles by joint name, row 24 ``shift`` = (dx, 0, dz) m."""
    pose = np.zeros((25, 3))
    for name, value in angles.items():
        pose[_SHIFT if name == "shift" else SMPL_JOINT_NAMES.index(name)] += value
    return pose


def _mirror(pose: np.ndarray) -> np.ndarray:
    """Left-right mirror: swap sides, angles (x, y, z) -> (x, -y, -z), shift dx -> -dx."""
    mirrored = pose * np.array([1.0, -1.0, -1.0])
    for name, other in _SIDES.items():
        mirrored[SMPL_JOINT_NAMES.index(other)] = pose[SMPL_JOINT_NAMES.index(name)] * [1.0, -1.0, -1.0]
    mirrored[_SHIFT] = pose[_SHIFT] * [-1.0, 0.0, 1.0]
    return mirrored


def _both(**left: tuple[float, float, float]) -> np.ndarray:
    """The same left-side angles on both sides (mirrored); centre joints as given."""
    pose = _pose(**left)
    return pose + _mirror(_pose(**{k: v for k, v in left.items() if k[0] == "l"}))


def _spine(x: float = 0.0, y: float = 0.0, z: float = 0.0) -> np.ndarray:
    return _pose(belly=(x, y, z), spine=(x, y, z), chest=(x, y, z))


NEUTRAL = _both(lshoulder=(0, 0, -1.25), lelbow=(0, -0.3, 0), lhip=(-0.05, 0, 0.03), lknee=(0.1, 0, 0))
GROOVE_DOWN = (
    _both(lhip=(-0.25, 0, 0), lknee=(0.5, 0, 0), lankle=(-0.25, 0, 0))
    + _spine(0.05)
    + _pose(neck=(-0.1, 0, 0))
)
_REST = _pose()
_KICK = _pose(lhip=(-1.0, 0, 0), lknee=(0.25, 0, 0), lankle=(0.4, 0, 0))
_STOMP = _pose(lhip=(-0.9, 0, 0), lknee=(1.3, 0, 0), lankle=(0.2, 0, 0))
_STEP = _pose(
    shift=(0.15, 0, 0), lhip=(0, 0, 0.25), rknee=(0.3, 0, 0), rhip=(-0.15, 0, 0), rankle=(-0.15, 0, 0)
)
_SWING = _both(lelbow=(0, -0.8, 0)) + _pose(lshoulder=(-0.7, 0, 0), rshoulder=(0.4, 0, 0))
_WAVE = _pose(lshoulder=(0, 0, 1.3), lelbow=(0, -0.6, 0), lwrist=(0, 0.5, 0), rshoulder=(0, 0, -0.5))
_POINT = _pose(rshoulder=(-2.0, 0, 0), relbow=(0, 0.3, 0), lshoulder=(0, 0, 0.4), lelbow=(0, -1.8, 0))
_HIT_UP = _pose(lshoulder=(0, 0, 2.4), lelbow=(0, -0.2, 0), rshoulder=(0, 0, -0.4), relbow=(0, 1.6, 0))
_WHIP = _pose(lshoulder=(-0.2, 0, 2.4), lelbow=(0, -0.3, 0), rshoulder=(-0.5, 0, -0.6))
_SWAY = _spine(z=0.1) + _pose(lshoulder=(0, 0, 1.0), rshoulder=(0, 0, -0.3))

MOVES: dict[str, tuple[np.ndarray, ...]] = {
    "bounce": (_both(lhip=(-0.5, 0, 0), lknee=(1.0, 0, 0), lankle=(-0.5, 0, 0)), _REST),
    "step": (_STEP, _REST, _mirror(_STEP), _REST),
    "kick": (_REST, _KICK, _REST, _mirror(_KICK)),
    "stomp": (_STOMP, _REST, _mirror(_STOMP), _REST),
    "shuffle": (_both(lhip=(0, 0.3, 0)) + _pose(shift=(0.08, 0, 0)), _both(lhip=(0, -0.2, 0)) + _pose(shift=(-0.08, 0, 0))),
    "plie": (_both(lhip=(-0.3, 0.5, 0.35), lknee=(0.9, 0, 0), lankle=(-0.6, 0, 0)), _both(lhip=(0, 0.35, 0.1))),
    "developpe": (_REST, _pose(lhip=(-0.3, 0.3, 0.9), lankle=(0.4, 0, 0)), _REST, _mirror(_pose(lhip=(-0.3, 0.3, 0.9), lankle=(0.4, 0, 0)))),
    "arm_swing": (_SWING, _mirror(_SWING)),
    "torso_twist": (_spine(y=0.15) + _pose(neck=(0, -0.2, 0)), _spine(y=-0.15) + _pose(neck=(0, 0.2, 0))),
    "arm_pump": (_both(lshoulder=(-0.3, 0, 1.6), lelbow=(0, -1.2, 0)), _both(lshoulder=(-0.6, 0, 0.5), lelbow=(0, -1.6, 0))),
    "hit_arms": (_both(lshoulder=(0, 0, 1.25), lelbow=(0, -1.5, 0)), _both(lshoulder=(-1.3, 0, 0.2)), _HIT_UP, _mirror(_HIT_UP)),
    "head_nod": (_pose(neck=(0.3, 0, 0), head=(0.15, 0, 0)) + _both(linshoulder=(0, 0, 0.15)), _pose(neck=(-0.1, 0, 0))),
    "arm_wave": (_WAVE, _mirror(_WAVE)),
    "point": (_POINT, _REST, _mirror(_POINT), _REST),
    "port_de_bras": (_both(lshoulder=(-0.3, 0, 0.25)), _both(lshoulder=(-1.2, 0, 0.2)), _both(lshoulder=(0, 0, 2.3)), _both(lshoulder=(0, 0, 1.2))),
    "torso_sway": (_SWAY, _mirror(_SWAY)),
    "chest_pop": (_spine(-0.12) + _both(lshoulder=(0.4, 0, 0.5), lelbow=(0, -1.2, 0)), _spine(0.15) + _both(lshoulder=(-0.6, 0, 0.6))),
    "arm_whip": (_WHIP, _mirror(_WHIP)),
}  # fmt: skip


# ----------------------------------------------------------------------------------------------
# Motion
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DancerStyle:
    """Per-dancer offsets: movement size, groove depth, posture (25, 3) and AIST++ ``smpl_scaling``."""

    amplitude: float
    groove: float
    posture: np.ndarray
    scaling: float

    @classmethod
    def draw(cls, rng: np.random.Generator) -> DancerStyle:
        posture = np.zeros((25, 3))
        joints = [SMPL_JOINT_NAMES.index(n) for n in _POSTURE_JOINTS]
        posture[joints] = rng.normal(0.0, 0.06, (len(joints), 3))
        return cls(
            float(rng.uniform(0.85, 1.15)), float(rng.uniform(0.8, 1.2)), posture, float(rng.uniform(90, 100))
        )


def ease(fraction: np.ndarray, sharpness: int) -> np.ndarray:
    """Eased progress in [0, 1] whose speed ~ (f (1 - f))^p vanishes at both ends (p = ``sharpness``)."""
    return betainc(sharpness + 1.0, sharpness + 1.0, fraction)


def _bar_moves(vocabulary: tuple[str, ...], n_bars: int, rng: np.random.Generator) -> list[str]:
    """One move name per bar, drawn from ``vocabulary`` without repeating the previous bar's move."""
    order = [int(rng.integers(len(vocabulary)))]
    for _ in range(n_bars - 1):
        options = [i for i in range(len(vocabulary)) if i != order[-1]] or [order[-1]]
        order.append(options[int(rng.integers(len(options)))])
    return [vocabulary[i] for i in order]


def choreography_key_poses(
    genre: str, n_beats: int, dancer: DancerStyle, choreo_rng: np.random.Generator, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Key poses at beats 0..n_beats-1: (n_beats, 25, 3) Euler angles + shift rows, and yaw (n_beats,).

    Per bar one lower-body and one upper-body move, drawn by ``choreo_rng`` without immediate repeats
    (the choreography); ``rng`` adds per-beat jitter and the turns.
    """
    style = GENRE_STYLES[genre]
    n_bars = n_beats // 4 + 1
    beat = np.arange(n_beats)
    moves = np.zeros((n_beats, 25, 3))
    for vocabulary in (style.lower, style.upper):
        per_bar = _bar_moves(vocabulary, n_bars, choreo_rng)
        moves += np.stack([MOVES[per_bar[b // 4]][b % len(MOVES[per_bar[b // 4]])] for b in beat])
    keys = NEUTRAL + dancer.posture + style.amplitude * dancer.amplitude * moves
    keys += style.groove * dancer.groove * (beat % 2 == 0)[:, None, None] * GROOVE_DOWN
    keys[:, :24] += rng.normal(0.0, 0.02, (n_beats, 24, 3))
    turn_per_beat = rng.choice([0.0, 0.0, np.pi / 24, -np.pi / 24], size=n_bars)[beat // 4]
    yaw = rng.uniform(-0.4, 0.4) + np.concatenate([[0.0], np.cumsum(turn_per_beat[:-1])])
    return keys, yaw


def synthesize_motion(
    genre: str,
    bpm: float,
    n_frames: int,
    dancer: DancerStyle,
    choreo_rng: np.random.Generator,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """A dance at 60 fps locked to beats at ``k * 60 / bpm`` s.

    Returns poses (N, 24, 3) axis-angle float32 and root translation (N, 3) float64 in metres for
    :func:`danceba.motion.skeleton.forward_kinematics`, y-up; the lowest foot joint is 2 cm above the floor y = 0.
    """
    n_beats = int(np.ceil(n_frames / FPS * bpm / 60.0)) + 2
    keys, yaw_keys = choreography_key_poses(genre, n_beats, dancer, choreo_rng, rng)
    start = np.array([rng.uniform(-0.5, 0.5), 0.0, rng.uniform(-0.5, 0.5)])
    place_keys = start + Rotation.from_euler("y", yaw_keys[:, None]).apply(keys[:, _SHIFT])

    beat_position = np.arange(n_frames) / FPS * bpm / 60.0  # in beats since the first beat
    k = beat_position.astype(int)
    w = ease(beat_position - k, GENRE_STYLES[genre].sharpness)

    def interpolate(values: np.ndarray) -> np.ndarray:
        shape = (-1,) + (1,) * (values.ndim - 1)
        return values[k] + (values[k + 1] - values[k]) * w.reshape(shape)

    euler, yaw, place = interpolate(keys[:, :24]), interpolate(yaw_keys), interpolate(place_keys)
    rotations = Rotation.from_euler("XYZ", euler.reshape(-1, 3)).as_rotvec().reshape(n_frames, 24, 3)
    root = Rotation.from_euler("y", yaw[:, None]) * Rotation.from_euler("XYZ", euler[:, 0])
    rotations[:, 0] = root.as_rotvec()
    feet_y = forward_kinematics(rotations, np.zeros((n_frames, 3)))[:, _FEET, 1]
    place[:, 1] = 0.02 - feet_y.min(axis=1)
    return rotations.astype(np.float32), place


def add_fitting_glitches(poses: np.ndarray, rng: np.random.Generator, bursts: int = 4) -> np.ndarray:
    """Copy of ``poses`` (N, 24, 3) with short bursts of pose noise, like a failed SMPL fit."""
    glitched = poses.copy()
    for start in rng.integers(0, max(1, len(poses) - 3), size=bursts):
        joints = rng.choice(np.arange(1, 24), size=3, replace=False)
        glitched[start : start + 3, joints] += rng.normal(0.0, 0.6, (3, 3)).astype(np.float32)[None]
    return glitched
