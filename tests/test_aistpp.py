"""AIST++ ingestion: names, tempo table, safe pickles, splits, safe zips, resumable downloads (all offline)."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import pickle
import re
import socket
import stat
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from danceba.data import aistpp
from danceba.data.aistpp import (
    AistppFormatError,
    AistppLayout,
    DownloadError,
    LayoutError,
    RemoteFile,
    UnsafeArchiveError,
    UnsafePickleError,
)

SEQ = "gBR_sBM_cAll_d04_mBR0_ch01"


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


def _motion_dict(rng: np.random.Generator, n: int = 5, pose_shape: str = "flat") -> dict:
    poses = rng.normal(size=(n, 72)).astype(np.float32)
    return {
        "smpl_poses": poses if pose_shape == "flat" else poses.reshape(n, 24, 3),
        "smpl_trans": rng.normal(size=(n, 3)).astype(np.float32) * 50,
        "smpl_scaling": np.array([93.5]),
        "smpl_loss": np.float64(0.25),
    }


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
# names, tempo, layout
# ----------------------------------------------------------------------------------------------


def test_parse_sequence_name_gives_every_part() -> None:
    parts = aistpp.parse_sequence_name(SEQ)
    assert (parts.genre, parts.situation, parts.camera, parts.dancer, parts.music_id, parts.choreography) == (
        "gBR",
        "sBM",
        "cAll",
        "d04",
        "mBR0",
        "ch01",
    )
    assert parts.name == SEQ
    assert parts.genre_name == "Break"
    assert aistpp.parse_sequence_name("gHO_sFM_c03_d20_mHO5_ch21").camera == "c03"


@pytest.mark.parametrize(
    "bad",
    ["", "gBR_sBM_cAll_d04_mBR0", f"{SEQ}.pkl", f"../{SEQ}", "gXX_sBM_cAll_d04_mBR0_ch01", SEQ.lower()],
)
def test_parse_sequence_name_rejects_malformed(bad: str) -> None:
    with pytest.raises(ValueError, match="sequence name"):
        aistpp.parse_sequence_name(bad)


def test_music_tempo_table_and_genres() -> None:
    assert [aistpp.music_tempo_bpm(f"mBR{d}") for d in range(6)] == [80, 90, 100, 110, 120, 130]
    assert [aistpp.music_tempo_bpm(f"mHO{d}") for d in range(6)] == [110, 115, 120, 125, 130, 135]
    assert aistpp.music_tempo_bpm("mJB3") == 110.0
    assert len(aistpp.GENRES) == 10 and aistpp.GENRES["gLH"] == "LA style Hip-hop"
    for bad in ("mXX0", "mBR9", "BR0", "mBR"):
        with pytest.raises(ValueError, match=bad):
            aistpp.music_tempo_bpm(bad)


def test_layout_paths(tmp_path: Path) -> None:
    layout = AistppLayout(tmp_path)
    assert layout.motion_path(SEQ) == tmp_path / "motions" / f"{SEQ}.pkl"
    assert layout.wav_path("mBR0") == tmp_path / "wavs" / "mBR0.wav"
    assert layout.split_path("val") == tmp_path / "splits" / "crossmodal_val.txt"
    assert layout.split_path("pose_test") == tmp_path / "splits" / "pose_test.txt"
    assert layout.ignore_list == tmp_path / "ignore_list.txt"
    with pytest.raises(ValueError):
        layout.motion_path("../../etc/passwd")
    with pytest.raises(ValueError):
        layout.wav_path("../x")
    with pytest.raises(ValueError, match="unknown split"):
        layout.split_path("holdout")


# ----------------------------------------------------------------------------------------------
# motion pickles
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize("pose_shape", ["flat", "joints"])
def test_read_motion_pkl_accepts_both_pose_shapes(
    tmp_path: Path, rng: np.random.Generator, protocol: int, pose_shape: str
) -> None:
    data = _motion_dict(rng, pose_shape=pose_shape)
    path = tmp_path / f"{SEQ}.pkl"
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    motion = aistpp.read_motion_pkl(path)
    assert motion.poses.shape == (5, 24, 3) and motion.poses.dtype == np.float32
    np.testing.assert_array_equal(motion.poses.reshape(5, 72), data["smpl_poses"].reshape(5, 72))
    assert motion.trans.dtype == np.float32 and motion.scaling == pytest.approx(93.5)
    np.testing.assert_allclose(motion.trans_normalised, data["smpl_trans"] / 93.5, rtol=1e-6)
    assert not motion.poses.flags.writeable


def test_read_motion_pkl_accepts_numpy1_module_names(tmp_path: Path, rng: np.random.Generator) -> None:
    data = pickle.dumps(_motion_dict(rng), protocol=2).replace(
        b"numpy._core.multiarray", b"numpy.core.multiarray"
    )
    assert b"numpy.core.multiarray" in data
    path = tmp_path / "old.pkl"
    path.write_bytes(data)
    assert aistpp.read_motion_pkl(path).n_frames == 5


def test_write_motion_pkl_matches_published_format(tmp_path: Path, rng: np.random.Generator) -> None:
    source = _motion_dict(rng, n=7, pose_shape="joints")
    path = tmp_path / "motions" / f"{SEQ}.pkl"
    aistpp.write_motion_pkl(path, source["smpl_poses"], source["smpl_trans"], 2.0, loss=0.5)
    with path.open("rb") as handle:  # written by this test a line above, so plain pickle is fine
        raw = pickle.load(handle)
    assert set(raw) == {"smpl_poses", "smpl_trans", "smpl_scaling", "smpl_loss"}
    assert raw["smpl_poses"].shape == (7, 72) and raw["smpl_poses"].dtype == np.float32
    assert raw["smpl_trans"].shape == (7, 3) and raw["smpl_scaling"].shape == (1,)
    motion = aistpp.read_motion_pkl(path)
    np.testing.assert_array_equal(motion.poses, source["smpl_poses"])
    np.testing.assert_allclose(motion.trans_normalised, source["smpl_trans"] / 2.0)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind
    with pytest.raises(AistppFormatError, match="smpl_scaling"):
        aistpp.write_motion_pkl(tmp_path / "bad.pkl", source["smpl_poses"], source["smpl_trans"], 0.0)
    assert not (tmp_path / "bad.pkl").exists()


class _RunsShell:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple:
        return (os.system, (self.command,))


class _RunsEval:
    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self) -> tuple:
        return (eval, (self.code,))


@pytest.mark.parametrize("kind", ["os.system", "builtins.eval", "nested"])
def test_read_motion_pkl_refuses_malicious_pickle(
    tmp_path: Path, rng: np.random.Generator, kind: str
) -> None:
    marker = tmp_path / "pwned"
    if kind == "os.system":
        payload: object = _RunsShell(f"touch {marker}")
    elif kind == "builtins.eval":
        payload = _RunsEval(f"open({str(marker)!r}, 'w').close()")
    else:  # an otherwise valid motion with the exploit hidden in one value
        payload = {**_motion_dict(rng), "smpl_loss": _RunsShell(f"touch {marker}")}
    path = tmp_path / f"{SEQ}.pkl"
    path.write_bytes(pickle.dumps(payload, protocol=4))
    with pytest.raises(UnsafePickleError) as caught:
        aistpp.read_motion_pkl(path)
    assert str(path) in str(caught.value)
    assert ("system" in str(caught.value)) or ("eval" in str(caught.value))
    assert not marker.exists()


def test_read_motion_pkl_refuses_unlisted_numpy_global(tmp_path: Path) -> None:
    path = tmp_path / "np.pkl"
    path.write_bytes(pickle.dumps(np.load, protocol=4))
    with pytest.raises(UnsafePickleError, match=r"numpy\..*load"):
        aistpp.read_motion_pkl(path)


def test_read_motion_pkl_truncated_file_names_file(tmp_path: Path, rng: np.random.Generator) -> None:
    data = pickle.dumps(_motion_dict(rng), protocol=4)
    path = tmp_path / f"{SEQ}.pkl"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(AistppFormatError, match="truncated or corrupt") as caught:
        aistpp.read_motion_pkl(path)
    assert str(path) in str(caught.value)
    path.write_bytes(b"")
    with pytest.raises(AistppFormatError, match=re.escape(str(path))):
        aistpp.read_motion_pkl(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"smpl_trans": None}, "missing keys"),
        ({"smpl_trans": np.zeros((4, 3))}, "smpl_trans"),
        ({"smpl_poses": np.zeros((5, 70))}, "smpl_poses"),
        ({"smpl_poses": np.full((5, 72), np.nan)}, "NaN"),
        ({"smpl_scaling": np.array([-1.0])}, "smpl_scaling"),
        ({"smpl_scaling": np.array([1.0, 2.0])}, "smpl_scaling"),
    ],
)
def test_read_motion_pkl_validates_content(
    tmp_path: Path, rng: np.random.Generator, change: dict, message: str
) -> None:
    data = _motion_dict(rng)
    for key, value in change.items():
        if value is None:
            del data[key]
        else:
            data[key] = value
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps(data, protocol=4))
    with pytest.raises(AistppFormatError, match=message) as caught:
        aistpp.read_motion_pkl(path)
    assert str(path) in str(caught.value)


# ----------------------------------------------------------------------------------------------
# splits, ignore list, validation
# ----------------------------------------------------------------------------------------------

TRAIN = ["gBR_sBM_cAll_d04_mBR1_ch01", "gHO_sFM_cAll_d20_mHO2_ch09", "gPO_sBM_cAll_d10_mPO3_ch03"]
TEST = ["gBR_sBM_cAll_d04_mBR0_ch02"]


def _write_splits(layout: AistppLayout, val: list[str] | None = None) -> None:
    layout.splits_dir.mkdir(parents=True)
    layout.split_path("train").write_text("# comment\n" + "\n".join(TRAIN) + "\n\n")
    layout.split_path("val").write_text("\n".join(val if val is not None else TEST) + "\n")
    layout.split_path("test").write_text("\r\n".join(TEST) + "\r\n")
    layout.ignore_list.write_text(f"{TRAIN[1]}.json\n")


def test_read_split_ignore_list_and_list_sequences(tmp_path: Path, rng: np.random.Generator) -> None:
    layout = AistppLayout(tmp_path)
    _write_splits(layout)
    assert aistpp.read_split(layout, "train") == TRAIN
    assert aistpp.read_split(layout, "test") == TEST
    assert aistpp.read_ignore_list(layout) == {TRAIN[1]}
    assert aistpp.list_sequences(layout, "train") == [TRAIN[0], TRAIN[2]]
    assert aistpp.list_sequences(layout, "train", drop_ignored=False) == TRAIN
    for name in (*TRAIN, *TEST):
        motion = _motion_dict(rng)
        aistpp.write_motion_pkl(layout.motion_path(name), motion["smpl_poses"], motion["smpl_trans"], 1.0)
    assert aistpp.list_sequences(layout) == sorted([TRAIN[0], TRAIN[2], *TEST])


def test_split_errors_name_the_file(tmp_path: Path) -> None:
    layout = AistppLayout(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"crossmodal_train\.txt"):
        aistpp.read_split(layout, "train")
    with pytest.raises(FileNotFoundError, match=r"ignore_list\.txt"):
        aistpp.read_ignore_list(layout)
    _write_splits(layout, val=[TEST[0], "not_a_sequence"])
    with pytest.raises(AistppFormatError, match=r"crossmodal_val\.txt:2: .*not_a_sequence"):
        aistpp.read_split(layout, "val")


def test_validate_layout_reports_what_is_missing(tmp_path: Path, rng: np.random.Generator) -> None:
    layout = AistppLayout(tmp_path)
    report = aistpp.validate_layout(layout, strict=False)
    assert not report.complete and str(layout.ignore_list) in report.missing
    assert str(layout.split_path("val")) in report.missing
    _write_splits(layout)
    for name in (TRAIN[0], TRAIN[2], TEST[0]):
        motion = _motion_dict(rng)
        aistpp.write_motion_pkl(layout.motion_path(name), motion["smpl_poses"], motion["smpl_trans"], 1.0)
    for music in ("mBR1", "mPO3"):
        layout.wavs_dir.mkdir(exist_ok=True)
        layout.wav_path(music).write_bytes(b"RIFF")
    report = aistpp.validate_layout(layout, strict=False)
    assert report.missing == (str(layout.wav_path("mBR0")),)  # the ignored mHO2 sequence is not needed
    with pytest.raises(LayoutError, match=r"mBR0\.wav"):
        aistpp.validate_layout(layout)
    layout.wav_path("mBR0").write_bytes(b"RIFF")
    report = aistpp.validate_layout(layout)
    assert report.complete and report.n_sequences == 3 and report.n_music == 3


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
        aistpp.safe_extract_zip(archive, target)
    assert repr(member) in str(caught.value)
    assert not (tmp_path / "evil.txt").exists() and not Path("/tmp/evil_abs.txt").exists()
    assert not target.exists() or not any(target.rglob("*"))  # nothing at all was written


def test_safe_extract_zip_extracts_and_rejects_non_zip(tmp_path: Path) -> None:
    archive = tmp_path / "ok.zip"
    archive.write_bytes(_zip_bytes({"a/b.txt": b"hello", "c.txt": b"x"}))
    written = aistpp.safe_extract_zip(archive, tmp_path / "out")
    assert sorted(p.relative_to((tmp_path / "out").resolve()).as_posix() for p in written) == [
        "a/b.txt",
        "c.txt",
    ]
    assert (tmp_path / "out" / "a" / "b.txt").read_bytes() == b"hello"
    not_zip = tmp_path / "motions.zip"
    not_zip.write_bytes(b"this is an html error page, not a zip")
    with pytest.raises(AistppFormatError, match=r"motions\.zip: not a valid zip"):
        aistpp.safe_extract_zip(not_zip, tmp_path / "out2")


# ----------------------------------------------------------------------------------------------
# downloads (local http server on 127.0.0.1)
# ----------------------------------------------------------------------------------------------

PAYLOAD = bytes(range(256)) * 400  # 102,400 bytes
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


def test_download_file_full_and_skip_existing(tmp_path: Path, server: _Server) -> None:
    server.files["/data.bin"] = PAYLOAD
    dest = tmp_path / "dl" / "data.bin"
    got = aistpp.download_file(_url(server, "/data.bin"), dest, PAYLOAD_SHA, len(PAYLOAD), progress=False)
    assert got == dest and dest.read_bytes() == PAYLOAD and not (tmp_path / "dl" / "data.bin.part").exists()
    aistpp.download_file(_url(server, "/data.bin"), dest, PAYLOAD_SHA, progress=False)
    assert len(server.requests_seen) == 1  # the complete file was not downloaded again


@pytest.mark.parametrize("honour_range", [True, False])
def test_download_file_resumes_from_part(tmp_path: Path, server: _Server, honour_range: bool) -> None:
    server.files["/data.bin"] = PAYLOAD
    server.honour_range = honour_range
    dest = tmp_path / "data.bin"
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD[:30000])
    aistpp.download_file(_url(server, "/data.bin"), dest, PAYLOAD_SHA, progress=False)
    assert server.requests_seen == [("/data.bin", "bytes=30000-")]
    assert dest.read_bytes() == PAYLOAD


def test_download_file_interrupted_then_resumed(tmp_path: Path, server: _Server) -> None:
    server.files["/data.bin"] = PAYLOAD
    server.cut_at = 80000
    dest = tmp_path / "data.bin"
    with pytest.raises(DownloadError, match="run again to resume"):
        aistpp.download_file(_url(server, "/data.bin"), dest, PAYLOAD_SHA, progress=False)
    kept = (tmp_path / "data.bin.part").stat().st_size  # whole chunks received before the drop
    assert not dest.exists() and 0 < kept <= 80000
    aistpp.download_file(_url(server, "/data.bin"), dest, PAYLOAD_SHA, progress=False)
    assert server.requests_seen == [("/data.bin", None), ("/data.bin", f"bytes={kept}-")]
    assert dest.read_bytes() == PAYLOAD


def test_download_file_part_already_complete(tmp_path: Path, server: _Server) -> None:
    server.files["/data.bin"] = PAYLOAD
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD)
    aistpp.download_file(_url(server, "/data.bin"), tmp_path / "data.bin", PAYLOAD_SHA, progress=False)
    assert (tmp_path / "data.bin").read_bytes() == PAYLOAD


def test_download_file_checksum_mismatch_deletes_part(tmp_path: Path, server: _Server) -> None:
    server.files["/data.bin"] = PAYLOAD
    dest = tmp_path / "data.bin"
    with pytest.raises(DownloadError, match="sha256") as caught:
        aistpp.download_file(_url(server, "/data.bin"), dest, "0" * 64, progress=False)
    assert str(dest) in str(caught.value)
    assert not dest.exists() and not (tmp_path / "data.bin.part").exists()
    dest.write_bytes(b"something else")  # a wrong file put there by hand is reported, not overwritten
    with pytest.raises(DownloadError, match="existing file"):
        aistpp.download_file(_url(server, "/data.bin"), dest, PAYLOAD_SHA, progress=False)


def test_download_file_http_error(tmp_path: Path, server: _Server) -> None:
    with pytest.raises(DownloadError, match="HTTP 404") as caught:
        aistpp.download_file(_url(server, "/missing.zip"), tmp_path / "missing.zip", progress=False)
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
        aistpp.download_file(url, dest, timeout=5, progress=False)
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
    layout = aistpp.fetch_aistpp(tmp_path / "downloads", tmp_path / "aistpp", **kwargs)
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
    aistpp.fetch_aistpp(tmp_path / "downloads", tmp_path / "aistpp", **kwargs)
    assert len(server.requests_seen) == 4  # complete layout: nothing downloaded again
    layout.wav_path("mBR0").unlink()
    aistpp.fetch_aistpp(tmp_path / "downloads", tmp_path / "aistpp", **kwargs)
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
        aistpp.fetch_aistpp(tmp_path / "downloads", layout.root, **kwargs)
    assert str(layout.wavs_dir) in str(caught.value) and "terms of use" in str(caught.value)
    assert [path for path, _ in server.requests_seen] == ["/fullset.zip", "/forbidden.zip"]
    assert aistpp.read_motion_pkl(layout.motion_path(TRAIN[0])).n_frames == 5  # not the keypoints file
    layout.wavs_dir.mkdir()
    for music in ("mBR0", "mBR1", "mPO3"):  # the user puts the music there by hand
        layout.wav_path(music).write_bytes(b"RIFF")
    aistpp.fetch_aistpp(tmp_path / "downloads", layout.root, **kwargs)
    assert len(server.requests_seen) == 2
