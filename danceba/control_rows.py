"""Control rows built inside ``evaluate`` from the ground truth: motions with a known relation to the
music, scored by the same code as the model, so the report shows what each metric says about them.

* ``mismatched_gt``: real dances, each scored against the music of another piece.
* ``jitter``: the piece's mean pose (each joint's mean position over the piece) held still, plus
  independent white noise of ``noise_m`` metres per coordinate and frame: a motion with many speed
  minima and no relation to the music (it fools BAS, not BAS excess).
* ``still``: the piece's first pose held for its whole length, plus white noise of ``noise_m`` metres
  (by default 0.1 mm, invisible): the noise only gives the joint speed local minima, so that BAS and
  the features are defined; otherwise it is a frozen dance.
* ``gt_half_beat_late``: the ground truth delayed by half a beat of its own music, i.e. by
  round(0.5 × median music beat interval) frames, the start padded by repeating the first frame and the
  end cut so the length is unchanged. Its motion beats sit between the music beats: BAS drops, phase
  locking stays, with a mean phase of about ±0.5.

Joints are (T, 24, 3) metres, y-up, 60 fps. Noise is seeded per row and piece
(``default_rng([seed, row, piece])``), so a row is reproducible and independent of the others.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

from danceba.evaluation import Dance

_JITTER_STREAM, _STILL_STREAM = 1, 2


def _rng(seed: int, stream: int, piece: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), stream, piece])


def _check_joints(joints: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(joints)
    if arr.ndim != 3 or arr.shape[1:] != (24, 3) or len(arr) < 2:
        raise ValueError(f"{what}: joints must be (T >= 2, 24, 3), got {arr.shape}")
    return arr


def jitter_joints(joints: np.ndarray, noise_m: float, rng: np.random.Generator) -> np.ndarray:
    """(T, 24, 3) -> (T, 24, 3) float32: the mean pose of ``joints`` plus white noise of std ``noise_m``."""
    joints = _check_joints(joints, "jitter")
    if noise_m <= 0:
        raise ValueError(f"jitter: noise_m must be positive, got {noise_m}")
    mean_pose = joints.mean(axis=0, dtype=np.float64)
    return (mean_pose + rng.normal(0.0, noise_m, size=joints.shape)).astype(np.float32)


def still_joints(joints: np.ndarray, noise_m: float, rng: np.random.Generator) -> np.ndarray:
    """(T, 24, 3) -> (T, 24, 3) float32: the first pose held, plus white noise of std ``noise_m``."""
    joints = _check_joints(joints, "still")
    if noise_m <= 0:
        raise ValueError(
            f"still: noise_m must be positive (it gives the speed minima BAS needs), got {noise_m}"
        )
    first = np.asarray(joints[0], dtype=np.float64)
    return (first + rng.normal(0.0, noise_m, size=joints.shape)).astype(np.float32)


def half_beat_frames(music_beat_onehot: np.ndarray, length: int) -> int:
    """round(0.5 × median interval) of the music beats within the first ``length`` frames; onehot (T,)."""
    beats = np.flatnonzero(np.asarray(music_beat_onehot).ravel()[:length].astype(bool))
    if beats.size < 2:
        raise ValueError(f"half beat: need at least 2 music beats in {length} frames, got {beats.size}")
    return int(np.round(0.5 * np.median(np.diff(beats))))


def delayed_joints(joints: np.ndarray, frames: int) -> np.ndarray:
    """(T, 24, 3) delayed by ``frames`` (>= 0): the first frame repeated ``frames`` times, the end cut."""
    joints = _check_joints(joints, "delay")
    if not 0 <= frames < len(joints):
        raise ValueError(f"delay: frames must be in [0, {len(joints)}), got {frames}")
    return np.concatenate([np.repeat(joints[:1], frames, axis=0), joints[: len(joints) - frames]])


def jitter_dances(ground_truth: Sequence[Dance], noise_m: float, seed: int) -> list[Dance]:
    """The ``jitter`` row: one per ground-truth piece, same music and length."""
    return [
        Dance(gt.name, jitter_joints(gt.joints, noise_m, _rng(seed, _JITTER_STREAM, k)), gt.music_id)
        for k, gt in enumerate(ground_truth)
    ]


def still_dances(ground_truth: Sequence[Dance], noise_m: float, seed: int) -> list[Dance]:
    """The ``still`` row: one per ground-truth piece, same music and length."""
    return [
        Dance(gt.name, still_joints(gt.joints, noise_m, _rng(seed, _STILL_STREAM, k)), gt.music_id)
        for k, gt in enumerate(ground_truth)
    ]


def _rotated_derangement(music_ids: Sequence[str], rng: np.random.Generator) -> list[int]:
    """order[i] = the piece whose dance piece i gets, never of the same music id (see
    :func:`mismatched_dances`); ValueError when one music id holds more than half of the pieces."""
    largest = max(Counter(music_ids).values()) if music_ids else 0
    if largest == 0 or 2 * largest > len(music_ids):
        raise ValueError("cannot pair every piece with a dance of another music (only one music id?)")
    rank = {mid: r for r, mid in enumerate(rng.permutation(sorted(set(music_ids))))}
    grouped = sorted(rng.permutation(len(music_ids)), key=lambda i: rank[music_ids[i]])  # stable: groups
    order = [0] * len(music_ids)
    for position, piece in enumerate(grouped):
        order[piece] = int(grouped[(position + largest) % len(grouped)])
    return order


def half_beat_late_dances(ground_truth: Sequence[Dance], beats: Mapping[str, np.ndarray]) -> list[Dance]:
    """The ``gt_half_beat_late`` row; ``beats``: {music id: (T_music,) 60 fps beat one-hot}."""
    out = []
    for gt in ground_truth:
        try:
            shift = half_beat_frames(beats[gt.music_id], len(gt.joints) - 1)
        except ValueError as error:
            raise ValueError(f"{gt.name}: {error}") from error
        out.append(Dance(gt.name, delayed_joints(gt.joints, shift), gt.music_id))
    return out


def mismatched_dances(ground_truth: Sequence[Dance], seed: int) -> list[Dance]:
    """The ``mismatched_gt`` row: each piece's music gets the ground-truth dance of a different music
    (a derangement over the pieces that never keeps a music id, seeded).

    Up to 100 seeded shuffles are tried. When all of them fail, a rotation is used instead: 40 pieces on
    10 songs, as in AIST++'s test set, failed all 100. The rotation groups the pieces by music id in a
    seeded order and shifts them by the largest group's size. It exists whenever no song holds more than
    half of the pieces."""
    rng = np.random.default_rng(seed)
    order = list(range(len(ground_truth)))
    for _ in range(100):
        rng.shuffle(order)
        if all(ground_truth[i].music_id != ground_truth[j].music_id for i, j in enumerate(order)):
            break
    else:
        order = _rotated_derangement([gt.music_id for gt in ground_truth], rng)
    return [
        Dance(f"{gt.name}<-{ground_truth[j].name}", ground_truth[j].joints, gt.music_id)
        for gt, j in zip(ground_truth, order, strict=True)
    ]
