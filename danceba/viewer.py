"""``danceba view``: a local web player for dances and their music (three.js, served from 127.0.0.1).

A *track* is one source of dances: a folder of ``<piece>.npz`` (the project's ``data/generated/<row>/``
or a ``danceba generate`` output folder; a ``.bvh`` counts where no ``.npz`` has its stem), one ``.npz``
or ``.bvh`` file, or the ground-truth joints table (``data/joints.parquet``, one sequence per piece). A
*piece* is a file stem; the page shows the dances of one piece from every track that has it, side by
side in one scene, on one clock, with the piece's music (``music_id`` of its npz files, else the stem)
found by stem in the ``--music`` files and folders, ``data/raw/wavs`` and the dance's own folder.

The server (:class:`ViewerServer`, standard library only) serves the page (``danceba/player/``), three.js
from ``danceba/player/node_modules/three`` (``make setup`` installs it with ``npm ci``; nothing is
downloaded at run time), and a small JSON/binary API:

``GET /api/catalog``                 tracks, pieces, SMPL parents and joint names
``GET /api/piece?name=P``            the piece's dances (kind, fps, frames, motion beats) and music
``GET /api/joints?track=I&piece=P``  joints (T, 24, 3) as little-endian float32 bytes
``GET /api/bvh?track=I&piece=P``     the BVH file (parsed in the page by three.js's ``BVHLoader``)
``GET /api/music-beats?piece=P``     music beats (60 fps frames) as BAS reads them; computed on first ask
``POST /api/motion-beats``           float32 (T, 24, 3) body -> motion beats (for BVH dances)
``GET /audio?piece=P``               the music file, with HTTP Range requests (media seeking needs them)

Only files of the catalog and the player are served. Bad input raises :class:`ViewerInputError` naming
the file and the problem. Importing this module does not import torch; librosa is imported the first
time music beats are asked for.
"""

from __future__ import annotations

import json
import re
import threading
import zipfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import numpy as np

from danceba.features.motion import motion_beats
from danceba.motion.skeleton import SMPL_JOINT_NAMES, SMPL_PARENTS

AUDIO_TYPES = {".wav": "audio/wav", ".mp3": "audio/mpeg", ".ogg": "audio/ogg", ".flac": "audio/flac"}
AUDIO_TYPES[".m4a"] = "audio/mp4"
DEFAULT_MUSIC_DIR = Path("data/raw/wavs")
DEFAULT_FPS = 60.0
MUSIC_BEAT_FPS = 60  # danceba.features.music.music_features_60fps
PLAYER_DIR = Path(__file__).resolve().parent / "player"
THREE_DIR = PLAYER_DIR / "node_modules" / "three"
PLAYER_FILES = {"index.html": "text/html", "player.js": "text/javascript", "style.css": "text/css"}
THREE_SUBDIRS = ("build", "examples/jsm")  # the only parts of the three package served
MAX_POST_BYTES = 256 << 20


class ViewerInputError(ValueError):
    """A dance, music or player file the viewer cannot use; the message names it and says why."""


@dataclass(frozen=True)
class Dance:
    """One dance: ``kind`` npz | bvh | table (a sequence of a joints table), ``fps`` frames per second."""

    piece: str
    path: Path
    kind: str
    music_id: str
    fps: float
    n_frames: int
    note: str = ""


@dataclass(frozen=True)
class Track:
    """One source of dances (a folder, a file or a joints table), by piece."""

    label: str
    source: Path
    dances: Mapping[str, Dance]


# ----------------------------------------------------------------------------------------------
# Reading dances
# ----------------------------------------------------------------------------------------------


def _scalar(data: Mapping, key: str, path: Path, kind: type | tuple[type, ...], what: str) -> object | None:
    """The 0-d entry ``key`` of an npz as a Python value of ``kind``; None when absent."""
    if key not in data:
        return None
    value = data[key]
    if value.ndim != 0 or not isinstance(value.item(), kind) or isinstance(value.item(), bool):
        raise ViewerInputError(f"{path}: '{key}' must be {what}, got {value.dtype} of shape {value.shape}")
    return value.item()


def load_npz(path: Path) -> tuple[Dance, np.ndarray]:
    """A ``<piece>.npz`` dance and its joints (T, 24, 3) float32 metres, checked."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if "joints" not in data:
                raise ViewerInputError(
                    f"{path}: no 'joints' array (expected joints (T, 24, 3) metres; found {sorted(data)})"
                )
            joints = data["joints"]
            music_id = _scalar(data, "music_id", path, str, "one string") or path.stem
            fps = _scalar(data, "fps", path, (int, float), "one number")
            fps = DEFAULT_FPS if fps is None else fps
            condition = _scalar(data, "condition_music_id", path, str, "one string")
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        if isinstance(error, ViewerInputError):
            raise
        raise ViewerInputError(f"{path}: not a readable .npz file ({error})") from error
    if joints.ndim != 3 or joints.shape[1:] != (24, 3) or len(joints) < 2:
        raise ViewerInputError(f"{path}: 'joints' must have shape (T >= 2, 24, 3), got {joints.shape}")
    if not (np.issubdtype(joints.dtype, np.floating) or np.issubdtype(joints.dtype, np.integer)):
        raise ViewerInputError(f"{path}: 'joints' must be numbers, got dtype {joints.dtype}")
    if not np.isfinite(joints).all():
        raise ViewerInputError(f"{path}: 'joints' contains NaN or infinite values")
    if not (np.isfinite(fps) and fps > 0):
        raise ViewerInputError(f"{path}: 'fps' must be > 0, got {fps}")
    note = f"generated to {condition}'s music" if condition and condition != music_id else ""
    dance = Dance(path.stem, path, "npz", music_id, float(fps), len(joints), note)
    return dance, np.ascontiguousarray(joints, dtype=np.float32)


def read_bvh_header(path: Path) -> Dance:
    """A ``.bvh`` dance: checks the SMPL joint names, frame count and frame time (the motion is not read)."""
    names, frames, frame_time = set(), None, None
    try:
        with open(path, encoding="utf-8") as handle:
            first = handle.readline().strip()
            for line in handle:
                if match := re.match(r"\s*(?:ROOT|JOINT)\s+(\S+)", line):
                    names.add(match.group(1))
                elif match := re.match(r"\s*Frames:\s*(\S+)", line):
                    frames = int(match.group(1))
                elif match := re.match(r"\s*Frame Time:\s*(\S+)", line):
                    frame_time = float(match.group(1))
                    break
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ViewerInputError(f"{path}: not a readable BVH file ({error})") from error
    if first != "HIERARCHY" or frames is None or frame_time is None:
        raise ViewerInputError(
            f"{path}: not a BVH file (expected HIERARCHY ... MOTION, Frames:, Frame Time:)"
        )
    if missing := [name for name in SMPL_JOINT_NAMES if name not in names]:
        raise ViewerInputError(f"{path}: not an SMPL skeleton (joints {', '.join(missing)} missing)")
    if frames < 2 or not frame_time > 0:
        raise ViewerInputError(f"{path}: needs Frames >= 2 and Frame Time > 0, got {frames}, {frame_time}")
    fps = 1.0 / frame_time
    fps = float(round(fps)) if abs(fps - round(fps)) < 1e-3 else fps
    return Dance(path.stem, path, "bvh", path.stem, fps, frames)


def _dance_file(path: Path) -> Dance:
    if path.suffix == ".npz":
        return load_npz(path)[0]
    if path.suffix == ".bvh":
        return read_bvh_header(path)
    raise ViewerInputError(f"{path}: not a dance (expected a folder, a .npz or a .bvh file)")


def folder_dances(folder: Path) -> dict[str, Dance]:
    """{piece: dance} of a folder: every ``.npz``, and every ``.bvh`` whose stem has no ``.npz``."""
    files = sorted(folder.glob("*.npz")) + sorted(folder.glob("*.bvh"))
    dances: dict[str, Dance] = {}
    for path in files:
        if path.is_file() and path.stem not in dances:
            dances[path.stem] = _dance_file(path)
    if not dances:
        raise ViewerInputError(f"{folder}: no .npz or .bvh dances in this folder")
    return dances


def table_dances(path: Path, pieces: set[str] | None) -> dict[str, Dance]:
    """{sequence: dance} of a joints table (``data/joints.parquet``), restricted to ``pieces`` if given."""
    import pyarrow.parquet as pq

    from danceba import tables
    from danceba.data.aistpp import parse_sequence_name

    try:
        keys, meta = tables.group_keys(path), pq.ParquetFile(path).metadata
        fps = float(tables.file_metadata(path).get("fps", DEFAULT_FPS))
    except (OSError, ValueError) as error:
        raise ViewerInputError(f"{path}: not a joints table ({error})") from error
    dances = {}
    for index, key in enumerate(keys):
        if pieces is None or key in pieces:
            try:
                music_id = parse_sequence_name(key).music_id
            except ValueError:
                music_id = key
            dances[key] = Dance(key, path, "table", music_id, fps, meta.row_group(index).num_rows)
    if not dances:
        raise ViewerInputError(f"{path}: none of the {len(pieces or ())} pieces shown is in this table")
    return dances


def _labels(paths: Sequence[Path]) -> list[str]:
    """A short label per path: its name, with the parent folder's where two names are the same."""
    names = [path.name for path in paths]
    labels = [
        f"{path.parent.name}/{path.name}" if names.count(path.name) > 1 and path.parent.name else path.name
        for path in paths
    ]
    return [label if labels.count(label) == 1 else f"{label} ({i + 1})" for i, label in enumerate(labels)]


def find_tracks(paths: Sequence[Path], ground_truth: Path | None = None) -> list[Track]:
    """Tracks of the given folders and files (and the ground-truth table, on the pieces they have)."""
    tracks = []
    for path, label in zip(paths, _labels(paths), strict=True):
        if path.is_dir():
            tracks.append(Track(label, path, folder_dances(path)))
        elif path.is_file():
            dance = _dance_file(path)
            tracks.append(Track(label, path, {dance.piece: dance}))
        else:
            raise ViewerInputError(f"{path}: no such file or folder")
    if ground_truth is not None:
        if not ground_truth.is_file():
            raise ViewerInputError(f"{ground_truth}: no such joints table (--ground-truth)")
        pieces = {piece for track in tracks for piece in track.dances} if tracks else None
        tracks.insert(0, Track("ground truth", ground_truth, table_dances(ground_truth, pieces)))
    if not tracks:
        raise ViewerInputError("nothing to show: name folders of .npz, .npz or .bvh files")
    return tracks


def default_paths(root: Path = Path("data/generated")) -> list[Path]:
    """The folders of ``data/generated`` that hold dances (what ``danceba view`` shows by default)."""
    return sorted(p for p in root.glob("*") if p.is_dir() and any(p.glob("*.npz"))) if root.is_dir() else []


def find_music(music_id: str, search: Sequence[Path]) -> Path | None:
    """The first audio file whose stem is ``music_id``: a file of ``search``, or one in a folder of it."""
    for place in search:
        if place.is_file() and place.stem == music_id and place.suffix.lower() in AUDIO_TYPES:
            return place
        if place.is_dir():
            for suffix in AUDIO_TYPES:
                for candidate in (place / f"{music_id}{suffix}", place / f"{music_id}{suffix.upper()}"):
                    if candidate.is_file():
                        return candidate
    return None


def music_search_paths(music: Sequence[Path] | None) -> list[Path]:
    """The ``--music`` files and folders (checked to exist), then ``data/raw/wavs`` when it exists."""
    for path in music or ():
        if not path.exists():
            raise ViewerInputError(f"{path}: no such music file or folder (--music)")
    return [*(music or ()), *([DEFAULT_MUSIC_DIR] if DEFAULT_MUSIC_DIR.is_dir() else [])]


# ----------------------------------------------------------------------------------------------
# The catalog: what the page asks for
# ----------------------------------------------------------------------------------------------


def compute_music_beats(path: Path) -> list[int]:
    """Music beats of an audio file as BAS reads them: 60 fps frame indices (librosa, ~1 s per 12 s)."""
    from danceba.features.music import beat_frames, music_features_60fps

    return beat_frames(music_features_60fps(path)).tolist()


class Catalog:
    """Tracks, their pieces and music; payloads for the page. Thread-safe (the server is threaded)."""

    def __init__(self, tracks: Sequence[Track], music_search: Sequence[Path] = ()) -> None:
        self.tracks, self.music_search = list(tracks), list(music_search)
        self._beats: dict[Path, dict] = {}
        self._beats_lock = threading.Lock()
        self.joints = lru_cache(maxsize=32)(self._read_joints)

    def pieces(self) -> list[str]:
        return sorted({piece for track in self.tracks for piece in track.dances})

    def dances(self, piece: str) -> list[tuple[int, Dance]]:
        return [(i, t.dances[piece]) for i, t in enumerate(self.tracks) if piece in t.dances]

    def music_id(self, piece: str) -> str:
        """The piece's music: the most common ``music_id`` of its dances (first track first on ties)."""
        return Counter(dance.music_id for _, dance in self.dances(piece)).most_common(1)[0][0]

    def music_file(self, piece: str) -> Path | None:
        folders = [dance.path.parent for _, dance in self.dances(piece)]
        return find_music(self.music_id(piece), [*self.music_search, *folders])

    def warnings(self) -> list[str]:
        """What a person should know before opening the page (pieces without music)."""
        silent = sorted({self.music_id(p) for p in self.pieces() if self.music_file(p) is None})
        if not silent:
            return []
        where = ", ".join(str(p) for p in self.music_search) or "the dances' folders"
        return [
            f"no music found for {', '.join(silent[:6])}{' ...' if len(silent) > 6 else ''} (searched {where})"
        ]

    def _read_joints(self, track: int, piece: str) -> np.ndarray:
        dance = self.tracks[track].dances[piece]
        if dance.kind == "npz":
            return load_npz(dance.path)[1]
        if dance.kind == "table":
            from danceba import tables

            return tables.read_group(dance.path, piece, "joints").reshape(-1, 24, 3)
        raise ViewerInputError(f"{dance.path}: a BVH dance; its joints are computed in the page")

    def catalog_payload(self) -> dict:
        tracks = [{"index": i, "label": t.label, "source": str(t.source)} for i, t in enumerate(self.tracks)]
        pieces = [
            {"name": p, "tracks": [i for i, _ in self.dances(p)], "music": self.music_file(p) is not None}
            for p in self.pieces()
        ]
        return {
            "tracks": tracks,
            "pieces": pieces,
            "parents": SMPL_PARENTS,
            "joint_names": SMPL_JOINT_NAMES,
        }

    def piece_payload(self, piece: str) -> dict:
        """The dances of one piece (with their motion beats) and its music; KeyError for an unknown piece."""
        if piece not in self.pieces():
            raise KeyError(piece)
        music_id, music = self.music_id(piece), self.music_file(piece)
        query = f"piece={quote(piece)}"
        dances = []
        for i, dance in self.dances(piece):
            entry = {"track": i, "label": self.tracks[i].label, "kind": dance.kind, "fps": dance.fps}
            entry |= {"n_frames": dance.n_frames, "file": dance.path.name, "note": dance.note}
            if dance.music_id != music_id:
                entry["note"] = f"music {dance.music_id}; the page plays {music_id}"
            if dance.kind == "bvh":
                entry |= {"url": f"/api/bvh?track={i}&{query}", "motion_beats": None}
            else:
                beats = motion_beats(self.joints(i, piece))[0].tolist()
                entry |= {"url": f"/api/joints?track={i}&{query}", "motion_beats": beats}
            dances.append(entry)
        audio = {"url": f"/audio?{query}", "file": music.name} if music else {"url": None, "file": None}
        return {"name": piece, "music": {"id": music_id, **audio}, "dances": dances}

    def music_beats(self, piece: str) -> dict:
        """{"beats": frames at 60 fps, "fps": 60} or {"beats": None, "error": why}; cached per file."""
        path = self.music_file(piece)
        if path is None:
            return {"beats": None, "error": f"no music file for {self.music_id(piece)}"}
        with self._beats_lock:  # one computation per file, even when asked twice at once
            if path not in self._beats:
                try:
                    self._beats[path] = {"beats": compute_music_beats(path), "fps": MUSIC_BEAT_FPS}
                except Exception as error:  # any decoder/feature failure: the page shows it
                    where = "" if str(path) in str(error) else f"{path}: "
                    self._beats[path] = {"beats": None, "error": f"{where}{error}"}
        return self._beats[path]


def check_player_installed() -> None:
    """The page and three.js are in place (``make setup`` runs ``npm ci`` in danceba/player)."""
    for path in [*(PLAYER_DIR / name for name in PLAYER_FILES), THREE_DIR / "build" / "three.module.js"]:
        if not path.is_file():
            raise ViewerInputError(f"{path}: missing; run `make setup` (it runs `npm ci` in {PLAYER_DIR})")


# ----------------------------------------------------------------------------------------------
# HTTP
# ----------------------------------------------------------------------------------------------


class RangeNotSatisfiable(ValueError):
    """A Range header none of whose bytes exist (HTTP 416)."""


def parse_byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive byte range ``(first, last)`` of a ``Range: bytes=...`` header for a file of ``size``
    bytes; None to send the whole file (no header, another unit, several ranges or bad syntax: RFC 9110
    lets a server ignore those). RangeNotSatisfiable when the range starts past the end."""
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header or "")
    if match is None or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if first == "":  # the last N bytes
        if int(last) == 0 or size == 0:
            raise RangeNotSatisfiable(header)
        return max(0, size - int(last)), size - 1
    first = int(first)
    if last and int(last) < first:  # "5-3": invalid, ignored
        return None
    if first >= size:
        raise RangeNotSatisfiable(header)
    return first, min(int(last), size - 1) if last else size - 1


class ViewerHandler(BaseHTTPRequestHandler):
    """Routes of the player; see the module docstring."""

    server: ViewerServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet: one line per request is noise
        pass

    def _send(
        self, status: int, body: bytes, content_type: str, headers: Mapping[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, payload: object, status: int = HTTPStatus.OK) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _error(self, status: int, message: str) -> None:
        self._json({"error": message}, status)

    def _send_file(self, path: Path, content_type: str) -> None:
        size = path.stat().st_size
        try:
            byte_range = parse_byte_range(self.headers.get("Range"), size)
        except RangeNotSatisfiable:
            return self._send(
                HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE,
                b"",
                content_type,
                {"Content-Range": f"bytes */{size}"},
            )
        first, last = byte_range or (0, size - 1)
        self.send_response(HTTPStatus.PARTIAL_CONTENT if byte_range else HTTPStatus.OK)
        self.send_header("Content-Type", content_type)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(last - first + 1))
        if byte_range:
            self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.end_headers()
        if self.command == "HEAD":
            return
        with open(path, "rb") as handle:
            handle.seek(first)
            remaining = last - first + 1
            while remaining > 0 and (block := handle.read(min(remaining, 1 << 16))):
                self.wfile.write(block)
                remaining -= len(block)

    def _static(self, root: Path, relative: str, allowed: Sequence[str]) -> None:
        path = (root / relative).resolve()
        inside = any(path.is_relative_to((root / sub).resolve()) for sub in allowed)
        types = {
            ".js": "text/javascript",
            ".css": "text/css",
            ".html": "text/html",
            ".json": "application/json",
        }
        if not (inside and path.is_file() and path.suffix in types):
            return self._error(HTTPStatus.NOT_FOUND, f"no such file: {relative}")
        self._send_file(path, f"{types[path.suffix]}; charset=utf-8")

    def _dance(self, query: dict[str, list[str]]) -> tuple[int, str]:
        track, piece = int(query["track"][0]), query["piece"][0]
        if (
            not (0 <= track < len(self.server.catalog.tracks))
            or piece not in self.server.catalog.tracks[track].dances
        ):
            raise KeyError(f"track {track} has no piece {piece!r}")
        return track, piece

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        route, query, catalog = url.path, parse_qs(url.query), self.server.catalog
        try:
            if route in ("/", "/index.html"):
                self._send_file(PLAYER_DIR / "index.html", "text/html; charset=utf-8")
            elif route.startswith("/player/") and route[8:] in PLAYER_FILES:
                self._send_file(PLAYER_DIR / route[8:], f"{PLAYER_FILES[route[8:]]}; charset=utf-8")
            elif route.startswith("/vendor/three/"):
                self._static(THREE_DIR, route[len("/vendor/three/") :], THREE_SUBDIRS)
            elif route == "/api/catalog":
                self._json(catalog.catalog_payload())
            elif route == "/api/piece":
                self._json(catalog.piece_payload(query["name"][0]))
            elif route == "/api/joints":
                joints = catalog.joints(*self._dance(query))
                self._send(HTTPStatus.OK, joints.astype("<f4").tobytes(), "application/octet-stream")
            elif route == "/api/bvh":
                track, piece = self._dance(query)
                self._send_file(catalog.tracks[track].dances[piece].path, "text/plain; charset=utf-8")
            elif route == "/api/music-beats":
                self._json(catalog.music_beats(query["piece"][0]))
            elif route == "/audio" and (music := catalog.music_file(query["piece"][0])) is not None:
                self._send_file(music, AUDIO_TYPES[music.suffix.lower()])
            else:
                self._error(HTTPStatus.NOT_FOUND, f"no such page: {route}")
        except (KeyError, IndexError, ValueError) as error:  # missing/unknown parameters or pieces
            self._error(HTTPStatus.NOT_FOUND, f"{route}: {error}")

    def do_POST(self) -> None:
        if urlsplit(self.path).path != "/api/motion-beats":
            return self._error(HTTPStatus.NOT_FOUND, f"no such page: {self.path}")
        size = int(self.headers.get("Content-Length") or 0)
        if not 0 < size <= MAX_POST_BYTES or size % (24 * 3 * 4):
            self.close_connection = True  # the unread body would be taken for the next request
            return self._error(HTTPStatus.BAD_REQUEST, "expected float32 joints (T, 24, 3) as the body")
        joints = np.frombuffer(self.rfile.read(size), dtype="<f4").reshape(-1, 24, 3)
        if len(joints) < 2 or not np.isfinite(joints).all():
            return self._error(HTTPStatus.BAD_REQUEST, "joints: need T >= 2 finite frames")
        self._json({"beats": motion_beats(joints)[0].tolist()})


class ViewerServer(ThreadingHTTPServer):
    """The player's HTTP server on 127.0.0.1 (``port=0``: a free port); ``url`` is the page."""

    daemon_threads = True
    block_on_close = False  # Ctrl-C must not wait for a browser's idle keep-alive connections

    def __init__(self, catalog: Catalog, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), ViewerHandler)
        self.catalog = catalog

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"

    def handle_error(self, request: object, client_address: object) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):  # the page closing a media request is normal
            super().handle_error(request, client_address)
