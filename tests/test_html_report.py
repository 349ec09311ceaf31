"""The self-contained HTML report (danceba.html_report): built from a few hand-made dances, parsed (nothing
from elsewhere, the metrics in it), then opened from file:// in headless Chromium (the page draws the npz
frames on the music's clock; nothing is fetched; a screenshot shows the figures).

The browser tests need what tests/test_viewer.py's need and are skipped with its reason otherwise.
"""

from __future__ import annotations

import base64
import gzip
import json
import shutil
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from danceba import html_report, tables, viewer
from danceba.metrics_markdown import markdown_table
from tests.test_viewer import (
    FPS,
    dance_joints,
    drawn,
    open_page,
    screenshot,
    write_clicks,
    write_npz,
)

PIECES = {  # piece: music; the first piece of each song is shown
    "gBR_sBM_cAll_d01_mBR0_ch01": "mBR0",
    "gBR_sBM_cAll_d01_mBR0_ch02": "mBR0",
    "gHO_sBM_cAll_d02_mHO1_ch01": "mHO1",
}
SHOWN = ["gBR_sBM_cAll_d01_mBR0_ch01", "gHO_sBM_cAll_d02_mHO1_ch01"]
ROWS = {"ground_truth": 0, "model": 10, "random_codes": 20}  # seed offsets of each row's dances
METRICS = {
    "bailando": {
        "ground_truth": {"bas": 0.8296, "bas_excess": 0.5884, "bas_excess_ci_low": 0.5292, "bas_excess_ci_high": 0.6395},
        "model": {"bas": 0.5616, "bas_excess": 0.3214, "bas_excess_ci_low": 0.2406, "bas_excess_ci_high": 0.3989},
        "random_codes": {"bas": 0.2501, "bas_excess": -0.0068, "bas_excess_ci_low": -0.0414, "bas_excess_ci_high": 0.0278},
    }
}  # fmt: skip


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Dances of three pieces in two rows and the ground-truth table, clicks for both songs, metrics.md;
    the report written from them."""
    root = tmp_path_factory.mktemp("report")
    joints = {}
    for row, offset in ROWS.items():
        for i, (piece, music) in enumerate(PIECES.items()):
            joints[row, piece] = dance_joints(offset + i, 150 + 30 * i)
            if row != "ground_truth":
                write_npz(root / "generated" / row / f"{piece}.npz", joints[row, piece], music)
    groups = [
        tables.frame_table("sequence", piece, "joints", joints["ground_truth", piece].reshape(-1, 72))
        for piece in PIECES
    ]
    tables.write_grouped_table(root / "joints.parquet", groups, {"fps": str(FPS)})
    for music, bpm in (("mBR0", 120.0), ("mHO1", 100.0)):
        write_clicks(root / "wavs" / f"{music}.wav", seconds=6.0, bpm=bpm)
    (root / "metrics.md").write_text(markdown_table(METRICS))
    out = root / "out" / "report.html"
    written = html_report.write_report(
        out, root / "metrics.md", root / "generated", html_report.ReportConfig(pieces=2), root / "joints.parquet",
        [root / "wavs"],
    )  # fmt: skip
    return {"root": root, "joints": joints, "out": out, "written": written, "html": out.read_text()}


class Links(HTMLParser):
    """Every src/href attribute and the text of each <script>, by type."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str, str]] = []
        self.scripts: list[tuple[dict, str]] = []
        self._script: dict | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.links += [(tag, key, value or "") for key, value in attrs if key in ("src", "href")]
        if tag == "script":
            self._script = dict(attrs)
            self.scripts.append((self._script, ""))

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self.scripts[-1] = (self._script, self.scripts[-1][1] + data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._script = None


def parsed(html: str) -> Links:
    links = Links()
    links.feed(html)
    return links


def embedded_block(html: str, element_id: str) -> dict:
    return json.loads(next(text for attrs, text in parsed(html).scripts if attrs.get("id") == element_id))


def test_one_piece_per_song_of_the_first_row(made: dict) -> None:
    assert made["written"]["pieces"] == SHOWN and made["written"]["player"]
    catalog = embedded_block(made["html"], html_report.EMBEDDED_ID)["json"]["/api/catalog"]
    assert [p["name"] for p in catalog["pieces"]] == SHOWN and all(p["music"] for p in catalog["pieces"])
    assert [t["label"] for t in catalog["tracks"]] == ["ground truth", "model", "random_codes"]


def test_nothing_comes_from_elsewhere(made: dict) -> None:
    html = made["html"]
    links = parsed(html)
    assert links.links == [("link", "href", "data:,")]  # the favicon only; no <script src>, no stylesheet
    assert not [attrs for attrs, _ in links.scripts if "src" in attrs]
    assert "http://" not in html and "https://" not in html  # the code is packed: even its strings are inside
    modules = embedded_block(html, html_report.MODULES_ID)
    names = set(modules["code"])
    assert modules["main"] in names and "three/build/three.core.js" in names
    for name, data in modules["code"].items():  # every import is a module of the page, by name
        source = gzip.decompress(base64.b64decode(data)).decode()
        imports = {match[3] for match in html_report.IMPORT.findall(source)}
        assert imports <= names, (name, imports - names)
    answers = embedded_block(html, html_report.EMBEDDED_ID)
    for piece in SHOWN:
        payload = answers["json"][f"/api/piece?name={piece}"]
        assert payload["music"]["url"].startswith("data:audio/wav;base64,")
        assert all(dance["url"] in answers["bytes"] for dance in payload["dances"])
        assert f"/api/music-beats?piece={piece}" in answers["json"]


def test_the_metrics_are_in_the_page(made: dict) -> None:
    html = made["html"]
    for row, values in METRICS["bailando"].items():
        assert f"{values['bas']:.4f}" in html, row
        low, high = values["bas_excess_ci_low"], values["bas_excess_ci_high"]
        assert f"{values['bas_excess']:.4f} [{low:.4f}, {high:.4f}]" in html, row
    assert '<tr class="row-model">' in html and '<tr class="row-random_codes">' in html
    assert "model follows the music" in html  # the verdict line of metrics.md


def test_the_audio_is_the_songs_mono_16_bit_at_the_report_rate(made: dict) -> None:
    import io
    import wave

    payload = embedded_block(made["html"], html_report.EMBEDDED_ID)["json"][f"/api/piece?name={SHOWN[0]}"]
    data = base64.b64decode(payload["music"]["url"].split(",", 1)[1])
    with wave.open(io.BytesIO(data)) as audio:
        params = audio.getnchannels(), audio.getsampwidth(), audio.getframerate()
        seconds = audio.getnframes() / audio.getframerate()
    assert params == (1, 2, html_report.ReportConfig().audio_rate_hz)
    assert seconds == pytest.approx(150 / FPS + html_report.AUDIO_TAIL_S, abs=0.01)  # cut after the dance


def test_the_same_inputs_write_the_same_bytes(made: dict, tmp_path: Path) -> None:
    root = made["root"]
    again = tmp_path / "report.html"
    config = html_report.ReportConfig(pieces=2)
    html_report.write_report(again, root / "metrics.md", root / "generated", config, root / "joints.parquet", [root / "wavs"])  # fmt: skip
    assert again.read_bytes() == made["out"].read_bytes()


def test_without_three_js_the_report_has_the_metrics_and_says_why(
    made: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(viewer, "THREE_DIR", tmp_path / "absent")
    root, out = made["root"], tmp_path / "report.html"
    written = html_report.write_report(
        out, root / "metrics.md", root / "generated", html_report.ReportConfig()
    )
    html = out.read_text()
    assert not written["player"] and "make setup" in html and "0.3214 [0.2406, 0.3989]" in html
    assert html_report.EMBEDDED_ID not in html and written["bytes"] < 50_000


def test_a_missing_row_names_the_folder(made: dict, tmp_path: Path) -> None:
    config = html_report.ReportConfig(rows=("model", "nope"))
    with pytest.raises(viewer.ViewerInputError, match="generated/nope: no such file or folder"):
        html_report.write_report(
            tmp_path / "r.html", made["root"] / "metrics.md", made["root"] / "generated", config
        )


# ----------------------------------------------------------------------------------------------
# The report in headless Chromium, from file://
# ----------------------------------------------------------------------------------------------


class Recording:
    """A browser for test_viewer's ``open_page`` whose pages list every URL they ask for (``page.requested``)."""

    def __init__(self, browser) -> None:
        self.browser = browser

    def new_page(self, viewport: dict):
        page = self.browser.new_context(viewport=viewport).new_page()
        page.requested = []
        page.on("request", lambda request: page.requested.append(request.url))
        return page


@pytest.fixture(scope="module")
def opened(made: dict, browser, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The report, copied alone into an empty folder, open from file://."""
    alone = tmp_path_factory.mktemp("alone") / "report.html"
    shutil.copyfile(made["out"], alone)
    page = open_page(Recording(browser), alone.as_uri())
    yield page
    page.context.close()


def test_the_page_draws_each_npz_frame_at_its_time(made: dict, opened) -> None:
    page = opened
    labels = [t["label"] for t in page.evaluate("window.danceba.tracks()")]
    assert (
        labels == ["ground truth", "model", "random_codes"]
        and page.evaluate("window.danceba.piece()") == SHOWN[0]
    )
    for t in (0.5, 1.234, 2.0):
        k = round(FPS * t)
        assert page.evaluate(f"window.danceba.seek({t})") == [k, k, k]
        for track, row in enumerate(ROWS):
            np.testing.assert_allclose(drawn(page, track), made["joints"][row, SHOWN[0]][k], atol=1e-6)
    page.evaluate(f"window.danceba.loadPiece({json.dumps(SHOWN[1])})")
    page.wait_for_function(f"window.danceba.piece() === {json.dumps(SHOWN[1])} && window.danceba.ready")
    page.evaluate("window.danceba.seek(1.5)")
    np.testing.assert_allclose(drawn(page, 2), made["joints"]["random_codes", SHOWN[1]][90], atol=1e-6)
    page.evaluate(f"window.danceba.loadPiece({json.dumps(SHOWN[0])})")
    page.wait_for_function(f"window.danceba.piece() === {json.dumps(SHOWN[0])} && window.danceba.ready")
    assert page.errors == []


def test_the_embedded_music_is_the_clock(opened) -> None:
    page = opened
    assert page.evaluate("document.getElementById('audio').src").startswith("data:audio/wav;base64,")
    page.wait_for_function("window.danceba.musicBeats() !== null", timeout=30_000)
    beats = page.evaluate("window.danceba.musicBeats()")
    assert len(beats) >= 4 and np.diff(beats).mean() == pytest.approx(0.5, abs=0.05)  # 120 BPM clicks
    page.evaluate("window.danceba.seek(0)")
    page.click("#play")
    page.wait_for_function("document.getElementById('audio').currentTime > 0.4", timeout=20_000)
    t = page.evaluate("window.danceba.pause()")
    assert abs(page.evaluate("document.getElementById('audio').currentTime") - t) < 0.05
    assert page.evaluate("window.danceba.tracks()")[1]["frame"] == round(FPS * t)
    assert page.errors == []


def test_nothing_is_fetched_and_a_figure_is_drawn(opened, tmp_path: Path) -> None:
    page = opened
    page.evaluate("window.danceba.seek(1.0)")
    with_figures = screenshot(page, tmp_path / "report.png").astype(int)
    page.evaluate("window.danceba.setFiguresVisible(false)")
    without = screenshot(page).astype(int)
    page.evaluate("window.danceba.setFiguresVisible(true)")
    changed = np.abs(with_figures - without).max(axis=-1) > 40
    for track in range(3):
        box = page.evaluate(f"window.danceba.screenBox({track})")
        x0, y0, x1, y1 = (round(box[k]) for k in ("x0", "y0", "x1", "y1"))
        assert 100 < y1 - y0 < 700 and 15 < x1 - x0 < 500, track  # a dancer of a person's proportions
        region = changed[y0 - 8 : y1 + 8, x0 - 8 : x1 + 8]
        assert region.sum() > 0.05 * region.size, track  # drawn: its pixels differ from what is behind it
    report, *others = page.requested
    assert report == page.url.split("#")[0]  # the file itself, then only its own modules (blob:) and music
    assert others and all(url.startswith(("blob:", "data:")) for url in others), others
    assert page.errors == []
