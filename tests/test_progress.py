"""What a person sees: ``danceba generate`` draws progress bars on stderr and its log lines never land on
a bar's line; under ``torchrun`` only rank 0 logs (``danceba.progress``)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from danceba.progress import configure_logging, progress_bar
from tests.project_files import ROOT
from tests.test_cli import models, songs  # noqa: F401 - module fixtures: tiny exports, click-track songs

BAR = "%|"  # tqdm's bar: "generate:  50%|█████     | 1/2 [...]"


def terminal_lines(stream: str) -> list[str]:
    """What a terminal shows for ``stream``: each ``\\r`` returns to the start of the line and the text
    after it overwrites what was there."""
    shown = []
    for line in stream.split("\n"):
        screen = ""
        for segment in line.split("\r"):
            screen = segment + screen[len(segment) :]
        shown.append(screen.rstrip())
    return [line for line in shown if line]


def test_terminal_lines_shows_a_torn_line_as_torn() -> None:
    torn = "\rgenerate:  50%|#####     | 1/2\rgenerate:  50%|#####     | 1/2danceba: beat: 4.0 s\n"
    assert terminal_lines(torn) == ["generate:  50%|#####     | 1/2danceba: beat: 4.0 s"]


def run_generate(exports: dict[str, Path], song_paths: list[Path], out: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "danceba.cli", "generate", *map(str, song_paths), "--out", str(out)]
    command += ["--gpt", str(exports["gpt"]), "--vqvae", str(exports["vqvae"]), "--format", "npz"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    env.pop("RANK", None)
    return subprocess.run(
        [*command, "--batch-size", "1"], cwd=out.parent, env=env, capture_output=True, text=True, timeout=300
    )


def test_generate_shows_bars_and_log_lines_on_lines_of_their_own(
    models: dict[str, Path],  # noqa: F811
    songs: dict[str, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    done = run_generate(models, [songs["wav"], songs["ogg"]], tmp_path / "out")
    assert done.returncode == 0, done.stderr[-3000:]
    shown = terminal_lines(done.stderr)
    bars = [line for line in shown if BAR in line]
    assert any(line.startswith("generate beat (1/2):") for line in bars), shown
    assert any(line.startswith("generate tune (2/2): 100%") for line in bars), shown
    logs = [line for line in shown if "danceba:" in line]
    assert any("beat: 4.1 s of dance" in line for line in logs), shown  # logged while the bar is drawn
    assert any("tune: 3.1 s of dance" in line for line in logs), shown
    assert all(line.startswith("danceba: ") and BAR not in line for line in logs), logs
    assert done.stdout.split() == [str(tmp_path / "out" / "beat.npz"), str(tmp_path / "out" / "tune.npz")]


def test_log_records_go_above_a_bar_being_drawn(capsys: pytest.CaptureFixture[str]) -> None:
    logger = configure_logging(fmt="LOG %(message)s", logger="danceba.test_progress", rank=0)
    try:
        with progress_bar(total=3, desc="work", mininterval=0) as bar:
            bar.update(1)
            logger.info("one third done")
            bar.update(2)
        shown = terminal_lines(capsys.readouterr().err)
    finally:
        logger.handlers.clear()
    assert "LOG one third done" in shown
    assert any(line.startswith("work: 100%") for line in shown)


@pytest.mark.parametrize("rank", [0, 1])
def test_only_rank_0_logs(rank: int, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    monkeypatch.setenv("RANK", str(rank))
    logger = configure_logging(logger="danceba.test_rank")
    try:
        logger.info("val_loss 1.23")
        logger.warning("a warning")
        with progress_bar(total=2, desc="train", mininterval=0) as bar:
            bar.update(2)
        logger.error("it broke")
        err = capsys.readouterr().err
    finally:
        logger.handlers.clear()
        logger.setLevel(logging.NOTSET)
    if rank == 0:
        assert "val_loss 1.23" in err and "a warning" in err and "train: 100%" in err
        assert "[rank" not in err
    else:
        assert "val_loss" not in err and "warning" not in err and "train" not in err
        assert "[rank 1]" in err and "it broke" in err


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_under_torchrun_rank_1_logs_nothing(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), "--log-dir", str(logs), "--redirects", "3",
        str(ROOT / "tests" / "torchrun_logging.py"), str(tmp_path / "run"),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-4000:]
    by_rank = {int(p.parent.name): p.read_text() for p in logs.rglob("stderr.log")}
    assert sorted(by_rank) == [0, 1], sorted(logs.rglob("*"))
    assert (
        "INFO danceba.torchrun_logging: final val_loss 3.97" in by_rank[0] and "train run: 100%" in by_rank[0]
    )
    assert by_rank[1].strip() == "", by_rank[1][-2000:]
