"""One DVC experiment in a private clone of the workspace, safe to run several at once.

``python -m pipelines.dvc_experiment --name seed-3 --set train_gpt.train.seed=3 --metrics
reports/metrics.json --result out.json`` gives what ``dvc exp run --temp -S ... --name seed-3`` gives
(an experiment commit under ``refs/exps/`` of the project, its outputs in the project's DVC cache), then
writes ``{"rev": <experiment commit>, "metrics": <metrics file of that commit>}`` to ``--result``.

Why not ``dvc exp run --temp``: in DVC 3.67.1 concurrent ``--temp`` runs share one git stash. Measured on
2 cores, 2 of 8 processes started 4 at a time failed with "Unable to acquire lock", and (from DVC's code:
``WorkspaceQueue.reproduce`` loops until the stash is empty) a process that finishes its experiment pops
the next entry of the shared stash, which can be another process's just-queued experiment. Nor
a git worktree: DVC's run-time refs (``refs/exps/exec/*``) would be shared between worktrees.

So each experiment gets a clone of its own, driven only by DVC's command line:

1. ``git clone --local`` of the project, at its ``HEAD``, with the workspace's uncommitted changes
   (tracked and untracked, not ignored: what ``--temp`` stashes) copied in;
2. the clone's DVC cache is the project's (``dvc cache dir --local``), so ``dvc checkout`` brings the
   upstream outputs without running them and the experiment's outputs land where the project reads them;
3. ``dvc exp run --name NAME -S ...`` in the clone (a workspace experiment: nothing shared);
4. its metrics are read with ``dvc.api.metrics_show`` from the clone's workspace, which holds the
   experiment's outputs;
5. ``dvc exp push --force --no-cache origin NAME`` puts the experiment commit into the project,
   replacing an earlier experiment of the same name on the same commit.

Kept free of Prefect so each seed's process starts fast.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from danceba.atomic import write_text_atomic
from pipelines.commands import CommandFailed, dvc_command, git_output

CALLER_PYTHONPATH = "DANCEBA_CALLER_PYTHONPATH"
CLONE_PREFIX = "danceba-exp-"


def _dvc(cwd: Path, *args: str, capture: bool = False) -> str:
    """``dvc <args>`` in ``cwd``: its stdout when ``capture``, else its output passed through to ours.

    A non-zero exit raises :class:`~pipelines.commands.CommandFailed` with DVC's last ``ERROR`` line
    ("failed to reproduce 'train': ..."), or its last line of stderr when captured.
    """
    command = dvc_command(*args)
    if capture:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
        output, last = done.stdout, (done.stderr.strip().splitlines() or [""])[-1]
    else:
        done, last = _pass_through(command, cwd)
        output = ""
    if done.returncode != 0:
        said = f": {last.removeprefix('ERROR: ')}" if last else ""
        raise CommandFailed(f"dvc {' '.join(args[:2])} exited {done.returncode}{said}")
    return output


def _pass_through(args: Sequence[str], cwd: Path) -> tuple[subprocess.CompletedProcess, str]:
    """Run ``args`` with stdout and stderr copied to our stdout; the finished process, its last ERROR line."""
    last_error = ""
    with subprocess.Popen(
        list(args), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            if line.startswith("ERROR"):
                last_error = line.strip()
    return subprocess.CompletedProcess(args, process.returncode), last_error


def clone_workspace(project_root: Path, clone: Path) -> None:
    """``clone``: the project's ``HEAD`` with the workspace's uncommitted, not ignored changes applied."""
    head = git_output(project_root, "rev-parse", "HEAD").strip()
    git_output(clone.parent, "clone", "--quiet", "--local", "--no-checkout", str(project_root), str(clone))
    git_output(clone, "checkout", "--quiet", "--detach", head)
    diff = git_output(project_root, "diff", "HEAD", "--binary")
    if diff:
        patch = clone.parent / "workspace.diff"
        patch.write_text(diff, encoding="utf-8")
        git_output(clone, "apply", "--binary", str(patch))
    untracked = git_output(project_root, "ls-files", "--others", "--exclude-standard", "-z").split("\0")
    for relative in filter(None, untracked):
        target = clone / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(project_root / relative, target)


def share_dvc_cache(project_root: Path, clone: Path) -> None:
    """The clone's DVC config: the project's local config (remotes, ...) and the project's cache."""
    local_config = project_root / ".dvc" / "config.local"
    if local_config.exists():
        shutil.copy2(local_config, clone / ".dvc" / "config.local")
    cache = _dvc(project_root, "cache", "dir", capture=True).strip()
    _dvc(clone, "cache", "dir", "--local", cache)


def experiment_rev(clone: Path, name: str) -> str:
    """The commit of the clone's one experiment, ``name`` (a fresh clone has no other)."""
    revs = _dvc(clone, "exp", "list", "--sha-only", capture=True).split()
    if len(revs) != 1:
        raise CommandFailed(f"experiment {name}: the clone lists {len(revs)} experiments, expected 1")
    return revs[0]


def read_metrics(clone: Path, metrics_file: str, extra: Mapping[str, str]) -> dict[str, Any]:
    """``metrics_file`` of the clone's workspace (the experiment's outputs, as committed), with each of
    ``extra``'s files (the present ones) under its key."""
    import dvc.api

    def show(path: str) -> dict[str, Any]:
        with contextlib.chdir(clone):  # DVC resolves a target against the working directory
            return dvc.api.metrics_show(path, repo=os.fspath(clone))

    try:
        metrics = show(metrics_file)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{metrics_file}: not an output of the experiment ({error})") from None
    for key, path in extra.items():
        if key in metrics:
            raise ValueError(f"{metrics_file} already has a key {key!r}: cannot add {path} under it")
        with contextlib.suppress(FileNotFoundError):  # not an output of this experiment
            metrics[key] = show(path)
    return metrics


def run_experiment(
    project_root: Path,
    name: str,
    overrides: Sequence[str],
    metrics_file: str,
    extra_metrics: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Run experiment ``name`` with the ``-S`` style ``overrides``; ``{"rev", "metrics"}``.

    An earlier experiment of the same name on the same commit is replaced. ``metrics_file``: the
    metrics output (relative to the root), as the experiment wrote it.
    ``extra_metrics``: ``{key: file}`` of other metrics outputs, each added to the metrics under its key
    when the experiment has it (e.g. ``{"train_gpt": "reports/train_gpt/metrics.json"}``).
    """
    root = project_root.resolve()
    with tempfile.TemporaryDirectory(prefix=f"{CLONE_PREFIX}{name}-") as scratch:
        clone = Path(scratch) / root.name
        clone_workspace(root, clone)
        share_dvc_cache(root, clone)
        _dvc(clone, "checkout", "--quiet", "--allow-missing")
        _dvc(clone, "exp", "run", "--name", name, *(f"--set-param={o}" for o in overrides))
        rev = experiment_rev(clone, name)
        metrics = read_metrics(clone, metrics_file, dict(extra_metrics or {}))
        _dvc(clone, "exp", "push", "--force", "--no-cache", "origin", name)
    return {"rev": rev, "metrics": metrics}


def command(
    project_root: Path,
    name: str,
    overrides: Sequence[str],
    metrics_file: str,
    result: Path,
    extra_metrics: Mapping[str, str] | None = None,
) -> list[str]:
    """The command line that runs :func:`run_experiment` in a fresh interpreter."""
    argv = [sys.executable, "-m", "pipelines.dvc_experiment", "--project", str(project_root), "--name", name]
    argv += ["--metrics", metrics_file, "--result", str(result)]
    argv += [f"--also={key}={path}" for key, path in (extra_metrics or {}).items()]
    return argv + [f"--set={override}" for override in overrides]


def main(argv: Sequence[str] | None = None) -> int:
    """Run one experiment; 1 with a one-line error when DVC fails (stage output is above it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", required=True, type=Path, help="the DVC project root")
    parser.add_argument("--name", required=True, help="the experiment name")
    parser.add_argument(
        "--set", action="append", default=[], dest="overrides", help="a -S override key=value"
    )
    parser.add_argument("--metrics", required=True, help="metrics file to read back")
    parser.add_argument("--result", required=True, type=Path, help="where to write rev and metrics (JSON)")
    parser.add_argument(
        "--also",
        action="append",
        default=[],
        help="KEY=FILE: another metrics file, added under KEY if present",
    )
    args = parser.parse_args(argv)
    extra = dict(item.split("=", 1) for item in args.also)
    if CALLER_PYTHONPATH in os.environ:  # the caller added our code folder; stages import their own copy
        caller = os.environ.pop(CALLER_PYTHONPATH)
        if caller:
            os.environ["PYTHONPATH"] = caller
        else:
            os.environ.pop("PYTHONPATH", None)
    from dvc.exceptions import DvcException

    try:
        result = run_experiment(args.project.resolve(), args.name, args.overrides, args.metrics, extra)
    except (DvcException, CommandFailed, FileNotFoundError, ValueError) as error:
        cause = f" ({error.__cause__})" if error.__cause__ else ""
        print(f"ERROR: experiment {args.name}: {error}{cause}", file=sys.stderr)
        return 1
    write_text_atomic(args.result, json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
