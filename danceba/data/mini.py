"""The embedded mini dataset: synthetic music and dance written in the AIST++ layout.

Everything is generated from ``MiniDatasetConfig.seed``, so the same config gives byte-identical files
and the pipeline needs no download. It is built to look like dance to the metrics:

- **Music** (``wavs/<music_id>.wav``, 16-bit): a drum kit (kick on every beat plus genre fills, snare on
  the backbeats, hi-hats on eighths or sixteenths), a bass line and chord pads following a four-bar
  progression, at the AIST tempo of its id (``mBR2`` -> 100 BPM, ``mHO1`` -> 115 BPM). Beat k is at
  ``k * 60 / bpm`` seconds, starting at 0.
- **Motion** (``motions/<seq>.pkl``, 60 fps, y-up): one key pose per music beat, eased from one to the
  next with a symmetric curve whose speed vanishes on the beats, so the mean joint speed has its minima
  on the music beats. Key poses = neutral posture + the genre's groove (a knee bounce every beat) + one
  lower-body and one upper-body move per bar from the genre's vocabulary (ordered per choreography) +
  dancer style; small beat-locked side steps and slow turns; the feet stay on the floor.
- **Splits** as the crossmodal ones: per genre the first music id is the test/val music (AIST++'s own,
  e.g. ``mBR0``, ``mHO5``), val = ``sBM`` ``ch01`` and test = ``sBM`` ``ch02`` on it; train = every
  sequence on the other music. ``ignore_list.txt`` names two training sequences whose motion carries
  fitting glitches, as the real list names badly reconstructed ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
from scipy.signal import oaconvolve
from scipy.spatial.transform import Rotation
from scipy.special import betainc

from danceba.atomic import atomic_path, write_text_atomic
from danceba.config import MiniDatasetConfig
from danceba.data.aistpp import FPS, GENRES, AistppLayout, SequenceName, music_tempo_bpm, write_motion_pkl
from danceba.skeleton import SMPL_JOINT_NAMES, forward_kinematics

# AIST++'s test/val music digit per genre (crossmodal split); the mini dataset keeps them.
TEST_MUSIC_DIGIT = {"gBR": 0, "gPO": 1, "gLO": 2, "gMH": 3, "gLH": 4, "gHO": 5, "gWA": 0, "gKR": 2, "gJS": 3, "gJB": 5}  # fmt: skip
_FEET = [SMPL_JOINT_NAMES.index(n) for n in ("lankle", "rankle", "ltoes", "rtoes")]
_POSTURE_JOINTS = ("belly", "spine", "chest", "neck", "lshoulder", "rshoulder", "lelbow", "relbow")
_SHIFT = 24  # row of a key pose holding the (dx, 0, dz) side-step offset, after the 24 joint rows


@dataclass(frozen=True)
class MiniMusic:
    music_id: str
    genre: str
    bpm: float
    split: str  # "train" or "testval"


@dataclass(frozen=True)
class MiniDatasetSummary:
    """What :func:`write_mini_dataset` wrote."""

    root: Path
    musics: tuple[MiniMusic, ...]
    sequences: tuple[str, ...]
    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]
    ignored: tuple[str, ...]
    frames_per_sequence: int


@dataclass(frozen=True)
class GenreStyle:
    """Music and movement vocabulary of one genre. Drum/bass patterns: 16 steps per bar."""

    kick: str
    snare: str
    hat: str  # x closed, o open
    bass: str
    chords: tuple[tuple[int, bool], ...]  # (semitones above the key, minor?) per bar
    swing: float  # delay of the off-16ths, fraction of a 16th
    kick_hz: float
    hat_decay_s: float
    bass_harmonics: int
    pad_harmonics: int
    lower: tuple[str, ...]
    upper: tuple[str, ...]
    sharpness: int  # easing exponent p: speed ~ (f (1 - f))^p within a beat; larger = snappier hits
    amplitude: float
    groove: float


_MINOR = ((0, True), (8, False), (3, False), (10, False))
_MAJOR = ((0, False), (7, False), (9, True), (5, False))
_FUNK = ((2, True), (7, False), (0, False), (0, False))
_HOUSE = ((0, True), (5, True), (10, False), (3, False))
_HATS8, _HATS16, _HATS_OPEN = "x.x.x.x.x.x.x.x.", "xxxxxxxxxxxxxxxx", "x.o.x.o.x.o.x.o."
_BACKBEAT = "....x.......x..."
# Fields in order: kick, snare, hat, bass, chords, swing, kick_hz, hat_decay_s, bass_harmonics, pad_harmonics,
#                  lower moves, upper moves, sharpness, amplitude, groove.
GENRE_STYLES: dict[str, GenreStyle] = {
    "gBR": GenreStyle("x...x..xx...x.x.", _BACKBEAT, _HATS8, "x..x..x.x..x..x.", _MINOR, 0.15, 48, 0.04, 3, 2,
                      ("bounce", "step", "kick"), ("arm_swing", "torso_twist", "arm_pump"), 1, 1.0, 1.0),
    "gPO": GenreStyle("x...x...x...x...", _BACKBEAT, _HATS16, "x...x.x.x...x.x.", _FUNK, 0.0, 55, 0.02, 2, 4,
                      ("bounce", "step"), ("hit_arms", "head_nod", "arm_wave"), 2, 0.9, 0.6),
    "gLO": GenreStyle("x...x..xx...x...", _BACKBEAT, _HATS8, "x.xx..x.x.xx..x.", _FUNK, 0.1, 52, 0.03, 4, 3,
                      ("kick", "bounce"), ("point", "arm_pump", "hit_arms"), 2, 1.0, 0.8),
    "gMH": GenreStyle("x...x.x.x...x...", _BACKBEAT, _HATS8, "x.....x.x.....x.", _MINOR, 0.25, 45, 0.05, 3, 2,
                      ("bounce", "step"), ("arm_swing", "chest_pop", "head_nod"), 1, 0.9, 1.2),
    "gLH": GenreStyle("x...x..xx.x.x...", _BACKBEAT, _HATS16, "x..x....x..x..x.", _MINOR, 0.2, 47, 0.03, 3, 3,
                      ("step", "stomp"), ("arm_swing", "torso_twist", "point"), 1, 1.0, 1.0),
    "gHO": GenreStyle("x...x...x...x...", _BACKBEAT, _HATS_OPEN, "..x...x...x...x.", _HOUSE, 0.0, 50, 0.03, 2, 5,
                      ("shuffle", "step", "bounce"), ("arm_swing", "torso_twist"), 1, 0.8, 1.3),
    "gWA": GenreStyle("x...x...x...x...", _BACKBEAT, _HATS16, "x.x.x.x.x.x.x.x.", _FUNK, 0.0, 55, 0.02, 2, 4,
                      ("step", "bounce"), ("arm_whip", "arm_wave", "point"), 2, 1.1, 0.6),
    "gKR": GenreStyle("x..xx...x..xx...", _BACKBEAT, _HATS8, "x.......x.......", _MINOR, 0.1, 42, 0.06, 5, 2,
                      ("stomp", "bounce"), ("chest_pop", "arm_pump", "arm_swing"), 2, 1.2, 1.1),
    "gJS": GenreStyle("x...x...x...x...", _BACKBEAT, _HATS8, "x...x...x.x.x...", _MAJOR, 0.0, 50, 0.03, 3, 4,
                      ("kick", "step", "plie"), ("arm_wave", "torso_sway", "port_de_bras"), 1, 1.0, 0.8),
    "gJB": GenreStyle("x...x...x...x...", _BACKBEAT, _HATS8, "x.......x.......", _MAJOR, 0.0, 50, 0.04, 2, 6,
                      ("plie", "developpe"), ("port_de_bras", "torso_sway"), 1, 1.0, 0.5),
}  # fmt: skip


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
# Music
# ----------------------------------------------------------------------------------------------


def _midi_hz(midi: np.ndarray | float) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69.0) / 12.0)


def _harmonics(phase: np.ndarray, count: int, power: int) -> np.ndarray:
    """sum_{h=1..count} sin(h * phase) / h**power, by the recurrence sin(hx) = 2 cos x sin((h-1)x) - sin((h-2)x)."""
    two_cos, previous, current = 2 * np.cos(phase), np.zeros_like(phase), np.sin(phase)
    total = current.copy()
    for h in range(2, count + 1):
        previous, current = current, two_cos * current - previous
        total += current / h**power
    return total


def _drum_shots(style: GenreStyle, sample_rate: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One-shot samples (each (L,) float64) for kick, snare, closed and open hi-hat."""
    t = np.arange(int(0.4 * sample_rate)) / sample_rate
    kick_hz = style.kick_hz + 120.0 * np.exp(-t / 0.025)  # pitch drop
    kick = np.sin(2 * np.pi * np.cumsum(kick_hz) / sample_rate) * np.exp(-t / 0.18)
    bright = np.diff(rng.standard_normal((3, t.size + 2)), n=2, axis=-1) / 4.0  # high-passed noise
    snare = (0.6 * bright[0] + 0.4 * np.sin(2 * np.pi * 190.0 * t)) * np.exp(-t / 0.09)
    hat = bright[1] * np.exp(-t / style.hat_decay_s)
    open_hat = 0.7 * bright[2] * np.exp(-t / 0.15)
    return {"kick": kick, "snare": snare, "hat": hat, "open_hat": open_hat}


def synthesize_music(
    genre: str, bpm: float, seconds: float, sample_rate: int, rng: np.random.Generator
) -> np.ndarray:
    """A loop of drums, bass and chord pads at ``bpm``; beat k at ``k * 60 / bpm`` s. Returns (S,) float32.

    Peak-normalised to 0.9, with a little noise. ``rng`` fixes the key, drum noise and the noise floor.
    """
    style = GENRE_STYLES[genre]
    n = round(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    step = 15.0 / bpm  # one sixteenth note, seconds
    k = np.arange(int(seconds / step) + 1)
    onsets = k * step + style.swing * step * (k % 2)
    accent = np.where(k % 4 == 0, 1.0, 0.7)
    shots = _drum_shots(style, sample_rate, rng)

    def place(pattern: str, char: str, shot: np.ndarray) -> np.ndarray:
        sample = np.round(onsets * sample_rate).astype(int)
        hit = np.array([pattern[i % 16] == char for i in k]) & (sample < n)
        train = np.zeros(n)
        np.add.at(train, sample[hit], accent[hit])
        return oaconvolve(train, shot)[:n]

    drums = (
        place(style.kick, "x", shots["kick"])
        + 0.55 * place(style.snare, "x", shots["snare"])
        + 0.25 * place(style.hat, "x", shots["hat"])
        + 0.25 * place(style.hat, "o", shots["open_hat"])
    )
    key = int(rng.integers(36, 48))  # bass key, C2..B2
    chord = np.array(style.chords)[(k // 16) % len(style.chords)]  # (steps, 2) per sixteenth
    bass_steps = np.flatnonzero([style.bass[i % 16] == "x" for i in k])
    note = np.clip(np.searchsorted(onsets[bass_steps], t, side="right") - 1, 0, None)
    tau = np.maximum(t - onsets[bass_steps][note], 0.0)
    bass_hz = _midi_hz(key + chord[bass_steps[note], 0])
    bass_env = (1.0 - np.exp(-tau / 0.004)) * np.exp(-tau / 0.25)
    bass = bass_env * _harmonics(2 * np.pi * bass_hz * tau, style.bass_harmonics, power=1)

    bar_s = 16 * step
    chords = np.array(style.chords, dtype=np.float64)  # (bars in the progression, 2)
    triads = (
        key + 24 + chords[:, :1] + np.stack([0 * chords[:, 1], 4 - chords[:, 1], 7 + 0 * chords[:, 1]], 1)
    )
    bar = (t // bar_s).astype(int) % len(chords)
    phase = 2 * np.pi * _midi_hz(triads)[bar] * t[:, None]  # (S, 3) one column per chord note
    pad_env = np.sin(np.pi * (t % bar_s) / bar_s) ** 2
    pad = pad_env * _harmonics(phase, style.pad_harmonics, power=2).sum(axis=1)
    music = drums + 0.35 * bass + 0.12 * pad + 0.003 * rng.standard_normal(n)
    return (0.9 * music / np.abs(music).max()).astype(np.float32)


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
    :func:`danceba.skeleton.forward_kinematics`, y-up; the lowest foot joint is 2 cm above the floor y = 0.
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


# ----------------------------------------------------------------------------------------------
# Plan and writer
# ----------------------------------------------------------------------------------------------


def _check_config(config: MiniDatasetConfig) -> None:
    """Raise ValueError naming every ``data.mini`` key whose value cannot give a usable dataset."""
    genres = list(config.genres)
    checks = [
        ("genres", bool(genres) and set(genres) <= set(GENRE_STYLES) and len(set(genres)) == len(genres),
         f"need distinct AIST genre codes from {sorted(GENRE_STYLES)}, got {genres}"),
        ("music_per_genre", 2 <= config.music_per_genre <= 6,
         f"need 2..6 (one test/val piece, at least one training piece), got {config.music_per_genre}"),
        ("dancers_per_music", config.dancers_per_music >= 1, f"need >= 1, got {config.dancers_per_music}"),
        ("choreographies_per_dancer", config.choreographies_per_dancer >= 2,
         f"need >= 2 (ch01 is val, ch02 test), got {config.choreographies_per_dancer}"),
        ("seconds", config.seconds >= 2.0, f"need >= 2 s, got {config.seconds}"),
        ("sample_rate", config.sample_rate >= 8000, f"need >= 8000 Hz, got {config.sample_rate}"),
    ]  # fmt: skip
    bad = [f"data.mini.{key}: {why}" for key, ok, why in checks if not ok]
    if bad:
        raise ValueError("; ".join(bad))


def plan_mini_dataset(config: MiniDatasetConfig) -> tuple[tuple[MiniMusic, ...], tuple[SequenceName, ...]]:
    """Music pieces and sequence names the config describes (no files written)."""
    _check_config(config)
    musics, sequences = [], []
    for position, genre in enumerate(config.genres):
        test_digit = TEST_MUSIC_DIGIT[genre]
        for j in range(config.music_per_genre):
            music_id = f"m{genre[1:]}{(test_digit + j) % 6}"
            musics.append(
                MiniMusic(music_id, genre, music_tempo_bpm(music_id), "testval" if j == 0 else "train")
            )
            for d in range(config.dancers_per_music):
                dancer = f"d{position * config.dancers_per_music + d + 1:02d}"
                for c in range(config.choreographies_per_dancer):
                    situation = "sBM" if c < 2 else "sFM"
                    sequences.append(
                        SequenceName(genre, situation, "cAll", dancer, music_id, f"ch{c + 1:02d}")
                    )
    return tuple(musics), tuple(sequences)


def _rng(config: MiniDatasetConfig, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([config.seed, *key]))


def _genre_key(genre: str) -> int:
    return list(GENRES).index(genre)


def _write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    with atomic_path(path) as tmp:
        soundfile.write(tmp, audio, sample_rate, subtype="PCM_16", format="WAV")


def write_mini_dataset(root: Path, config: MiniDatasetConfig) -> MiniDatasetSummary:
    """Generate the mini dataset under ``root`` in the AIST++ layout (see the module docstring).

    Deterministic: every file depends only on ``config`` (each has its own seed stream). Files are
    replaced atomically; files of an earlier config with other names are not removed (use a fresh
    folder, as a DVC stage does).
    """
    musics, sequences = plan_mini_dataset(config)
    layout = AistppLayout(Path(root))
    bpm = {m.music_id: m.bpm for m in musics}
    for m in musics:
        rng = _rng(config, 1, _genre_key(m.genre), int(m.music_id[-1]))
        audio = synthesize_music(m.genre, m.bpm, config.seconds, config.sample_rate, rng)
        _write_wav(layout.wav_path(m.music_id), audio, config.sample_rate)

    testval = {m.music_id for m in musics if m.split == "testval"}
    train = [s.name for s in sequences if s.music_id not in testval]
    val = [
        s.name
        for s in sequences
        if s.music_id in testval and s.situation == "sBM" and s.choreography == "ch01"
    ]
    test = [
        s.name
        for s in sequences
        if s.music_id in testval and s.situation == "sBM" and s.choreography == "ch02"
    ]
    pick = _rng(config, 3).choice(len(train), size=min(2, len(train)), replace=False)
    ignored = sorted(train[i] for i in pick)

    n_frames = round(config.seconds * FPS)
    for s in sequences:
        genre, dancer_no, ch = _genre_key(s.genre), int(s.dancer[1:]), int(s.choreography[2:])
        dancer = DancerStyle.draw(_rng(config, 4, genre, dancer_no))
        choreo_rng = _rng(config, 5, genre, dancer_no, ch, int(s.situation == "sFM"))
        rng = _rng(config, 2, genre, int(s.music_id[-1]), dancer_no, ch, int(s.situation == "sFM"))
        poses, transl = synthesize_motion(s.genre, bpm[s.music_id], n_frames, dancer, choreo_rng, rng)
        loss = float(rng.uniform(0.5, 1.5))
        if s.name in ignored:
            poses, loss = add_fitting_glitches(poses, rng), 10.0 * loss
        write_motion_pkl(layout.motion_path(s.name), poses, transl * dancer.scaling, dancer.scaling, loss)

    for split, names in (("train", train), ("val", val), ("test", test)):
        write_text_atomic(layout.split_path(split), "".join(f"{n}\n" for n in sorted(names)))
    write_text_atomic(layout.ignore_list, "".join(f"{n}\n" for n in ignored))
    return MiniDatasetSummary(
        root=layout.root,
        musics=musics,
        sequences=tuple(s.name for s in sequences),
        train=tuple(sorted(train)),
        val=tuple(sorted(val)),
        test=tuple(sorted(test)),
        ignored=tuple(ignored),
        frames_per_sequence=n_frames,
    )
