"""AIST++ as published: folder layout, sequence names, splits, safe motion ``.pkl`` reading.

The layout every later stage reads (the embedded mini dataset is written in it too)::

    <root>/motions/<seq>.pkl                      SMPL motion, 60 fps, y-up
    <root>/splits/crossmodal_{train,val,test}.txt one sequence name per line
    <root>/ignore_list.txt                        sequences with poor reconstructions
    <root>/wavs/<music_id>.wav                    one file per music piece (mBR0.wav, ...)

:mod:`danceba.data.download` fetches the published archives and arranges them in this layout.

Motion files are pickles. They are read with a restricted unpickler that only rebuilds numpy arrays
and plain containers, so a crafted file cannot run code.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from danceba.atomic import atomic_path
from danceba.data.numeric_pickle import PickleRefused, load_numeric_pickle
from danceba.genres import GENRES

FPS = 60
SPLIT_NAMES = ("train", "val", "test")

SEQUENCE_RE = re.compile(r"(g[A-Z]{2})_(s[A-Z]{2})_(c(?:All|\d{2}))_(d\d{2})_(m[A-Z]{2}\d)_(ch\d{2})")
MUSIC_ID_RE = re.compile(r"m([A-Z]{2})(\d)")
SPLIT_FILE_RE = re.compile(r"(crossmodal|pose)_(train|val|test)")


class AistppFormatError(ValueError):
    """A file exists but its content is not what AIST++ publishes; the message names the file."""


class UnsafePickleError(AistppFormatError):
    """A motion pickle asked for a global that a plain AIST++ motion file never needs."""


class LayoutError(ValueError):
    """The dataset folder is incomplete; the message lists what is missing."""


# ----------------------------------------------------------------------------------------------
# Layout and names
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SequenceName:
    """The parts of an AIST++ sequence name such as ``gBR_sBM_cAll_d04_mBR0_ch01``."""

    genre: str  # gBR
    situation: str  # sBM (basic) or sFM (advanced)
    camera: str  # cAll (all 9 views) or c01..c09
    dancer: str  # d04
    music_id: str  # mBR0
    choreography: str  # ch01

    @property
    def name(self) -> str:
        return "_".join(
            (self.genre, self.situation, self.camera, self.dancer, self.music_id, self.choreography)
        )

    @property
    def genre_name(self) -> str:
        return GENRES[self.genre]


def parse_sequence_name(name: str) -> SequenceName:
    """Split ``gBR_sBM_cAll_d04_mBR0_ch01`` into its parts; ValueError names a malformed ``name``."""
    match = SEQUENCE_RE.fullmatch(name) if isinstance(name, str) else None
    if match is None:
        raise ValueError(
            f"malformed AIST++ sequence name {name!r}: expected like 'gBR_sBM_cAll_d04_mBR0_ch01' "
            "(genre_situation_camera_dancer_music_choreography)"
        )
    parts = SequenceName(*match.groups())
    if parts.genre not in GENRES:
        raise ValueError(f"sequence name {name!r}: unknown genre {parts.genre!r}, known: {sorted(GENRES)}")
    return parts


def _check_music_id(music_id: str) -> re.Match[str]:
    match = MUSIC_ID_RE.fullmatch(music_id) if isinstance(music_id, str) else None
    if match is None:
        raise ValueError(f"malformed AIST music id {music_id!r}: expected like 'mBR0'")
    return match


def music_tempo_bpm(music_id: str) -> float:
    """Tempo of an AIST music piece from its id: ``mHO<d>`` -> 110 + 5·d, other genres 80 + 10·d BPM."""
    match = _check_music_id(music_id)
    genre, digit = f"g{match.group(1)}", int(match.group(2))
    if genre not in GENRES:
        raise ValueError(f"music id {music_id!r}: unknown genre code {genre!r}, known: {sorted(GENRES)}")
    if digit > 5:
        raise ValueError(f"music id {music_id!r}: AIST music numbers run 0-5, got {digit}")
    return float(110 + 5 * digit) if genre == "gHO" else float(80 + 10 * digit)


@dataclass(frozen=True)
class AistppLayout:
    """Paths of an AIST++ dataset folder (see the module docstring)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def motions_dir(self) -> Path:
        return self.root / "motions"

    @property
    def splits_dir(self) -> Path:
        return self.root / "splits"

    @property
    def ignore_list(self) -> Path:
        return self.root / "ignore_list.txt"

    @property
    def wavs_dir(self) -> Path:
        return self.root / "wavs"

    def split_path(self, split: str) -> Path:
        """``train``/``val``/``test`` -> ``splits/crossmodal_<split>.txt``; ``pose_test`` etc. as given."""
        stem = f"crossmodal_{split}" if split in SPLIT_NAMES else split
        if not isinstance(split, str) or SPLIT_FILE_RE.fullmatch(stem) is None:
            raise ValueError(f"unknown split {split!r}: use one of {SPLIT_NAMES} or e.g. 'pose_train'")
        return self.splits_dir / f"{stem}.txt"

    def motion_path(self, sequence: str) -> Path:
        return self.motions_dir / f"{parse_sequence_name(sequence).name}.pkl"

    def wav_path(self, music_id: str) -> Path:
        _check_music_id(music_id)
        return self.wavs_dir / f"{music_id}.wav"


# ----------------------------------------------------------------------------------------------
# Motion pickles
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SmplMotion:
    """One AIST++ motion: SMPL axis-angle poses and root translation at 60 fps (arrays read-only)."""

    poses: np.ndarray  # (N, 24, 3) float32, axis-angle, joint 0 = global orientation
    trans: np.ndarray  # (N, 3) float32, root translation in the capture's scale
    scaling: float  # smpl_scaling: divide trans by it to get SMPL (metre) scale

    @property
    def n_frames(self) -> int:
        return int(self.poses.shape[0])

    @property
    def trans_normalised(self) -> np.ndarray:
        """(N, 3) float32 translation in SMPL scale: ``trans / scaling``."""
        return (self.trans / np.float32(self.scaling)).astype(np.float32)


def _as_float_array(value: Any, key: str, path: Path | str) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind not in "fiu":
        raise AistppFormatError(f"{path}: '{key}' must be numeric, got dtype {array.dtype}")
    if not np.all(np.isfinite(array)):
        raise AistppFormatError(f"{path}: '{key}' contains NaN or infinite values")
    return array.astype(np.float32)


def _validated_motion(poses: Any, trans: Any, scaling: Any, path: Path | str) -> SmplMotion:
    """Check shapes and values; ``path`` only names the source in error messages."""
    poses = _as_float_array(poses, "smpl_poses", path)
    trans = _as_float_array(trans, "smpl_trans", path)
    scale = _as_float_array(scaling, "smpl_scaling", path)
    if poses.ndim == 2 and poses.shape[1] == 72:
        poses = poses.reshape(-1, 24, 3)
    if poses.ndim != 3 or poses.shape[1:] != (24, 3) or poses.shape[0] == 0:
        raise AistppFormatError(
            f"{path}: 'smpl_poses' must be (N,72) or (N,24,3) with N>0, got {poses.shape}"
        )
    if trans.shape != (poses.shape[0], 3):
        raise AistppFormatError(
            f"{path}: 'smpl_trans' must be ({poses.shape[0]}, 3) to match smpl_poses, got {trans.shape}"
        )
    if scale.size != 1 or float(scale.reshape(-1)[0]) <= 0:
        raise AistppFormatError(f"{path}: 'smpl_scaling' must be one positive number, got {scale.tolist()}")
    poses.setflags(write=False)
    trans.setflags(write=False)
    return SmplMotion(poses=poses, trans=trans, scaling=float(scale.reshape(-1)[0]))


def read_motion_pkl(path: str | os.PathLike[str]) -> SmplMotion:
    """Read an AIST++ ``motions/<seq>.pkl`` safely (restricted unpickler) and validate it."""
    path = Path(path)
    with path.open("rb") as handle:
        try:
            data = load_numeric_pickle(handle, path)
        except PickleRefused as error:
            raise UnsafePickleError(str(error)) from None
        except Exception as error:  # a truncated or garbled pickle can fail in many ways
            raise AistppFormatError(
                f"{path}: cannot read the motion pickle ({type(error).__name__}: {error}); the file is "
                "truncated or corrupt, download it again"
            ) from error
    if not isinstance(data, dict):
        raise AistppFormatError(f"{path}: expected a dict of arrays, got {type(data).__name__}")
    missing = [key for key in ("smpl_poses", "smpl_trans", "smpl_scaling") if key not in data]
    if missing:
        raise AistppFormatError(f"{path}: missing keys {missing}; found {sorted(map(str, data))}")
    return _validated_motion(data["smpl_poses"], data["smpl_trans"], data["smpl_scaling"], path)


def write_motion_pkl(
    path: str | os.PathLike[str], poses: np.ndarray, trans: np.ndarray, scaling: float, loss: float = 0.0
) -> None:
    """Write a motion in the AIST++ format, atomically.

    poses: (N, 72) or (N, 24, 3) axis-angle; trans: (N, 3); scaling > 0. Stored as the published files
    are: ``smpl_poses`` (N, 72) float32, ``smpl_trans`` (N, 3) float32, ``smpl_scaling`` (1,) float32,
    ``smpl_loss`` float.
    """
    motion = _validated_motion(poses, trans, scaling, Path(path))
    data = {
        "smpl_poses": motion.poses.reshape(-1, 72).copy(),
        "smpl_trans": motion.trans.copy(),
        "smpl_scaling": np.array([motion.scaling], dtype=np.float32),
        "smpl_loss": float(loss),
    }
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        pickle.dump(data, handle, protocol=4)


# ----------------------------------------------------------------------------------------------
# Splits and ignore list
# ----------------------------------------------------------------------------------------------


def _read_names(path: Path, strip_suffixes: tuple[str, ...] = ()) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"missing AIST++ file {path}")
    names = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        for suffix in strip_suffixes:
            line = line.removesuffix(suffix)
        try:
            names.append(parse_sequence_name(line).name)
        except ValueError as error:
            raise AistppFormatError(f"{path}:{number}: {error}") from None
    return names


def read_split(layout: AistppLayout, name: str) -> list[str]:
    """Sequence names of a split (``train``/``val``/``test`` = crossmodal), in file order."""
    return _read_names(layout.split_path(name))


def read_ignore_list(layout: AistppLayout) -> set[str]:
    """Names in ``ignore_list.txt`` (a ``.json``/``.pkl`` suffix, as in Bailando's copy, is dropped)."""
    return set(_read_names(layout.ignore_list, strip_suffixes=(".json", ".pkl")))


def list_sequences(layout: AistppLayout, split: str | None = None, drop_ignored: bool = True) -> list[str]:
    """Sequences of ``split``, or every motion file in ``motions/`` when ``split`` is None (sorted)."""
    if split is None:
        if not layout.motions_dir.is_dir():
            raise FileNotFoundError(f"missing AIST++ motions folder {layout.motions_dir}")
        names = []
        for path in sorted(layout.motions_dir.glob("*.pkl")):
            try:
                names.append(parse_sequence_name(path.stem).name)
            except ValueError as error:
                raise AistppFormatError(f"{path}: {error}") from None
    else:
        names = read_split(layout, split)
    if drop_ignored:
        ignored = read_ignore_list(layout)
        names = [name for name in names if name not in ignored]
    return names


@dataclass(frozen=True)
class LayoutReport:
    """What :func:`validate_layout` found: counts and the missing paths (empty when complete)."""

    root: Path
    n_sequences: int
    n_music: int
    missing: tuple[str, ...]

    @property
    def complete(self) -> bool:
        return not self.missing

    def __str__(self) -> str:
        if self.complete:
            return f"{self.root}: complete ({self.n_sequences} sequences, {self.n_music} music pieces)"
        shown = "\n  ".join(self.missing[:20])
        more = f"\n  ... and {len(self.missing) - 20} more" if len(self.missing) > 20 else ""
        return f"{self.root}: incomplete AIST++ layout, {len(self.missing)} missing:\n  {shown}{more}"


def validate_layout(
    layout: AistppLayout, splits: Sequence[str] = SPLIT_NAMES, drop_ignored: bool = True, strict: bool = True
) -> LayoutReport:
    """Check split files, the ignore list, and a motion pkl and music wav for every split sequence.

    Raises :class:`LayoutError` listing what is missing when ``strict``; otherwise returns the report.
    """
    missing: list[str] = []
    ignored: set[str] = set()
    if layout.ignore_list.is_file():
        ignored = read_ignore_list(layout) if drop_ignored else set()
    else:
        missing.append(str(layout.ignore_list))
    sequences: list[str] = []
    for split in splits:
        if layout.split_path(split).is_file():
            sequences += [name for name in read_split(layout, split) if name not in ignored]
        else:
            missing.append(str(layout.split_path(split)))
    sequences = list(dict.fromkeys(sequences))
    music_ids = sorted({parse_sequence_name(name).music_id for name in sequences})
    missing += [str(layout.motion_path(name)) for name in sequences if not layout.motion_path(name).is_file()]
    missing += [str(layout.wav_path(music)) for music in music_ids if not layout.wav_path(music).is_file()]
    report = LayoutReport(layout.root, len(sequences), len(music_ids), tuple(missing))
    if strict and not report.complete:
        raise LayoutError(str(report))
    return report
