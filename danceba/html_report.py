"""The self-contained HTML report: the player with a few pieces in step with their music, and the metrics.

:func:`write_report` writes one HTML file that opens from disk (``file://``) with no network and no file
beside it: the page of ``danceba view`` (``danceba/player/``) with every answer of its server written
into it, and the evaluate stage's ``reports/metrics.md`` rendered under it (the model's row highlighted).

- **Code**: player.js and the three.js modules it imports (three 0.187 from ``danceba/player/node_modules``,
  ``make setup``), gzip + base64 in a JSON block. An inline script inflates them (``DecompressionStream``),
  gives each a ``blob:`` URL, maps their names to those URLs in an import map and imports player.js;
  every import specifier (``'three'``, three.module.js's ``'./three.core.js'``) is rewritten to the name
  of the file it resolves to (``three/build/three.core.js``), since nothing resolves relative to a blob.
- **Dances**: ``pieces`` pieces, the first piece of each song of the first of ``rows`` (by name), with the
  ground truth (``data/joints.parquet``) and the other ``rows`` of ``data/generated`` that have them: the
  API's answers (catalog, piece, music beats) as JSON and the joints (T, 24, 3) as the API's float32
  bytes in base64, so the page draws exactly the npz's frame round(60 t).
- **Music**: mono 16-bit WAV at ``audio_rate_hz``, cut 0.5 s after the longest dance, as a ``data:`` URL.

Size: ~0.6 MB of code, then per piece 4/3 (base64) x (dances x T x 288 B + 2 B x rate x seconds).
Embedded default (3 pieces of 12 s, ground truth + model + random codes, 11025 Hz): 0.6 + 3 x (0.84 +
0.37) = 4.2 MB. Without three.js installed the page holds the metrics and says how to add the player.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
import re
import wave
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import quote

import numpy as np

from danceba import viewer
from danceba.report_config import ReportConfig

MODULES_ID, EMBEDDED_ID = "danceba-modules", "danceba-embedded"  # player.js reads #danceba-embedded
MAIN_MODULE = "danceba/player.js"
AUDIO_TAIL_S = 0.5  # music kept after the longest dance
IMPORT = re.compile(r"""\b(from|import)(\s*)(['"])([^'"\n]+)\3""")  # static imports and re-exports
THREE_LOADING = re.compile(  # index.html's three.js import map and player.js script (served files)
    r'\s*<!-- three\.js from .*?<script type="module" src="/player/player\.js"></script>', re.DOTALL
)
REPORT_CSS = """
#player { height: 78vh; min-height: 480px; }
#metrics { padding: 0.4em 1.5em 2em; }
#metrics .wide { overflow-x: auto; }
#metrics table { border-collapse: collapse; margin: 0.4em 0 1.2em; font-size: 12.5px; }
#metrics th, #metrics td { border: 1px solid var(--line); padding: 0.2em 0.55em; text-align: right;
  white-space: nowrap; font-variant-numeric: tabular-nums; }
#metrics th:first-child, #metrics td:first-child { text-align: left; }
#metrics tr.row-model { background: #2d3b2c; font-weight: 600; }
#metrics tr.row-ground_truth td:first-child { color: var(--accent); }
#metrics code { color: var(--accent); }
#metrics .missing { background: #5a2020; padding: 0.5em 0.8em; border-radius: 4px; }
"""
BOOTSTRAP_JS = """
// Inflate the page's ES modules (gzip, base64), give each a blob: URL, map their names to them, start.
(async () => {
  const modules = JSON.parse(document.getElementById('%(modules)s').textContent);
  const imports = {};
  for (const [name, data] of Object.entries(modules.code)) {
    const gzipped = new Blob([Uint8Array.from(atob(data), (c) => c.charCodeAt(0))]);
    const code = await new Response(gzipped.stream().pipeThrough(new DecompressionStream('gzip'))).arrayBuffer();
    imports[name] = URL.createObjectURL(new Blob([code], { type: 'text/javascript' }));
  }
  const script = (type, text) => Object.assign(document.createElement('script'), { type, textContent: text });
  document.head.append(script('importmap', JSON.stringify({ imports })));
  document.body.append(script('module', `import '${modules.main}';`));
})().catch((error) => {
  console.error(error);
  window.danceba = { ready: false, error: String(error) };
  Object.assign(document.getElementById('message'), { textContent: `the player did not start: ${error}`, hidden: false });
});
"""


# ----------------------------------------------------------------------------------------------
# What the page shows
# ----------------------------------------------------------------------------------------------


def one_piece_per_song(track: viewer.Track, count: int) -> list[str]:
    """The first piece (by name) of each of the first ``count`` songs of ``track``, in piece order."""
    chosen: dict[str, str] = {}
    for piece in sorted(track.dances):
        if len(chosen) < count:
            chosen.setdefault(track.dances[piece].music_id, piece)
    return sorted(chosen.values())


def report_catalog(
    generated: Path, config: ReportConfig, ground_truth: Path | None, music: Sequence[Path]
) -> viewer.Catalog:
    """The viewer's catalog of the report's pieces: the ground truth (when given) and ``config.rows``."""
    tracks = viewer.find_tracks([generated / row for row in config.rows], ground_truth)
    chosen = one_piece_per_song(tracks[1 if ground_truth else 0], config.pieces)
    kept = [
        viewer.Track(t.label, t.source, {p: t.dances[p] for p in chosen if p in t.dances}) for t in tracks
    ]
    if bvh := [d.path for track in kept for d in track.dances.values() if d.kind == "bvh"]:
        raise viewer.ViewerInputError(f"{bvh[0]}: BVH dances are not embedded in the report (use .npz)")
    return viewer.Catalog(kept, music)


def wav_bytes(path: Path, rate: int, seconds: float) -> bytes:
    """The first ``seconds`` of an audio file as mono 16-bit PCM WAV at ``rate`` Hz (librosa's resampler)."""
    import librosa

    samples, _ = librosa.load(path, sr=rate, mono=True, duration=seconds)
    pcm = np.round(np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()


def page_quote(text: str) -> str:
    """``text`` as the page's ``encodeURIComponent`` writes it (so the answers are found by URL)."""
    return quote(text, safe="!'()*~")


def embedded_answers(catalog: viewer.Catalog, audio_rate_hz: int) -> dict:
    """``{"json": {url: payload}, "bytes": {url: base64}}``: what player.js asks ``danceba view`` for,
    answered; the music URL of each piece is a ``data:audio/wav`` URL."""
    answers: dict = {"json": {"/api/catalog": catalog.catalog_payload()}, "bytes": {}}
    for piece in catalog.pieces():
        payload = catalog.piece_payload(piece)
        for dance in payload["dances"]:
            joints = catalog.joints(dance["track"], piece).astype("<f4").tobytes()
            answers["bytes"][dance["url"]] = base64.b64encode(joints).decode()
        if (music := catalog.music_file(piece)) is not None:
            seconds = max(d["n_frames"] / d["fps"] for d in payload["dances"]) + AUDIO_TAIL_S
            wav = base64.b64encode(wav_bytes(music, audio_rate_hz, seconds)).decode()
            payload["music"]["url"] = f"data:audio/wav;base64,{wav}"
        answers["json"][f"/api/piece?name={page_quote(piece)}"] = payload
        answers["json"][f"/api/music-beats?piece={page_quote(piece)}"] = catalog.music_beats(piece)
    return answers


# ----------------------------------------------------------------------------------------------
# The code: player.js and three.js as named modules
# ----------------------------------------------------------------------------------------------


def module_name(specifier: str, importer: Path) -> tuple[str, Path]:
    """(name in the import map, file) of an import in ``importer``: index.html's map (``three``,
    ``three/addons/``) or a path relative to the importer; the name is the file's path from three's folder."""
    three = viewer.THREE_DIR
    if specifier.startswith(("./", "../")):
        path = Path(os.path.normpath(importer.parent / specifier))
    elif specifier == "three":
        path = three / "build" / "three.module.js"
    elif specifier.startswith("three/addons/"):
        path = three / "examples" / "jsm" / specifier.removeprefix("three/addons/")
    else:
        raise viewer.ViewerInputError(f"{importer}: cannot embed the import {specifier!r}")
    if not (path.is_relative_to(three) and path.is_file()):
        raise viewer.ViewerInputError(f"{importer}: the import {specifier!r} is not a file of {three}")
    return f"three/{path.relative_to(three).as_posix()}", path


def player_modules() -> dict[str, str]:
    """``{name: source}`` of player.js (:data:`MAIN_MODULE`) and every module it imports, transitively,
    with each import specifier rewritten to its module's name."""
    sources: dict[str, str] = {}
    pending = [(MAIN_MODULE, viewer.PLAYER_DIR / "player.js")]
    while pending:
        name, path = pending.pop()
        if name in sources:
            continue

        def rename(match: re.Match, path: Path = path) -> str:
            keyword, space, quote_mark, specifier = match.groups()
            target, file = module_name(specifier, path)
            pending.append((target, file))
            return f"{keyword}{space}{quote_mark}{target}{quote_mark}"

        sources[name] = IMPORT.sub(rename, path.read_text(encoding="utf-8"))
    return dict(sorted(sources.items()))


def packed_modules(sources: Mapping[str, str]) -> dict:
    """``{"main": name, "code": {name: base64 of gzip}}`` (gzip without a timestamp: same bytes each run)."""
    code = {n: base64.b64encode(gzip.compress(s.encode(), 9, mtime=0)).decode() for n, s in sources.items()}
    return {"main": MAIN_MODULE, "code": code}


# ----------------------------------------------------------------------------------------------
# The page
# ----------------------------------------------------------------------------------------------


def metrics_html(markdown_text: str) -> str:
    """``metrics.md`` as HTML: wide tables scroll, each row is ``<tr class="row-<name>">``."""
    import markdown

    html = markdown.markdown(markdown_text, extensions=["tables"])
    html = re.sub(r"<tr>(\s*<td>)([\w-]+)</td>", r'<tr class="row-\2">\1\2</td>', html)
    return html.replace("<table>", '<div class="wide"><table>').replace("</table>", "</table></div>")


def json_script(element_id: str, payload: object) -> str:
    """A ``<script type="application/json">`` block (``<`` escaped, so no text can end the script)."""
    text = json.dumps(payload, separators=(",", ":")).replace("<", "\\u003c")
    return f'<script type="application/json" id="{element_id}">{text}</script>'


def report_html(answers: dict | None, modules: dict | None, metrics: str) -> str:
    """The page: index.html with style.css inline, the metrics under the player, and (given the answers
    and the modules) the player's data, code and start-up script; without them, a note in their place."""
    page = (viewer.PLAYER_DIR / "index.html").read_text(encoding="utf-8")
    style = (viewer.PLAYER_DIR / "style.css").read_text(encoding="utf-8")
    page, loaders = THREE_LOADING.subn("", page)
    if loaders != 1 or page.count('<link rel="stylesheet" href="/player/style.css">') != 1:
        raise RuntimeError(f"{viewer.PLAYER_DIR / 'index.html'}: not the page html_report.py knows")
    page = page.replace("<title>danceba player</title>", "<title>danceba report</title>")
    page = page.replace(
        '<link rel="stylesheet" href="/player/style.css">', f"<style>\n{style}{REPORT_CSS}</style>"
    )
    if answers is None or modules is None:
        note = (
            '<p class="missing">The player is not in this report: three.js was not installed when it was '
            "written (<code>make setup</code> runs <code>npm ci</code> in danceba/player; then "
            "<code>dvc repro -f -s report</code>).</p>\n<style>#player { display: none; }</style>\n"
        )
        body = f'<section id="metrics">\n{note}{metrics}</section>\n'
    else:
        body = (
            f'<section id="metrics">\n{metrics}</section>\n{json_script(EMBEDDED_ID, answers)}\n'
            f"{json_script(MODULES_ID, modules)}\n<script>{BOOTSTRAP_JS % {'modules': MODULES_ID}}</script>\n"
        )
    return page.replace("</body>", body + "</body>")


def write_report(
    out: Path,
    metrics_md: Path,
    generated: Path,
    config: ReportConfig,
    ground_truth: Path | None = None,
    music: Sequence[Path] = (),
) -> dict:
    """Write the report to ``out``; ``{"bytes", "pieces", "player"}`` (the player is left out, with a
    note, when three.js is not installed). ``music``: where the songs are found (viewer.find_music)."""
    from danceba.atomic import write_text_atomic

    metrics = metrics_html(metrics_md.read_text(encoding="utf-8"))
    catalog = report_catalog(generated, config, ground_truth, music)
    try:
        viewer.check_player_installed()
    except viewer.ViewerInputError:
        answers = modules = None
    else:
        answers, modules = embedded_answers(catalog, config.audio_rate_hz), packed_modules(player_modules())
    html = report_html(answers, modules, metrics)
    write_text_atomic(out, html)
    return {"bytes": len(html.encode()), "pieces": catalog.pieces(), "player": answers is not None}
