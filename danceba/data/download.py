"""Downloading AIST++: resumable, checksummed downloads, safe zip extraction, and moving what the
archives hold into the layout of :mod:`danceba.data.aistpp`.

The published files arrive differently: the AIST++ GitHub release v1.0 ships ``motions.zip``,
``splits.zip`` and ``ignore_list.txt`` as separate assets, the older ``fullset.zip`` unpacks to
``aist_plusplus_final/{motions,splits,...}`` plus ``ignore_list.txt``, and the AIST Dance DB gives the
music as ``wav.zip``. :func:`fetch_aistpp` downloads (resumable, checksummed), extracts safely and
moves what it finds into the layout, wherever the archive put it.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import requests
from tqdm import tqdm

from danceba.atomic import atomic_path
from danceba.data.aistpp import (
    MUSIC_ID_RE,
    SEQUENCE_RE,
    SPLIT_FILE_RE,
    AistppFormatError,
    AistppLayout,
    validate_layout,
)
from danceba.nested import file_digest

AISTPP_RELEASE_URL = "https://github.com/google/aistplusplus_dataset/releases/download/v1.0"
AISTPP_MOTIONS_URL = f"{AISTPP_RELEASE_URL}/motions.zip"
AIST_MUSIC_URL = "https://aistdancedb.ongaaccel.jp/v1.0.0/audio/wav.zip"
AIST_MUSIC_PAGE = "https://aistdancedb.ongaaccel.jp/database_download/"
AIST_TERMS_URL = "https://aistdancedb.ongaaccel.jp/terms_of_use/"


class UnsafeArchiveError(AistppFormatError):
    """A zip member would be written outside the extraction folder."""


class DownloadError(OSError):
    """A download failed; the message says what to do instead (e.g. fetch the file by hand)."""


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


def _mismatch(path: Path, sha256: str | None, size: int | None) -> str | None:
    """Why ``path`` does not match the expected size/checksum, or None when it does."""
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        return f"size {actual_size} bytes, expected {size}"
    if sha256 is not None:
        actual = file_digest([path])
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
    if path.suffix == ".txt" and (SPLIT_FILE_RE.fullmatch(path.stem) or "splits" in parts[:-1]):
        return layout.splits_dir / path.name
    if path.suffix == ".wav" and MUSIC_ID_RE.fullmatch(path.stem):
        return layout.wav_path(path.stem)
    if path.suffix == ".pkl" and SEQUENCE_RE.fullmatch(path.stem):
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
