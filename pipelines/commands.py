"""The subprocesses the flows run (DVC stages, experiments, git), their environment and failures."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from danceba.run_progress import LogWatcher, ProgressLine
from danceba.tracking import PARENT_RUN_ENV
from danceba.tracking_store import QUIET_ENV


class CommandFailed(RuntimeError):
    """A DVC stage or experiment subprocess exited non-zero."""


def subprocess_env(parent_run_id: str | None = None) -> dict[str, str]:
    """The environment for DVC: quiet/offline defaults, this interpreter first on PATH, the parent run."""
    env = {**QUIET_ENV, **os.environ}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    if parent_run_id:
        env[PARENT_RUN_ENV] = parent_run_id
    return env


def run_command(
    command: Sequence[str], label: str, cwd: Path, env: Mapping[str, str], log_path: Path | None = None
) -> None:
    """Run ``command``; output to ``log_path`` (appended) or inherited; non-zero exit raises CommandFailed.

    The error names ``label``, the exit code and, with a log, its last ``ERROR`` line and the log's path.
    """
    with contextlib.ExitStack() as stack:
        log = None
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            log = stack.enter_context(log_path.open("a", encoding="utf-8"))
            log.write(f"\n$ {' '.join(command)}\n")
            log.flush()
        code = subprocess.run(
            list(command), cwd=cwd, env=dict(env), stdout=log, stderr=log, check=False
        ).returncode
    if code != 0:
        detail = ""
        if log_path is not None:
            detail = (
                f": {last_error(log_path.read_text(encoding='utf-8', errors='replace'))} (log: {log_path})"
            )
        raise CommandFailed(f"{label} exited {code}{detail}")


def run_watched(
    command: Sequence[str], label: str, cwd: Path, env: Mapping[str, str], log_path: Path, line: ProgressLine
) -> None:
    """``run_command`` with its output in ``log_path``, the progress read from it shown on ``line``."""
    status = "failed"
    try:
        with LogWatcher(log_path, line):
            run_command(command, label, cwd, env, log_path)
        status = "done"
    finally:
        line.close(status)


def last_error(log_text: str) -> str:
    """The last line of ``log_text`` that starts with ``ERROR``, else its last non-empty line."""
    lines = [line.strip() for line in log_text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR")]
    return (errors or lines or ["no output"])[-1]


def dvc_command(*args: str) -> list[str]:
    """``dvc <args>`` with the DVC of this interpreter."""
    return [sys.executable, "-m", "dvc", *args]


def git_output(project_root: Path, *args: str) -> str:
    """stdout of ``git <args>`` in the project; a failure raises CommandFailed."""
    done = subprocess.run(
        ["git", "-C", str(project_root), *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise CommandFailed(f"git {' '.join(args)} in {project_root}: {done.stderr.strip()}")
    return done.stdout
