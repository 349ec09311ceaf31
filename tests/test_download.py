"""AIST++ downloads: safe zips, resumable downloads, fetch end to end (a local server, all offline)."""

from __future__ import annotations

import hashlib
import http.server
import io
import pickle
import socket
import stat
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from danceba.data import aistpp, download
from danceba.data.aistpp import AistppFormatError, AistppLayout
from danceba.data.download import DownloadError, RemoteFile, UnsafeArchiveError
from tests.test_aistpp import TEST, TRAIN, _motion_dict

# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


def _zip_bytes(members: dict[str, bytes], symlinks: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            if name in symlinks:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, data)
    return buffer.getvalue()


class _Server(http.server.ThreadingHTTPServer):
    files: dict[str, bytes]
    honour_range: bool
    cut_at: int | None  # send only this many bytes once, then drop the connection
    requests_seen: list[tuple[str, str | None]]


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files`` with (optional) HTTP Range support and records each request."""

    server: _Server

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        path, wanted = self.path, self.headers.get("Range")
        self.server.requests_seen.append((path, wanted))
        if path not in self.server.files:
            self.send_error(403 if path.endswith("forbidden.zip") else 404)
            return
        data = self.server.files[path]
        start = int(wanted.removeprefix("bytes=").rstrip("-")) if wanted and self.server.honour_range else 0
        if start >= len(data) and start:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.end_headers()
            return
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        if self.server.cut_at is not None:
            self.wfile.write(data[start : self.server.cut_at])
            self.server.cut_at, self.close_connection = None, True
            return
        self.wfile.write(data[start:])


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Server]:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.files, httpd.honour_range, httpd.cut_at, httpd.requests_seen = {}, True, None, []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def _url(server: _Server, path: str) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


# ----------------------------------------------------------------------------------------------
# zip extraction
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("member", "symlink"),
    [("../evil.txt", False), ("ok/../../evil.txt", False), ("/tmp/evil_abs.txt", False), ("link", True)],
)
def test_safe_extract_zip_refuses_escaping_members(tmp_path: Path, member: str, symlink: bool) -> None:
    archive = tmp_path / "bad.zip"
    members = {"good.txt": b"fine", member: b"/etc/passwd" if symlink else b"evil"}
    archive.write_bytes(_zip_bytes(members, symlinks=(member,) if symlink else ()))
    target = tmp_path / "out"
    with pytest.raises(UnsafeArchiveError, match=r"bad\.zip") as caught:
        download.safe_extract_zip(archive, target)
    assert repr(member) in str(caught.value)
    assert not (tmp_path / "evil.txt").exists() and not Path("/tmp/evil_abs.txt").exists()
    assert not target.exists() or not any(target.rglob("*"))  # nothing at all was written


def test_safe_extract_zip_extracts_and_rejects_non_zip(tmp_path: Path) -> None:
    archive = tmp_path / "ok.zip"
    archive.write_bytes(_zip_bytes({"a/b.txt": b"hello", "c.txt": b"x"}))
    written = download.safe_extract_zip(archive, tmp_path / "out")
    assert sorted(p.relative_to((tmp_path / "out").resolve()).as_posix() for p in written) == [
        "a/b.txt",
        "c.txt",
    ]
    assert (tmp_path / "out" / "a" / "b.txt").read_bytes() == b"hello"
    not_zip = tmp_path / "motions.zip"
    not_zip.write_bytes(b"this is an html error page, not a zip")
    with pytest.raises(AistppFormatError, match=r"motions\.zip: not a valid zip"):
        download.safe_extract_zip(not_zip, tmp_path / "out2")


# ----------------------------------------------------------------------------------------------
# downloads (local http server on 127.0.0.1)
# ----------------------------------------------------------------------------------------------

PAYLOAD = bytes(range(256)) * 400  # 102,400 bytes
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


def test_download_file_full_and_skip_existing(tmp_path: Path, server: _Server) -> None:
    server.files["/data.bin"] = PAYLOAD
    dest = tmp_path / "dl" / "data.bin"
    got = download.download_file(_url(server, "/data.bin"), dest, PAYLOAD_SHA, len(PAYLOAD), progress=False)
    assert got == dest and dest.read_bytes() == PAYLOAD and not (tmp_path / "dl" / "data.bin.part").exists()
    download.download_file(_url(server, "/data.bin"), dest, PAYLOAD_SHA, progress=False)
    assert len(server.requests_seen) == 1  # the complete file was not downloaded again


@pytest.mark.parametrize("honour_range", [True, False])
def test_download_file_resumes_from_part(tmp_path: Path, server: _Server, honour_range: bool) -> None:
    server.files["/data.bin"] = PAYLOAD
    server.honour_range = honour_range
    dest = tmp_path / "data.bin"
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD[:30000])
    download.download_file(_url(server, "/data.bin"), dest, PAYLOAD_SHA, progress=False)
    assert server.requests_seen == [("/data.bin", "bytes=30000-")]
    assert dest.read_bytes() == PAYLOAD


def test_download_file_interrupted_then_resumed(tmp_path: Path, server: _Server) -> None:
    server.files["/data.bin"] = PAYLOAD
    server.cut_at = 80000
    dest = tmp_path / "data.bin"
    with pytest.raises(DownloadError, match="run again to resume"):
        download.download_file(_url(server, "/data.bin"), dest, PAYLOAD_SHA, progress=False)
    kept = (tmp_path / "data.bin.part").stat().st_size  # whole chunks received before the drop
    assert not dest.exists() and 0 < kept <= 80000
    download.download_file(_url(server, "/data.bin"), dest, PAYLOAD_SHA, progress=False)
    assert server.requests_seen == [("/data.bin", None), ("/data.bin", f"bytes={kept}-")]
    assert dest.read_bytes() == PAYLOAD


def test_download_file_part_already_complete(tmp_path: Path, server: _Server) -> None:
    server.files["/data.bin"] = PAYLOAD
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD)
    download.download_file(_url(server, "/data.bin"), tmp_path / "data.bin", PAYLOAD_SHA, progress=False)
    assert (tmp_path / "data.bin").read_bytes() == PAYLOAD


def test_download_file_checksum_mismatch_deletes_part(tmp_path: Path, server: _Server) -> None:
    server.files["/data.bin"] = PAYLOAD
    dest = tmp_path / "data.bin"
    with pytest.raises(DownloadError, match="sha256") as caught:
        download.download_file(_url(server, "/data.bin"), dest, "0" * 64, progress=False)
    assert str(dest) in str(caught.value)
    assert not dest.exists() and not (tmp_path / "data.bin.part").exists()
    dest.write_bytes(b"something else")  # a wrong file put there by hand is reported, not overwritten
    with pytest.raises(DownloadError, match="existing file"):
        download.download_file(_url(server, "/data.bin"), dest, PAYLOAD_SHA, progress=False)


def test_download_file_http_error(tmp_path: Path, server: _Server) -> None:
    with pytest.raises(DownloadError, match="HTTP 404") as caught:
        download.download_file(_url(server, "/missing.zip"), tmp_path / "missing.zip", progress=False)
    assert str(tmp_path / "missing.zip") in str(caught.value)


def test_download_file_offline_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    with socket.socket() as probe:  # a port that nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dest = tmp_path / "motions.zip"
    url = f"http://127.0.0.1:{port}/motions.zip"
    with pytest.raises(DownloadError, match="cannot reach") as caught:
        download.download_file(url, dest, timeout=5, progress=False)
    assert url in str(caught.value) and str(dest) in str(caught.value) and "by hand" in str(caught.value)
    assert isinstance(caught.value, OSError)


# ----------------------------------------------------------------------------------------------
# fetch: download + extract + normalise, end to end against the local server
# ----------------------------------------------------------------------------------------------


def _published_archives(rng: np.random.Generator) -> dict[str, bytes]:
    """A miniature of the release assets, each in the folder structure its archive might use."""
    motions = {}
    for name in (*TRAIN, *TEST):
        buffer = io.BytesIO()
        pickle.dump(_motion_dict(rng), buffer, protocol=4)
        motions[f"motions/{name}.pkl"] = buffer.getvalue()
        motions[f"__MACOSX/motions/._{name}.pkl"] = b"\x00\x05\x16\x07"
    splits = {
        "splits/crossmodal_train.txt": "\n".join(TRAIN).encode(),
        "splits/crossmodal_val.txt": "\n".join(TEST).encode(),
        "splits/crossmodal_test.txt": "\n".join(TEST).encode(),
        "splits/pose_train.txt": TRAIN[0].encode(),
    }
    wavs = {f"wav/{music}.wav": b"RIFF" + music.encode() for music in ("mBR0", "mBR1", "mPO3", "mHO2")}
    return {
        "/motions.zip": _zip_bytes(motions),
        "/splits.zip": _zip_bytes(splits),
        "/ignore_list.txt": f"{TRAIN[1]}\n".encode(),
        "/wav.zip": _zip_bytes(wavs),
    }


def test_fetch_aistpp_end_to_end_and_idempotent(
    tmp_path: Path, server: _Server, rng: np.random.Generator
) -> None:
    server.files.update(_published_archives(rng))
    extras = [
        RemoteFile(_url(server, "/splits.zip"), hashlib.sha256(server.files["/splits.zip"]).hexdigest())
    ]
    extras.append(RemoteFile(_url(server, "/ignore_list.txt"), size=len(server.files["/ignore_list.txt"])))
    kwargs = dict(
        annotations_url=_url(server, "/motions.zip"),
        music_url=_url(server, "/wav.zip"),
        extra_annotations=extras,
        progress=False,
    )
    layout = download.fetch_aistpp(tmp_path / "downloads", tmp_path / "aistpp", **kwargs)
    assert layout.root == tmp_path / "aistpp"
    assert aistpp.validate_layout(layout).n_sequences == 3
    assert sorted(p.name for p in layout.motions_dir.iterdir()) == sorted(f"{n}.pkl" for n in (*TRAIN, *TEST))
    assert layout.wav_path("mBR0").read_bytes() == b"RIFFmBR0"
    assert aistpp.read_split(layout, "pose_train") == [TRAIN[0]]
    assert aistpp.read_motion_pkl(layout.motion_path(TEST[0])).n_frames == 5
    assert not (tmp_path / "downloads" / "extracted").exists() or not any(
        (tmp_path / "downloads" / "extracted").iterdir()
    )
    assert len(server.requests_seen) == 4
    download.fetch_aistpp(tmp_path / "downloads", tmp_path / "aistpp", **kwargs)
    assert len(server.requests_seen) == 4  # complete layout: nothing downloaded again
    layout.wav_path("mBR0").unlink()
    download.fetch_aistpp(tmp_path / "downloads", tmp_path / "aistpp", **kwargs)
    assert layout.wav_path("mBR0").is_file() and len(server.requests_seen) == 4  # re-extracted from wav.zip


def test_fetch_aistpp_fullset_archive_and_music_by_hand(
    tmp_path: Path, server: _Server, rng: np.random.Generator
) -> None:
    archives = _published_archives(rng)
    fullset = {}
    for source in ("/motions.zip", "/splits.zip"):
        with zipfile.ZipFile(io.BytesIO(archives[source])) as archive:
            fullset.update({f"aist_plusplus_final/{n}": archive.read(n) for n in archive.namelist()})
    fullset[f"aist_plusplus_final/keypoints3d/{TRAIN[0]}.pkl"] = b"not a motion"
    fullset["aist_plusplus_final/ignore_list.txt"] = archives["/ignore_list.txt"]
    server.files["/fullset.zip"] = _zip_bytes(fullset)
    layout = AistppLayout(tmp_path / "aistpp")
    kwargs = dict(
        annotations_url=_url(server, "/fullset.zip"),
        music_url=_url(server, "/forbidden.zip"),
        extra_annotations=[RemoteFile(_url(server, "/never.zip"))],
        progress=False,
    )
    with pytest.raises(DownloadError, match="HTTP 403") as caught:
        download.fetch_aistpp(tmp_path / "downloads", layout.root, **kwargs)
    assert str(layout.wavs_dir) in str(caught.value) and "terms of use" in str(caught.value)
    assert [path for path, _ in server.requests_seen] == ["/fullset.zip", "/forbidden.zip"]
    assert aistpp.read_motion_pkl(layout.motion_path(TRAIN[0])).n_frames == 5  # not the keypoints file
    layout.wavs_dir.mkdir()
    for music in ("mBR0", "mBR1", "mPO3"):  # the user puts the music there by hand
        layout.wav_path(music).write_bytes(b"RIFF")
    download.fetch_aistpp(tmp_path / "downloads", layout.root, **kwargs)
    assert len(server.requests_seen) == 2
