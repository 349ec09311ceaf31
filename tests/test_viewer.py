"""``danceba view``: finding dances, payloads, errors, the HTTP server (Range requests), and the page in
headless Chromium (what is drawn against the npz/BVH it came from, the audio clock, a screenshot).

The browser tests need /usr/bin/chromium (``make browser`` installs it as root) and playwright (the dev
extra); they are skipped with the reason otherwise. ``python -m tests.test_viewer OUT.png PATH ...``
takes the README's screenshot of ``danceba view PATH ...``.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from danceba import viewer
from danceba.cli import main
from danceba.features.motion import motion_beats
from danceba.motion.skeleton import SMPL_PARENTS
from tests.project_files import ROOT

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--mute-audio",
]
FPS = 60
BACKGROUND = (0x15, 0x18, 0x1D)  # player.js BACKGROUND


# ----------------------------------------------------------------------------------------------
# Tiny dances and music
# ----------------------------------------------------------------------------------------------


def dance_joints(seed: int, n_frames: int = 180) -> np.ndarray:
    """A smooth SMPL dance (T, 24, 3) float32: forward kinematics of swinging joints, pelvis at 0.95 m."""
    from danceba.motion.skeleton import forward_kinematics

    rng = np.random.default_rng(seed)
    t = np.arange(n_frames)[:, None, None] / FPS
    amplitude, rate, phase = rng.uniform(0.1, 0.5, (3, 24, 3)) * [[[1]], [[4]], [[6]]]
    rotations = amplitude * np.sin(2 * np.pi * (1 + rate) * t + phase)
    seconds = t[:, 0, 0]
    trans = np.stack(
        [0.2 * np.sin(seconds * (1 + seed)), 0.95 + 0.03 * np.sin(4 * np.pi * seconds), 0 * seconds], -1
    )
    return forward_kinematics(rotations, trans).astype(np.float32)


def write_npz(path: Path, joints: np.ndarray, music_id: str, **extra: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, joints=joints, music_id=np.array(music_id), fps=np.array(FPS), **extra)
    return path


def write_clicks(path: Path, seconds: float = 4.0, bpm: float = 120.0, rate: int = 22050) -> Path:
    """A C-E dyad with a 1 kHz click on every beat from 0.25 s (as tests/test_music_features.py), 16-bit WAV."""
    time_ = np.arange(int(seconds * rate)) / rate
    audio = 0.05 * np.sin(2 * np.pi * 261.63 * time_) + 0.05 * np.sin(2 * np.pi * 329.63 * time_)
    for onset in np.arange(0.25, seconds, 60.0 / bpm):
        since = time_ - onset
        inside = (since >= 0) & (since < 0.08)
        envelope = np.exp(-since[inside] / 0.015) * np.minimum(1.0, since[inside] / 0.002)
        audio[inside] += 0.8 * envelope * np.sin(2 * np.pi * 1000.0 * since[inside])
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((0.9 * 32767 * audio).astype("<i2").tobytes())
    return path


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Two tracks (model: pieces A and B; random: piece A, another motion), music for A only."""
    root = tmp_path_factory.mktemp("viewer")
    joints = {"model/A": dance_joints(1), "random/A": dance_joints(2), "model/B": dance_joints(3, 150)}
    for key, value in joints.items():
        track, piece = key.split("/")
        write_npz(root / track / f"piece{piece}.npz", value, f"song{piece}")
    wav = write_clicks(root / "music" / "songA.wav")
    return {"root": root, "joints": joints, "wav": wav, "paths": [root / "model", root / "random"]}


@pytest.fixture(scope="module")
def catalog(scene: dict) -> viewer.Catalog:
    return viewer.Catalog(viewer.find_tracks(scene["paths"]), [scene["root"] / "music"])


@contextmanager
def serving(catalog: viewer.Catalog) -> Iterator[viewer.ViewerServer]:
    server = viewer.ViewerServer(catalog, 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def server(catalog: viewer.Catalog) -> Iterator[viewer.ViewerServer]:
    with serving(catalog) as running:
        yield running


def get(server: viewer.ViewerServer, path: str, headers: dict | None = None, method: str = "GET", body=None):
    """(status, headers, body bytes) of one request."""
    connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=60)
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    result = response.status, dict(response.getheaders()), response.read()
    connection.close()
    return result


# ----------------------------------------------------------------------------------------------
# Finding dances and music
# ----------------------------------------------------------------------------------------------


def test_tracks_pieces_and_music(scene: dict, catalog: viewer.Catalog) -> None:
    assert [track.label for track in catalog.tracks] == ["model", "random"]
    assert catalog.pieces() == ["pieceA", "pieceB"]
    assert [i for i, _ in catalog.dances("pieceA")] == [0, 1]
    assert [i for i, _ in catalog.dances("pieceB")] == [0]
    assert catalog.music_id("pieceA") == "songA" and catalog.music_file("pieceA") == scene["wav"]
    assert catalog.music_file("pieceB") is None
    assert catalog.warnings() == [f"no music found for songB (searched {scene['root'] / 'music'})"]
    dance = catalog.tracks[0].dances["pieceB"]
    assert (dance.kind, dance.n_frames, dance.fps, dance.music_id) == ("npz", 150, 60.0, "songB")


def test_music_is_found_by_stem_in_files_folders_and_beside_the_dance(tmp_path: Path) -> None:
    songs = tmp_path / "songs"
    mp3, flac = songs / "My Song (live).mp3", songs / "other.FLAC"
    for path in (mp3, flac):
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"x")
    assert viewer.find_music("My Song (live)", [songs]) == mp3
    assert viewer.find_music("other", [songs]) == flac
    assert viewer.find_music("other", [tmp_path / "nothing", mp3]) is None
    assert viewer.find_music("My Song (live)", [mp3]) == mp3
    write_npz(tmp_path / "out" / "tune.npz", dance_joints(1, 20), "tune")
    beside = write_clicks(tmp_path / "out" / "tune.ogg", seconds=0.1)  # only its name matters here
    catalog = viewer.Catalog(viewer.find_tracks([tmp_path / "out"]), [songs])
    assert catalog.music_file("tune") == beside
    with pytest.raises(viewer.ViewerInputError, match="nothing: no such music file or folder"):
        viewer.music_search_paths([tmp_path / "nothing"])


def test_labels_folders_bvh_and_single_files(tmp_path: Path) -> None:
    from danceba.export.bvh import write_bvh_from_joints

    joints = dance_joints(4, 30)
    for folder in ("a/model", "b/model"):
        write_npz(tmp_path / folder / "x.npz", joints, "x")
    write_bvh_from_joints(tmp_path / "a/model/x.bvh", joints)  # same stem as an npz: the npz wins
    write_bvh_from_joints(tmp_path / "a/model/y.bvh", joints)  # no npz: the BVH is the dance
    tracks = viewer.find_tracks([tmp_path / "a/model", tmp_path / "b/model", tmp_path / "a/model/y.bvh"])
    assert [t.label for t in tracks] == ["a/model", "b/model", "y.bvh"]
    assert {p: d.kind for p, d in tracks[0].dances.items()} == {"x": "npz", "y": "bvh"}
    assert (tracks[2].dances["y"].n_frames, tracks[2].dances["y"].fps) == (30, 60.0)


def test_sham_music_and_mixed_music_ids_are_noted(tmp_path: Path) -> None:
    write_npz(tmp_path / "sham" / "p.npz", dance_joints(1, 20), "mBR0", condition_music_id=np.array("mJB5"))
    write_npz(tmp_path / "other" / "p.npz", dance_joints(2, 20), "mHO1")
    catalog = viewer.Catalog(viewer.find_tracks([tmp_path / "sham", tmp_path / "other"]))
    notes = [d["note"] for d in catalog.piece_payload("p")["dances"]]
    assert notes == ["generated to mJB5's music", "music mHO1; the page plays mBR0"]


def test_ground_truth_table_is_a_track_on_the_pieces_shown(tmp_path: Path) -> None:
    from danceba import tables

    names = ["gBR_sBM_cAll_d01_mBR0_ch01", "gBR_sBM_cAll_d01_mBR0_ch02"]
    truth = {name: dance_joints(i, 40 + i) for i, name in enumerate(names)}
    groups = [tables.frame_table("sequence", n, "joints", j.reshape(len(j), 72)) for n, j in truth.items()]
    tables.write_grouped_table(tmp_path / "joints.parquet", groups, {"fps": "60"})
    write_npz(tmp_path / "model" / f"{names[1]}.npz", dance_joints(9, 40), "mBR0")
    tracks = viewer.find_tracks([tmp_path / "model"], ground_truth=tmp_path / "joints.parquet")
    assert [t.label for t in tracks] == ["ground truth", "model"]
    assert list(tracks[0].dances) == [names[1]] and tracks[0].dances[names[1]].music_id == "mBR0"
    catalog = viewer.Catalog(tracks)
    np.testing.assert_array_equal(catalog.joints(0, names[1]), truth[names[1]])
    assert catalog.piece_payload(names[1])["dances"][0]["n_frames"] == 41
    alone = viewer.find_tracks([], ground_truth=tmp_path / "joints.parquet")
    assert list(alone[0].dances) == names


def test_the_viewer_does_not_import_torch(scene: dict) -> None:
    code = (
        "import sys; from pathlib import Path; from danceba import viewer, cli; "
        f"c = viewer.Catalog(viewer.find_tracks([Path({str(scene['paths'][0])!r})])); "
        "c.piece_payload('pieceA'); c.catalog_payload(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'librosa')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# ----------------------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------------------


def _bad_inputs(tmp: Path) -> dict[str, tuple[Path, str]]:
    (tmp / "empty").mkdir()
    write_npz(tmp / "shape.npz", np.zeros((10, 23, 3), np.float32), "m")
    write_npz(tmp / "short.npz", np.zeros((1, 24, 3), np.float32), "m")
    nan = dance_joints(1, 10)
    nan[3, 4, 1] = np.nan
    write_npz(tmp / "nan.npz", nan, "m")
    np.savez(tmp / "nojoints.npz", poses=np.zeros((10, 72)))
    np.savez(tmp / "fps.npz", joints=dance_joints(1, 10), fps=np.array([60, 60]))
    (tmp / "text.npz").write_text("not a zip")
    (tmp / "notes.txt").write_text("hello")
    (tmp / "other.bvh").write_text("HIERARCHY\nROOT Hips\n{\n}\nMOTION\nFrames: 2\nFrame Time: 0.0166667\n")
    (tmp / "garbage.bvh").write_text("hello\n")
    return {
        "empty": (tmp / "empty", "no .npz or .bvh dances in this folder"),
        "shape": (tmp / "shape.npz", r"'joints' must have shape \(T >= 2, 24, 3\), got \(10, 23, 3\)"),
        "short": (tmp / "short.npz", r"got \(1, 24, 3\)"),
        "nan": (tmp / "nan.npz", "NaN or infinite"),
        "nojoints": (tmp / "nojoints.npz", r"no 'joints' array .* found \['poses'\]"),
        "fps": (tmp / "fps.npz", "'fps' must be one number"),
        "text": (tmp / "text.npz", "not a readable .npz file"),
        "notes": (tmp / "notes.txt", "not a dance"),
        "missing": (tmp / "missing", "no such file or folder"),
        "other": (tmp / "other.bvh", "not an SMPL skeleton .joints root, lhip"),
        "garbage": (tmp / "garbage.bvh", "not a BVH file"),
    }


BAD_CASES = (
    "empty",
    "shape",
    "short",
    "nan",
    "nojoints",
    "fps",
    "text",
    "notes",
    "missing",
    "other",
    "garbage",
)


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_names_the_file_and_the_problem(tmp_path: Path, case: str) -> None:
    path, problem = _bad_inputs(tmp_path)[case]
    with pytest.raises(viewer.ViewerInputError, match=f"^{re.escape(str(path))}: .*{problem}"):
        viewer.find_tracks([path])


def test_cli_reports_bad_input_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path, _ = _bad_inputs(tmp_path)["shape"]
    assert main(["view", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"danceba: error: {path}: 'joints' must have shape") and err.count("\n") == 1
    assert main(["view", str(tmp_path / "empty"), "--music", str(tmp_path / "nope")]) == 2
    assert "no .npz or .bvh dances" in capsys.readouterr().err


def test_cli_refuses_a_busy_port_and_an_empty_call(
    scene: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import socket

    monkeypatch.setattr(viewer, "check_player_installed", lambda: None)  # whether npm ran is not the point
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["view", str(scene["paths"][0]), "--port", str(port)]) == 2
    assert (
        capsys.readouterr().err
        == f"danceba: error: 127.0.0.1:{port}: cannot serve there (Address already in use)\n"
    )
    monkeypatch.chdir(tmp_path)  # no data/generated here
    assert main(["view"]) == 2
    assert "nothing to show" in capsys.readouterr().err


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a shell's background job starts its commands


@pytest.mark.parametrize("inherited", ["default", "sigint_ignored"])
def test_cli_serves_until_ctrl_c(scene: dict, inherited: str) -> None:
    command = [
        sys.executable,
        "-m",
        "danceba.cli",
        "view",
        *map(str, scene["paths"]),
        "--music",
        str(scene["wav"]),
    ]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=scene["root"],
        preexec_fn=_ignore_sigint if inherited == "sigint_ignored" else None,
    )
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/")
        connection = http.client.HTTPConnection(url[7:-1], timeout=30)
        connection.request("GET", "/api/catalog")
        pieces = json.loads(connection.getresponse().read())["pieces"]
        assert [p["name"] for p in pieces] == ["pieceA", "pieceB"]
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "Traceback" not in err and err.strip().endswith("danceba: stopped")
    assert "2 piece(s) from 2 track(s) (model, random)" in err and "warning: no music found for songB" in err


# ----------------------------------------------------------------------------------------------
# Payloads and HTTP
# ----------------------------------------------------------------------------------------------


def test_piece_payload_and_binary_joints(scene: dict, server: viewer.ViewerServer) -> None:
    status, _, body = get(server, "/api/piece?name=pieceA")
    piece = json.loads(body)
    assert status == 200
    assert piece["music"] == {"id": "songA", "url": "/audio?piece=pieceA", "file": "songA.wav"}
    shown = [(d["label"], d["kind"], d["n_frames"]) for d in piece["dances"]]
    assert shown == [("model", "npz", 180), ("random", "npz", 180)]
    for dance, key in zip(piece["dances"], ("model/A", "random/A"), strict=True):
        assert dance["motion_beats"] == motion_beats(scene["joints"][key])[0].tolist() != []
        status, headers, raw = get(server, dance["url"])
        assert status == 200 and headers["Content-Type"] == "application/octet-stream"
        np.testing.assert_array_equal(np.frombuffer(raw, "<f4").reshape(-1, 24, 3), scene["joints"][key])
    catalog = json.loads(get(server, "/api/catalog")[2])
    assert catalog["parents"][:4] == [-1, 0, 0, 0] and len(catalog["joint_names"]) == 24
    assert catalog["pieces"] == [
        {"name": "pieceA", "tracks": [0, 1], "music": True},
        {"name": "pieceB", "tracks": [0], "music": False},
    ]


def test_motion_beats_endpoint_and_refusals(scene: dict, server: viewer.ViewerServer) -> None:
    joints = scene["joints"]["random/A"]
    status, _, body = get(server, "/api/motion-beats", method="POST", body=joints.astype("<f4").tobytes())
    assert status == 200 and json.loads(body)["beats"] == motion_beats(joints)[0].tolist()
    assert get(server, "/api/motion-beats", method="POST", body=b"123")[0] == 400
    for path in ("/api/piece?name=nope", "/api/joints?track=1&piece=pieceB", "/api/joints?track=9&piece=pieceA",
                 "/api/joints", "/audio?piece=pieceB", "/nope"):  # fmt: skip
        status, _, body = get(server, path)
        assert status == 404 and "error" in json.loads(body), path


def test_music_beats_are_the_ones_bas_reads(scene: dict, server: viewer.ViewerServer) -> None:
    from danceba.features.music import beat_frames, music_features_60fps

    status, _, body = get(server, "/api/music-beats?piece=pieceA")
    beats = json.loads(body)
    assert status == 200 and beats["fps"] == 60
    assert beats["beats"] == beat_frames(music_features_60fps(scene["wav"])).tolist()
    assert 28 <= np.median(np.diff(beats["beats"])) <= 32  # 120 BPM at 60 fps: a beat every 30 frames
    silent = json.loads(get(server, "/api/music-beats?piece=pieceB")[2])
    assert silent == {"beats": None, "error": "no music file for songB"}


def test_static_files_and_nothing_else(server: viewer.ViewerServer) -> None:
    status, headers, page = get(server, "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b'"three": "/vendor/three/build/three.module.js"' in page
    for path in ("/player/player.js", "/player/style.css", "/vendor/three/build/three.module.js",
                 "/vendor/three/examples/jsm/loaders/BVHLoader.js"):  # fmt: skip
        status, headers, body = get(server, path)
        assert status == 200 and body, path
    for name in ("index.html", "player.js", "style.css"):  # nothing from a CDN
        assert "://" not in (viewer.PLAYER_DIR / name).read_text().replace("http://127.0.0.1", "")
    for path in ("/vendor/three/package.json", "/vendor/three/../../../viewer.py", "/player/../viewer.py",
                 "/vendor/three/build/../../../../../../../etc/passwd", "/player/package.json"):  # fmt: skip
        assert get(server, path)[0] == 404, path


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-99", (0, 99)),
        ("bytes=100-", (100, 999)),
        ("bytes=-50", (950, 999)),
        ("bytes=990-5000", (990, 999)),
        ("bytes=10-5", None),
        ("bytes=0-1,5-9", None),
        ("items=0-5", None),
    ],
)
def test_parse_byte_range(header: str | None, expected: tuple[int, int] | None) -> None:
    assert viewer.parse_byte_range(header, 1000) == expected


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=-0", "bytes=5000-6000"])
def test_parse_byte_range_refuses_ranges_past_the_end(header: str) -> None:
    with pytest.raises(viewer.RangeNotSatisfiable):
        viewer.parse_byte_range(header, 1000)


def test_audio_supports_range_requests(scene: dict, server: viewer.ViewerServer) -> None:
    data = scene["wav"].read_bytes()
    size = len(data)
    status, headers, body = get(server, "/audio?piece=pieceA")
    assert (status, headers["Accept-Ranges"], headers["Content-Type"]) == (200, "bytes", "audio/wav")
    assert body == data
    cases = {"bytes=0-99": (0, 99), "bytes=1000-": (1000, size - 1), "bytes=-50": (size - 50, size - 1)}
    for header, (first, last) in cases.items():
        status, headers, body = get(server, "/audio?piece=pieceA", {"Range": header})
        assert status == 206 and headers["Content-Range"] == f"bytes {first}-{last}/{size}", header
        assert body == data[first : last + 1] and headers["Content-Length"] == str(last - first + 1)
    status, headers, body = get(server, "/audio?piece=pieceA", {"Range": f"bytes={size}-"})
    assert (status, headers["Content-Range"], body) == (416, f"bytes */{size}", b"")
    status, headers, body = get(server, "/audio?piece=pieceA", method="HEAD")
    assert (status, headers["Content-Length"], body) == (200, str(size), b"")


# ----------------------------------------------------------------------------------------------
# The page in headless Chromium
# ----------------------------------------------------------------------------------------------


def browser_unavailable() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not CHROMIUM.is_file():
        return f"{CHROMIUM} is absent (`make browser` installs Debian's chromium when run as root)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (the dev extra: pip install -e .[dev])"
    if not (viewer.THREE_DIR / "build" / "three.module.js").is_file():
        return f"{viewer.THREE_DIR} is absent (make setup runs npm ci in danceba/player)"
    return None


@contextmanager
def chromium() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser, url: str, width: int = 1100, height: int = 700):
    """A page at ``url`` once the player is ready; page.errors lists console errors and page errors."""
    page = browser.new_page(viewport={"width": width, "height": height})
    page.errors = []
    page.on("console", lambda message: message.type == "error" and page.errors.append(message.text))
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.goto(url)
    page.wait_for_function("window.danceba && (window.danceba.ready || window.danceba.error)", timeout=60_000)
    assert page.evaluate("window.danceba.error") is None
    return page


def drawn(page, track: int) -> np.ndarray:
    return np.array(page.evaluate(f"window.danceba.drawnJoints({track})"))


@pytest.fixture()
def page(browser, server: viewer.ViewerServer) -> Iterator[object]:
    page = open_page(browser, server.url)
    yield page
    page.close()


def test_page_draws_the_npz_frames_side_by_side(scene: dict, page) -> None:
    assert [t["label"] for t in page.evaluate("window.danceba.tracks()")] == ["model", "random"]
    shown = {}
    for t in (0.5, 1.234):
        k = round(FPS * t)
        assert page.evaluate(f"window.danceba.seek({t})") == [k, k]
        for track, key in enumerate(("model/A", "random/A")):
            shown[t, track] = drawn(page, track)
            np.testing.assert_allclose(shown[t, track], scene["joints"][key][k], atol=1e-6)
    assert np.abs(shown[0.5, 0] - shown[0.5, 1]).max() > 0.05  # two different motions are drawn
    assert np.abs(shown[0.5, 0] - shown[1.234, 0]).max() > 0.05  # seeking moved the dancer
    parents = SMPL_PARENTS
    for parent, child, start, end in page.evaluate("window.danceba.drawnBones(1)"):
        assert parent == parents[child]
        np.testing.assert_allclose([start, end], shown[1.234, 1][[parent, child]], atol=1e-5)
    left, right = page.evaluate("[window.danceba.screenBox(0), window.danceba.screenBox(1)]")
    assert left["x1"] < right["x0"]  # side by side, not on top of each other
    page.evaluate(
        "(s => { s.value = 2; s.dispatchEvent(new Event('input')); })(document.getElementById('seek'))"
    )
    np.testing.assert_allclose(drawn(page, 0), scene["joints"]["model/A"][120], atol=1e-6)
    assert page.text_content("#clock") == "0:02.00 / 0:04.00" and page.text_content("#frame") == "frame 120"
    page.keyboard.press("ArrowRight")  # one frame on
    np.testing.assert_allclose(drawn(page, 1), scene["joints"]["random/A"][121], atol=1e-6)
    page.keyboard.press("Shift+ArrowLeft")  # one second back
    np.testing.assert_allclose(drawn(page, 1), scene["joints"]["random/A"][61], atol=1e-6)
    assert page.errors == []


def test_the_music_is_the_clock(scene: dict, page) -> None:
    assert page.evaluate("document.getElementById('audio').src").endswith("/audio?piece=pieceA")
    assert page.evaluate("window.danceba.duration()") == pytest.approx(4.0, abs=0.02)  # the song is longer
    page.click("#play")
    page.wait_for_function("document.getElementById('audio').currentTime > 0.4", timeout=20_000)
    assert page.evaluate("window.danceba.playing()") and page.text_content("#play") == "Pause"
    page.evaluate("document.getElementById('audio').currentTime = 1.5")  # the music jumps: the dance follows
    page.wait_for_function("document.getElementById('audio').currentTime > 1.6", timeout=20_000)
    t = page.evaluate("window.danceba.pause()")
    assert 1.6 < t < 2.5 and abs(page.evaluate("document.getElementById('audio').currentTime") - t) < 0.05
    k = round(FPS * t)
    assert page.evaluate("window.danceba.tracks()")[0]["frame"] == k
    np.testing.assert_allclose(drawn(page, 1), scene["joints"]["random/A"][k], atol=1e-6)
    page.evaluate("window.danceba.seek(1.5)")
    assert page.evaluate("document.getElementById('audio').currentTime") == pytest.approx(1.5, abs=1e-3)
    page.select_option("#rate", "0.5")
    assert page.evaluate("document.getElementById('audio').playbackRate") == 0.5
    assert page.errors == []


def test_piece_selector_and_the_clock_without_music(scene: dict, page) -> None:
    page.select_option("#piece", "pieceB")
    page.wait_for_function("window.danceba.piece() === 'pieceB' && window.danceba.ready", timeout=30_000)
    assert [t["label"] for t in page.evaluate("window.danceba.tracks()")] == ["model"]  # random has no B
    assert page.text_content("#music-info") == "no music file for songB: silent clock"
    assert page.evaluate("window.danceba.duration()") == pytest.approx(149 / FPS)
    page.evaluate("window.danceba.play()")
    page.wait_for_timeout(400)
    t = page.evaluate("window.danceba.pause()")
    assert 0.2 < t < 149 / FPS
    np.testing.assert_allclose(drawn(page, 0), scene["joints"]["model/B"][round(FPS * t)], atol=1e-6)
    assert page.url.endswith("#piece=pieceB") and page.errors == []


def test_timeline_draws_music_and_motion_beats(scene: dict, page) -> None:
    page.wait_for_function("window.danceba.musicBeats() !== null", timeout=120_000)
    music = page.evaluate("window.danceba.musicBeats()")
    from danceba.features.music import beat_frames, music_features_60fps

    assert music == pytest.approx((beat_frames(music_features_60fps(scene["wav"])) / 60).tolist())
    page.evaluate("window.danceba.seek(0)")
    image = screenshot(page)
    track_beats = page.evaluate("window.danceba.motionBeats(1)")
    assert track_beats == motion_beats(scene["joints"]["random/A"])[0].tolist()
    rows = ((0, music, (0xFF, 0xD1, 0x66)), (2, [k / FPS for k in track_beats], (0x3F, 0xB8, 0xFF)))
    for row, times, color in rows:  # music beats (yellow), motion beats of track 1 (its colour, blue)
        y = round(page.evaluate(f"window.danceba.timelineRowY({row})"))
        xs = [round(page.evaluate(f"window.danceba.timelineX({s})")) for s in times[1:3]]
        for x in xs:  # a tick of the row's colour at each beat
            assert np.abs(image[y, x - 1 : x + 1].astype(int) - color).max(axis=1).min() < 40, (row, x)
        between = (xs[0] + xs[1]) // 2  # and none half-way between two beats
        assert np.abs(image[y, between].astype(int) - color).max() > 80, (row, between)
    assert page.errors == []


def screenshot(page, path: Path | None = None) -> np.ndarray:
    """The page as an (H, W, 3) uint8 array (CSS pixels: the viewport's device scale factor is 1)."""
    import io

    from PIL import Image

    data = page.screenshot(path=path)
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_screenshot_shows_the_dancers(page, tmp_path: Path) -> None:
    page.evaluate("window.danceba.seek(1.0)")
    with_figures = screenshot(page, tmp_path / "player.png").astype(int)
    page.evaluate("window.danceba.setFiguresVisible(false)")
    without = screenshot(page).astype(int)
    page.evaluate("window.danceba.setFiguresVisible(true)")
    changed = np.abs(with_figures - without).max(axis=-1) > 40
    outside = changed.copy()
    for track, (warm, cool) in enumerate(((0, 2), (2, 0))):  # orange (R > B), then blue (B > R)
        box = page.evaluate(f"window.danceba.screenBox({track})")
        x0, y0, x1, y1 = (round(box[k]) for k in ("x0", "y0", "x1", "y1"))
        assert 150 < y1 - y0 < 700 and 20 < x1 - x0 < 500  # a dancer of a person's proportions on screen
        region = changed[y0 - 8 : y1 + 8, x0 - 8 : x1 + 8]
        assert region.sum() > 0.06 * region.size, track  # the figure's pixels differ from what is behind it
        pixels = with_figures[y0 - 8 : y1 + 8, x0 - 8 : x1 + 8][region]
        assert pixels[:, warm].mean() > pixels[:, cool].mean() + 60, track  # in the track's colour
        outside[y0 - 12 : y1 + 12, x0 - 12 : x1 + 12] = False
    assert outside.sum() < 50  # and nothing else on the page was drawn by the figures
    stage_corner = with_figures[60:70, -20:-10].reshape(-1, 3)  # the scene's background, top right
    assert np.abs(stage_corner - BACKGROUND).max() < 6
    assert (tmp_path / "player.png").stat().st_size > 10_000 and page.errors == []


def test_a_bvh_file_is_drawn_through_bvhloader(browser, tmp_path: Path) -> None:
    from danceba.export.bvh import read_bvh, write_bvh_from_joints
    from danceba.motion.skeleton import forward_kinematics

    # Bone lengths that wobble (as a generated dance's do), so the IK fit has a real error.
    joints = dance_joints(7, 120) + np.random.default_rng(0).normal(0, 0.003, (120, 24, 3)).astype(np.float32)
    write_npz(tmp_path / "dance.npz", joints, "dance")
    error_mm = write_bvh_from_joints(tmp_path / "dance.bvh", joints)
    assert 1 < error_mm < 10  # mean per-joint error of the fit (danceba.export.ik)
    reference = forward_kinematics(*read_bvh(tmp_path / "dance.bvh")[:2])  # what the file says, in Python
    catalog = viewer.Catalog(viewer.find_tracks([tmp_path / "dance.npz", tmp_path / "dance.bvh"]))
    with serving(catalog) as running:
        page = open_page(browser, running.url)
        assert [(t["label"], t["kind"], t["nFrames"]) for t in page.evaluate("window.danceba.tracks()")] == [
            ("dance.npz", "npz", 120),
            ("dance.bvh", "bvh", 120),
        ]
        for t in (0.25, 1.5):
            k = round(FPS * t)
            page.evaluate(f"window.danceba.seek({t})")
            from_bvh = drawn(page, 1)
            np.testing.assert_allclose(from_bvh, reference[k], atol=2e-4)  # BVHLoader draws the file exactly
            mean_mm = 1000 * np.linalg.norm(from_bvh - joints[k], axis=-1).mean()
            assert (
                mean_mm < 3 * error_mm and np.abs(from_bvh - joints[k]).max() < 0.05
            )  # and the dance, loosely
            assert np.abs(from_bvh - joints[k - 10]).max() > 0.02  # that frame, not another
            np.testing.assert_allclose(drawn(page, 0), joints[k], atol=1e-6)  # the npz beside it
        page.wait_for_function("window.danceba.motionBeats(1) !== null", timeout=30_000)
        beats, expected = page.evaluate("window.danceba.motionBeats(1)"), motion_beats(reference)[0]
        assert len(beats) == len(expected) > 0 and np.abs(np.array(beats) - expected).max() <= 1
        assert page.errors == []
        page.close()


# ----------------------------------------------------------------------------------------------
# The README's screenshot
# ----------------------------------------------------------------------------------------------


def take_screenshot(out: Path, paths: list[Path], at_seconds: float = 4.2) -> None:
    """``danceba view PATHS`` in headless Chromium, at ``at_seconds`` of the first piece, saved to ``out``."""
    catalog = viewer.Catalog(viewer.find_tracks(paths), viewer.music_search_paths(None))
    with serving(catalog) as running, chromium() as browser:
        page = open_page(browser, running.url, 1280, 720)
        page.wait_for_function("window.danceba.musicBeats() !== null", timeout=120_000)
        page.evaluate(f"window.danceba.seek({at_seconds})")
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=out)
        assert page.errors == [], page.errors


if __name__ == "__main__":
    os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))
    if len(sys.argv) < 3 or browser_unavailable():
        sys.exit(f"usage: python -m tests.test_viewer OUT.png PATH ... ({browser_unavailable() or 'ok'})")
    started = time.time()
    take_screenshot(Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]])
    print(f"wrote {sys.argv[1]} in {time.time() - started:.1f} s")
