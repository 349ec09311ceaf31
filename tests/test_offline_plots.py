"""``dvc plots show`` renders offline: the project's HTML template (.dvc/config ``plots.html_template``)
loads Vega, Vega-Lite and Vega-Embed from danceba/player/node_modules, never from a CDN.

Run in a temporary DVC project carrying this project's .dvc/config and template (and a link to the
installed node_modules), so the workspace is left alone; the page is also opened in headless chromium
where it is installed, and must draw the plot."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.project_files import ROOT

NODE_MODULES = ROOT / "danceba" / "player" / "node_modules"
CHROMIUM = Path("/usr/bin/chromium")
DVC_YAML = "plots:\n  - loss.csv:\n      x: step\n      y: val_loss\n"


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (NODE_MODULES / "vega-embed").is_dir():
        pytest.skip(f"{NODE_MODULES}: no vega-embed (run make setup; it needs npm)")
    root = tmp_path_factory.mktemp("plots")
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, check=True)
    for name in ("config", "offline_plots.html"):
        shutil.copy(ROOT / ".dvc" / name, root / ".dvc" / name)
    (root / "danceba" / "player").mkdir(parents=True)
    (root / "danceba" / "player" / "node_modules").symlink_to(NODE_MODULES)
    (root / "loss.csv").write_text("step,val_loss\n0,2.5\n10,1.5\n20,1.25\n")
    (root / "dvc.yaml").write_text(DVC_YAML)
    done = subprocess.run(
        [sys.executable, "-m", "dvc", "plots", "show"], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return root / "dvc_plots" / "index.html"


def test_the_page_loads_its_scripts_from_local_files(page: Path) -> None:
    html = page.read_text(encoding="utf-8")
    scripts = re.findall(r"<script[^>]*\ssrc\s*=\s*\"([^\"]+)\"", html)
    assert len(scripts) == 3, scripts
    assert not [src for src in scripts if re.match(r"(https?:)?//", src)], scripts
    for src in scripts:
        assert (page.parent / src).resolve().is_file(), src
    assert "cdn.jsdelivr" not in html and "vegaEmbed(" in html


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed (make browser)")
def test_headless_chromium_draws_the_plot_offline(page: Path) -> None:
    command = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
        "--virtual-time-budget=5000", "--dump-dom", page.as_uri(),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert 'class="marks"' in done.stdout, done.stdout[-2000:]  # the chart vega-embed drew
