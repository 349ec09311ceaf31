"""One live progress line per sweep/ablation experiment, read from its log (``danceba.run_progress``),
shown by ``pipelines.commands.run_watched`` while a real subprocess writes its log."""

from __future__ import annotations

import io
import os
import sys
import textwrap
from pathlib import Path

import pytest

from danceba.run_progress import Progress, ProgressLine, parse_progress
from pipelines.commands import CommandFailed, run_watched
from tests.test_progress import terminal_lines

# What an experiment's log holds: DVC's output, stage log lines, tqdm updates separated by \r.
LOG = (
    "$ python -m pipelines.dvc_experiment --name seed-3\n"
    "2026-12-02 10:00:00,000 INFO danceba: stage fetch: started\n"
    "2026-12-02 10:00:01,000 INFO danceba: stage train_gpt: started\n"
    "\rtrain 1a2b:   0%|          | 0/1000 [00:00<?, ?it/s]"
    "\rtrain 1a2b:  45%|████▌     | 450/1000 [00:10<00:12, 45.0it/s, loss=2.31]"
)


def test_parse_progress_reads_the_stage_and_its_last_counter() -> None:
    assert parse_progress("") == Progress()
    progress = parse_progress(LOG)
    assert progress == Progress("train_gpt", "train 1a2b", 450, 1000)
    assert progress.describe() == "train_gpt: train 1a2b 450/1000 (45%)"
    later = parse_progress("\n2026-12-02 INFO danceba: stage generate: started\n", progress)
    assert later == Progress("generate") and later.describe() == "generate"
    counted = parse_progress("\rgenerate S01 (1/3):  50%|#####     | 12/24 [00:01<00:01]", later)
    assert counted.describe() == "generate: generate S01 (1/3) 12/24 (50%)"
    assert Progress().describe() == "starting"


CHILD = textwrap.dedent(
    """
    import logging, sys, time
    from tqdm import tqdm
    logging.basicConfig(level=logging.INFO, format="%(asctime)s INFO %(name)s: %(message)s")
    logging.getLogger("danceba").info("stage train_gpt: started")
    for _ in tqdm(range(STEPS), desc="train run", mininterval=0):
        time.sleep(0.1)
    sys.exit(CODE)
    """
)


def watch_child(tmp_path: Path, line: ProgressLine, steps: int = 40, code: int = 0) -> Path:
    script = tmp_path / "child.py"
    script.write_text(CHILD.replace("STEPS", str(steps)).replace("CODE", str(code)))
    log_path = tmp_path / "reports" / "sweep" / "seed-3.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run_watched([sys.executable, str(script)], "experiment seed-3", tmp_path, env, log_path, line)
    return log_path


def test_a_log_gets_a_line_per_stage_and_step_while_the_experiment_runs(tmp_path: Path) -> None:
    stream = io.StringIO()
    log_path = watch_child(tmp_path, ProgressLine("seed-3", "sweep", stream, interval_s=0))
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()  # plain lines, readable in a file or CI log
    assert lines[0] == "sweep: seed-3: starting"
    assert lines[-1] == "sweep: seed-3: done (train_gpt: train run 40/40 (100%))"
    middle = [line for line in lines if line.startswith("sweep: seed-3: train_gpt: train run ")]
    assert any("/40 (" in line and " 40/40" not in line and " 0/40" not in line for line in middle), lines
    assert "stage train_gpt: started" in log_path.read_text()  # the child's output still goes to its log


def test_throttled_lines_and_a_failure(tmp_path: Path) -> None:
    stream = io.StringIO()
    with pytest.raises(CommandFailed, match="exited 3"):
        watch_child(tmp_path, ProgressLine("seed-3", "ablation", stream, interval_s=3600), steps=5, code=3)
    lines = stream.getvalue().splitlines()
    # the interval holds back step lines; the stage change and the end are always shown
    assert lines[0] == "ablation: seed-3: starting"
    assert lines[-1] == "ablation: seed-3: failed (train_gpt: train run 5/5 (100%))"
    assert len(lines) <= 4, lines


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_one_bar_per_experiment(tmp_path: Path) -> None:
    stream = Terminal()
    watch_child(tmp_path, ProgressLine("seed-3", "sweep", stream), steps=5)
    shown = terminal_lines(stream.getvalue())
    assert any(line.startswith("seed-3 train_gpt · train run: 100%") and "5/5" in line for line in shown), (
        shown
    )
    assert shown[-1].endswith("done]"), shown
