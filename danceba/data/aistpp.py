"""AIST++ as published: folder layout, sequence names, splits, safe motion ``.pkl`` reading, download.

The layout every later stage reads (the embedded mini dataset is written in it too)::

    <root>/motions/<seq>.pkl                      SMPL motion, 60 fps, y-up
    <root>/splits/crossmodal_{train,val,test}.txt one sequence name per line
    <root>/ignore_list.txt                        sequences with poor reconstructions
    <root>/wavs/<music_id>.wav                    one file per music piece (mBR0.wav, ...)

The published files arrive differently: the AIST++ GitHub release v1.0 ships ``motions.zip``,
``splits.zip`` and ``ignore_list.txt`` as separate assets, the older ``fullset.zip`` unpacks to
``aist_plusplus_final/{motions,splits,...}`` plus ``ignore_list.txt``, and the AIST Dance DB gives the
music as ``wav.zip``. :func:`fetch_aistpp` downloads (resumable, checksummed), extracts safely and
moves what it finds into the layout above, wherever the archive put it.

Motion files are pickles. They are read with a restricted unpickler that only rebuilds numpy arrays
and plain containers, so a crafted file cannot run code.
"""

from __future__ import annotations

import builtins
import codecs
import collections
import hashlib
import os
import pickle
import re
import shutil
import stat
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

import numpy as np
import numpy._core.multiarray as _np_multiarray
import numpy._core.numeric as _np_numeric
import requests
from tqdm import tqdm

from danceba.atomic import atomic_path

FPS = 60
SPLIT_NAMES = ("train", "val", "test")

GENRES: dict[str, str] = {
    "gBR": "Break",
    "gPO": "Pop",
    "gLO": "Lock",
    "gMH": "Middle Hip-hop",
    "gLH": "LA style Hip-hop",
    "gHO": "House",
    "gWA": "Waack",
    "gKR": "Krump",
    "gJS": "Street Jazz",
    "gJB": "Ballet Jazz",
}

AISTPP_RELEASE_URL = "https://github.com/google/aistplusplus_dataset/releases/download/v1.0"
AISTPP_MOTIONS_URL = f"{AISTPP_RELEASE_URL}/motions.zip"
AIST_MUSIC_URL = "https://aistdancedb.ongaaccel.jp/v1.0.0/audio/wav.zip"
AIST_MUSIC_PAGE = "https://aistdancedb.ongaaccel.jp/database_download/"
AIST_TERMS_URL = "https://aistdancedb.ongaaccel.jp/terms_of_use/"

_SEQUENCE_RE = re.compile(r"(g[A-Z]{2})_(s[A-Z]{2})_(c(?:All|\d{2}))_(d\d{2})_(m[A-Z]{2}\d)_(ch\d{2})")
_MUSIC_ID_RE = re.compile(r"m([A-Z]{2})(\d)")
_SPLIT_FILE_RE = re.compile(r"(crossmodal|pose)_(train|val|test)")


class AistppFormatError(ValueError):
    """A file exists but its content is not what AIST++ publishes; the message names the file."""


class UnsafePickleError(AistppFormatError):
    """A motion pickle asked for a global that a plain AIST++ motion file never needs."""


class UnsafeArchiveError(AistppFormatError):
    """A zip member would be written outside the extraction folder."""


class DownloadError(OSError):
    """A download failed; the message says what to do instead (e.g. fetch the file by hand)."""


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
    match = _SEQUENCE_RE.fullmatch(name) if isinstance(name, str) else None
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
    match = _MUSIC_ID_RE.fullmatch(music_id) if isinstance(music_id, str) else None
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
        if not isinstance(split, str) or _SPLIT_FILE_RE.fullmatch(stem) is None:
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


_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    **{
        (m, "_reconstruct"): _np_multiarray._reconstruct
        for m in ("numpy.core.multiarray", "numpy._core.multiarray")
    },
    **{(m, "scalar"): _np_multiarray.scalar for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(m, "_frombuffer"): _np_numeric._frombuffer for m in ("numpy.core.numeric", "numpy._core.numeric")},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,  # protocol < 3 pickles spell bytes as encode(str, 'latin1')
    ("collections", "OrderedDict"): collections.OrderedDict,
    **{
        (m, n): getattr(builtins, n)
        for m in ("builtins", "__builtin__")
        for n in ("dict", "list", "tuple", "set", "frozenset", "bytearray")
    },
}


class _MotionUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays and containers only; every other global is refused."""

    def __init__(self, file: Any, path: Path) -> None:
        super().__init__(file, encoding="latin1")
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        allowed = _ALLOWED_GLOBALS.get((module, name))
        if allowed is None:
            raise UnsafePickleError(
                f"{self._path}: refused to unpickle global '{module}.{name}': an AIST++ motion file holds "
                "only numpy arrays; this file is corrupt or malicious"
            )
        return allowed

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self._path}: refused pickle persistent id {pid!r}")


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
            data = _MotionUnpickler(handle, path).load()
        except AistppFormatError:
            raise
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


# ----------------------------------------------------------------------------------------------
# Downloading and extracting
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteFile:
    """A file to download, with optional checksum and size to verify it."""

    url: str
    sha256: str | None = None
    size: int | None = None

    @property
    def filename(self) -> str:
        name = PurePosixPath(urlparse(self.url).path).name
        if not name or name in {".", ".."}:
            raise ValueError(f"cannot derive a file name from URL {self.url!r}")
        return name


# SHA-256 and sizes of the small release assets, as reported by the GitHub release API and quoted in a
# third-party installer; not re-checked here (no network). Pass other RemoteFiles to override them.
AISTPP_SPLITS = RemoteFile(
    f"{AISTPP_RELEASE_URL}/splits.zip",
    sha256="38e2d47c81d245fdc0d65b3897b83db1693eea377edc13b30270e4928f4073ad",
    size=16454,
)
AISTPP_IGNORE_LIST = RemoteFile(
    f"{AISTPP_RELEASE_URL}/ignore_list.txt",
    sha256="be44c54baa91a1aff18306da2f3fc44abd1adfbb32317ac9f9b1362685415339",
    size=1217,
)


def _file_sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _mismatch(path: Path, sha256: str | None, size: int | None) -> str | None:
    """Why ``path`` does not match the expected size/checksum, or None when it does."""
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        return f"size {actual_size} bytes, expected {size}"
    if sha256 is not None:
        actual = _file_sha256(path)
        if actual.lower() != sha256.lower():
            return f"sha256 {actual}, expected {sha256}"
    return None


def _offline_message(url: str, dest: Path, error: Exception) -> str:
    return (
        f"cannot reach {url} ({type(error).__name__}): this machine may be offline or the server is down. "
        f"Download the file by hand on a machine with internet access and put it at {dest} "
        "(files already there are not downloaded again), then run this step again."
    )


def _content_range(response: requests.Response) -> tuple[int | None, int | None]:
    """(first byte, total size) from a ``Content-Range: bytes a-b/total`` header, None where absent."""
    match = re.fullmatch(
        r"bytes (\d+|\*)(?:-\d+)?/(\d+|\*)", response.headers.get("Content-Range", "").strip()
    )
    if match is None:
        return None, None
    first, total = match.groups()
    return (None if first == "*" else int(first)), (None if total == "*" else int(total))


def _fetch_into_part(
    session: requests.Session, url: str, dest: Path, offset: int, timeout: float, progress: bool
) -> bool:
    """One request appending to ``dest.part`` from ``offset``; False when the range was refused."""
    part = dest.with_name(dest.name + ".part")
    headers = {"Accept-Encoding": "identity", **({"Range": f"bytes={offset}-"} if offset else {})}
    with session.get(url, stream=True, timeout=timeout, headers=headers) as response:
        if response.status_code == 416:  # nothing after offset: complete if the server agrees on size
            return _content_range(response)[1] == offset
        if response.status_code not in (200, 206):
            raise DownloadError(
                f"{url}: HTTP {response.status_code} {response.reason}. If the file needs a login or "
                f"agreeing to terms, download it by hand and put it at {dest}"
            )
        if response.status_code == 206 and _content_range(response)[0] != offset:
            return False
        if response.status_code == 200:
            offset = 0  # the server ignored the range: start over
        length = response.headers.get("Content-Length")
        encoded = response.headers.get("Content-Encoding", "identity") != "identity"
        total = offset + int(length) if length is not None and not encoded else None
        with (
            part.open("ab" if offset else "wb") as out,
            tqdm(
                total=total, initial=offset, unit="B", unit_scale=True, desc=part.name, disable=not progress
            ) as bar,
        ):
            for chunk in response.iter_content(chunk_size=1 << 16):
                out.write(chunk)
                bar.update(len(chunk))
    if total is not None and part.stat().st_size != total:
        raise DownloadError(
            f"{url}: connection ended after {part.stat().st_size} of {total} bytes; run again to resume"
        )
    return True


def download_file(
    url: str,
    dest: str | os.PathLike[str],
    expected_sha256: str | None = None,
    expected_size: int | None = None,
    timeout: float = 60.0,
    progress: bool = True,
    session: requests.Session | None = None,
) -> Path:
    """Download ``url`` to ``dest`` via ``dest.part``, resuming a partial download with an HTTP Range.

    A ``dest`` already present is verified (size/sha256 when given) and kept. A checksum or size
    mismatch after downloading deletes the partial file and raises :class:`DownloadError`.
    """
    dest = Path(dest)
    if dest.is_file():
        problem = _mismatch(dest, expected_sha256, expected_size)
        if problem:
            raise DownloadError(f"{dest}: existing file has {problem}; delete it and run again")
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    session = session or requests.Session()
    for _ in range(2):
        offset = part.stat().st_size if part.is_file() else 0
        if expected_size is not None and offset > expected_size:
            part.unlink()
            offset = 0
        try:
            if _fetch_into_part(session, url, dest, offset, timeout, progress):
                break
        except (requests.ConnectionError, requests.Timeout) as error:
            raise DownloadError(_offline_message(url, dest, error)) from error
        except requests.RequestException as error:
            raise DownloadError(
                f"{url}: download interrupted ({error}); the partial file {part} is kept, run again to resume"
            ) from error
        part.unlink(missing_ok=True)  # the server refused our range: restart from byte 0
    else:
        raise DownloadError(f"{url}: the server refused every byte range; download it by hand into {dest}")
    problem = _mismatch(part, expected_sha256, expected_size)
    if problem:
        part.unlink()
        raise DownloadError(f"{dest}: downloaded data from {url} has {problem}; the partial file was deleted")
    os.replace(part, dest)
    return dest


def _member_escapes(name: str, target: Path) -> str | None:
    """Why zip member ``name`` is unsafe to extract into ``target``, or None when it is safe."""
    posix = name.replace("\\", "/")
    if posix.startswith("/") or re.match(r"[A-Za-z]:", posix):
        return "absolute path"
    if ".." in PurePosixPath(posix).parts:
        return "'..' in path"
    if not (target / posix).resolve().is_relative_to(target):
        return "resolves outside the target folder"
    return None


def safe_extract_zip(zip_path: str | os.PathLike[str], target_dir: str | os.PathLike[str]) -> list[Path]:
    """Extract every member of ``zip_path`` under ``target_dir``; return the extracted file paths.

    All members are checked before anything is written: an absolute path, ``..``, a symlink or a
    path resolving outside ``target_dir`` raises :class:`UnsafeArchiveError` naming the member.
    """
    zip_path, target = Path(zip_path), Path(target_dir).resolve()
    try:
        archive = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile as error:
        raise AistppFormatError(
            f"{zip_path}: not a valid zip archive ({error}); delete it and download again"
        ) from error
    with archive:
        members = archive.infolist()
        for info in members:
            problem = (
                "symbolic link"
                if stat.S_ISLNK(info.external_attr >> 16)
                else _member_escapes(info.filename, target)
            )
            if problem:
                raise UnsafeArchiveError(
                    f"{zip_path}: refusing to extract member {info.filename!r}: {problem}"
                )
        written = []
        for info in members:
            dest = target / info.filename.replace("\\", "/")
            if info.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            try:
                with archive.open(info) as source, atomic_path(dest) as tmp, tmp.open("wb") as out:
                    shutil.copyfileobj(source, out, 1 << 20)
            except (zipfile.BadZipFile, zlib.error, EOFError) as error:
                raise AistppFormatError(
                    f"{zip_path}: member {info.filename!r} is corrupt ({error})"
                ) from error
            written.append(dest)
    return written


def _install(source: Path, dest: Path, move: bool) -> None:
    with atomic_path(dest) as tmp:
        (shutil.move if move else shutil.copyfile)(source, tmp)


def _layout_target(path: Path, layout: AistppLayout) -> Path | None:
    """Where an extracted file belongs in the layout, or None for files we do not use."""
    parts = path.parts
    if any(p.startswith("__MACOSX") or p.startswith(".") for p in parts):
        return None
    if path.name == "ignore_list.txt":
        return layout.ignore_list
    if path.suffix == ".txt" and (_SPLIT_FILE_RE.fullmatch(path.stem) or "splits" in parts[:-1]):
        return layout.splits_dir / path.name
    if path.suffix == ".wav" and _MUSIC_ID_RE.fullmatch(path.stem):
        return layout.wav_path(path.stem)
    if path.suffix == ".pkl" and _SEQUENCE_RE.fullmatch(path.stem):
        in_motions = "motions" in parts[:-1]
        if in_motions or not any(p.startswith("keypoints") for p in parts[:-1]):
            return layout.motion_path(path.stem)
    return None


def ingest_into_layout(
    path: str | os.PathLike[str], layout: AistppLayout, staging_dir: str | os.PathLike[str]
) -> int:
    """Put the AIST++ files in ``path`` (a zip or a single file) into ``layout``; return how many.

    A zip is extracted into ``staging_dir/<archive stem>`` (removed afterwards) and its motions, split
    files, ignore list and music wavs are moved to their place, whatever folders the archive used.
    """
    path = Path(path)
    if not zipfile.is_zipfile(path):
        dest = _layout_target(Path(path.name), layout)
        if dest is None:
            raise AistppFormatError(f"{path}: neither a zip archive nor a file of the AIST++ layout")
        _install(path, dest, move=False)
        return 1
    staging = Path(staging_dir) / path.stem
    shutil.rmtree(staging, ignore_errors=True)
    count = 0
    try:
        for extracted in safe_extract_zip(path, staging):
            dest = _layout_target(extracted.relative_to(staging.resolve()), layout)
            if dest is not None:
                _install(extracted, dest, move=True)
                count += 1
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return count


def music_download_help(layout: AistppLayout, archive: Path) -> str:
    """What to do when the AIST Dance DB music cannot be downloaded automatically."""
    return (
        "The AIST++ music comes from the AIST Dance Video Database, whose site may ask you to agree to its "
        f"terms of use ({AIST_TERMS_URL}) and to download by hand. Get the music as wav from "
        f"{AIST_MUSIC_PAGE} and either put the zip at {archive} or put the wav files themselves "
        f"(one per music id: mBR0.wav ... mJB5.wav) into {layout.wavs_dir}; then run this step again."
    )


def _missing(layout: AistppLayout, wavs: bool) -> bool:
    """Whether any music wav (``wavs``) or any other part of the layout is missing."""
    return any(item.endswith(".wav") == wavs for item in validate_layout(layout, strict=False).missing)


def fetch_aistpp(
    download_dir: str | os.PathLike[str],
    target_root: str | os.PathLike[str],
    annotations_url: str = AISTPP_MOTIONS_URL,
    music_url: str = AIST_MUSIC_URL,
    annotations_sha256: str | None = None,
    music_sha256: str | None = None,
    extra_annotations: Iterable[RemoteFile] = (AISTPP_SPLITS, AISTPP_IGNORE_LIST),
    timeout: float = 60.0,
    progress: bool = True,
) -> AistppLayout:
    """Download AIST++ into ``download_dir`` and arrange it in the layout under ``target_root``.

    ``annotations_url`` is the motions archive (release ``motions.zip``, or ``fullset.zip`` which also
    holds splits and ignore list). Each of ``extra_annotations`` is fetched only if its part (splits,
    ignore list) is still missing afterwards. Music is fetched unless every needed wav is present.
    Archives already complete in ``download_dir`` are not downloaded again. Returns the validated layout
    (:class:`LayoutError` lists anything still missing).
    """
    download_dir, layout = Path(download_dir), AistppLayout(target_root)
    staging = download_dir / "extracted"

    def get(remote: RemoteFile) -> Path:
        dest = download_dir / remote.filename
        return download_file(remote.url, dest, remote.sha256, remote.size, timeout, progress)

    if _missing(layout, wavs=False):
        ingest_into_layout(get(RemoteFile(annotations_url, annotations_sha256)), layout, staging)
        for remote in extra_annotations:
            wanted = layout.ignore_list if remote.filename.startswith("ignore") else layout.splits_dir
            if not wanted.exists():
                ingest_into_layout(get(remote), layout, staging)
    if _missing(layout, wavs=True):
        music = RemoteFile(music_url, music_sha256)
        try:
            archive = get(music)
        except DownloadError as error:
            raise DownloadError(
                f"{error}\n{music_download_help(layout, download_dir / music.filename)}"
            ) from error
        ingest_into_layout(archive, layout, staging)
    validate_layout(layout)
    return layout
