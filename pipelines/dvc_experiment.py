"""One DVC experiment in a temporary copy of the workspace, safe to run several at once.

``python -m pipelines.dvc_experiment --name seed-3 --set train_gpt.train.seed=3 --metrics
reports/metrics.json --result out.json`` does what ``dvc exp run --temp -S ... --name seed-3`` does
(the same DVC code path: stash the workspace with the overrides, reproduce in
``.dvc/tmp/exps/standalone/``, commit the experiment under ``refs/exps/``), then writes
``{"rev": <experiment commit>, "metrics": <metrics file of that commit>}`` to ``--result``.

Why not the ``dvc`` command line: in DVC 3.67.1 concurrent ``dvc exp run --temp`` processes share one
git stash. Measured on 2 cores, 2 of 8 processes started 4 at a time failed with "Unable to acquire
lock" (``dvc --wait-for-lock`` fixes that), and (from DVC's code: ``WorkspaceQueue.reproduce`` loops
until the stash is empty) a process that finishes its experiment pops the next entry of the shared
stash, which can be another process's just-queued experiment. This module: 12 of 12 experiments
started 4 at a time ran with their own overrides. Here each experiment gets its
own stash ref and waits for DVC's locks. Kept free of Prefect so each seed's process starts fast.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from danceba.atomic import write_text_atomic

STASH_REF_PREFIX = "refs/danceba-exp-stash"
CALLER_PYTHONPATH = "DANCEBA_CALLER_PYTHONPATH"


def run_experiment(
    project_root: Path,
    name: str,
    overrides: Sequence[str],
    metrics_file: str,
    extra_metrics: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Run experiment ``name`` with the ``-S`` style ``overrides``; ``{"rev", "metrics"}``.

    An earlier experiment of the same name on the same commit is replaced. ``metrics_file``: the
    metrics output (relative to the root) read back from the experiment's commit (git or DVC cache).
    ``extra_metrics``: ``{key: file}`` of other metrics outputs, each added to the metrics under its key
    when the experiment has it (e.g. ``{"train_gpt": "reports/train_gpt/metrics.json"}``).
    """
    from dvc.repo import Repo
    from dvc.repo.experiments.queue.tempdir import TempDirQueue
    from dvc.repo.experiments.refs import ExpRefInfo

    # DVC resolves the -S params file against the working directory: work from the project root.
    with contextlib.chdir(project_root), Repo(os.fspath(project_root), _wait_for_lock=True) as repo:
        experiments = repo.experiments
        # DVC's --temp queue is a cached property sharing one stash between processes; ours is ours alone.
        experiments.__dict__["tempdir_queue"] = TempDirQueue(repo, f"{STASH_REF_PREFIX}/{name}")
        old = str(ExpRefInfo(baseline_sha=repo.scm.get_rev(), name=name))
        if repo.scm.get_ref(old):
            repo.scm.remove_ref(old)
        results = experiments.run(params=list(overrides), name=name, tmp_dir=True)
        if len(results) != 1:
            raise RuntimeError(f"experiment {name}: DVC reported {len(results)} results, expected 1")
        rev = next(iter(results))
        extra = dict(extra_metrics or {})
        shown = repo.metrics.show(targets=[metrics_file, *extra.values()], revs=[rev]).get(rev, {})
        files = shown.get("data", {})
        entry = files.get(metrics_file, {})
        if "data" not in entry:
            raise FileNotFoundError(f"{metrics_file}: not in experiment {name} ({entry.get('error', shown)})")
        metrics = dict(entry["data"])
        for key, path in extra.items():
            if key in metrics:
                raise ValueError(f"{metrics_file} already has a key {key!r}: cannot add {path} under it")
            if "data" in files.get(path, {}):
                metrics[key] = files[path]["data"]
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
    except (DvcException, RuntimeError, FileNotFoundError, ValueError) as error:
        cause = f" ({error.__cause__})" if error.__cause__ else ""
        print(f"ERROR: experiment {args.name}: {error}{cause}", file=sys.stderr)
        return 1
    write_text_atomic(args.result, json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
