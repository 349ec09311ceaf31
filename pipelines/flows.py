"""Prefect flows: ``reproduce`` (the DVC chain), ``sweep`` (N seeds) and ``ablation`` (variants x seeds).

This module is their command line; the flows live in :mod:`pipelines.reproduce_flow`,
:mod:`pipelines.sweep_flow` (with the experiment machinery ``ablation`` shares) and
:mod:`pipelines.ablation_flow`, their subprocesses in :mod:`pipelines.commands` and their MLflow runs in
:mod:`pipelines.flow_runs`.

Commands (project root; the Makefile exports the quiet/offline environment)::

    python -m pipelines.flows reproduce                      # every stage of dvc.yaml, in DAG order
    python -m pipelines.flows reproduce --stage tokenize     # one stage and what it depends on
    python -m pipelines.flows sweep --seeds 5 --jobs 2       # seeds 0..4, two at a time (default: cores // compute.threads)
    python -m pipelines.flows sweep --seed-list 3 7 11       # explicit seeds
    python -m pipelines.flows sweep --seeds 5 --rerun        # ignore finished seeds' records
    python -m pipelines.flows ablation --seeds 3             # every variant of danceba.ablation x 3 seeds
    python -m pipelines.flows ablation --variants danceba,no_pre --seed-list 0 1

No Prefect server is needed: with ``PREFECT_API_URL`` unset, each command starts Prefect's temporary
local server. ``main`` defaults the environment to quiet and offline (``DO_NOT_TRACK``, no DVC/MLflow/
Prefect analytics, a 120 s ephemeral-server start-up timeout, ``PREFECT_HOME=<project>/.prefect``);
variables already set win.

DVC stays the single source of truth for what runs: ``reproduce`` runs one Prefect task per stage,
``dvc repro --single-item <stage>``, in the order of ``dvc.yaml``'s DAG, so caching and ``dvc.lock``
work exactly as with ``dvc repro`` (Prefect's own task caching is off). Download stages
(:data:`pipelines.reproduce_flow.DOWNLOAD_STAGES`) are retried. One MLflow parent run per flow; every stage subprocess gets
``DANCEBA_PARENT_RUN_ID`` so its own run (``danceba.tracking.stage_run``) becomes a child.
Stage commands find this interpreter's ``python`` (its folder is put first on ``PATH``).

``sweep``: the *seed-dependent* stages are those listing a key of
:data:`pipelines.sweep_flow.SEED_PARAMS` among their
params, plus everything downstream of them (here ``train_gpt``, ``generate``, ``evaluate``). The
other (upstream) stages run once, first, in the workspace (as in ``reproduce``); then every seed is a
DVC experiment (``seed-<s>``, every seed key set to ``s``) run in its own clone of the workspace, where DVC
restores the upstream outputs from the shared cache and re-runs only the seed-dependent stages. Each
seed is a Prefect task (at most ``jobs`` at once, retried ``seed_retries`` times) and an MLflow child
run of the sweep's parent run, and the DVC stages of that experiment nest under it. Each seed leaves
``reports/sweep/seed-<s>.json`` (status, attempts, metrics, experiment rev; see
:mod:`danceba.sweep`), and its log in ``seed-<s>.log``. The sweep then writes ``reports/sweep.json``
(status per seed + mean/std/min/max per metric) and ``reports/sweep.md``, and logs both (and the
summary metrics) on the parent run. A failed seed does not stop the others; the command exits 1 if
any seed failed. Restarted, the sweep skips seeds recorded ``ok`` under the same fingerprint (git
commit, code changes, params without the seed, upstream data).

``ablation``: the same machinery with a variant beside each seed. Every (variant, seed) of
:data:`danceba.ablation.VARIANTS` is one experiment (``<variant>-seed-<s>``: the variant's ``-S``
overrides, then the seed's), one :class:`danceba.sweep.SeedRun` through the same task, retries and
records (``reports/ablation/<variant>/seed-<s>.json``; the fingerprint adds the variant's overrides),
and one MLflow child run of the ``ablation`` parent (tag ``danceba.flow=ablation``). The upstream
stages (those depending on neither the seed nor any override key) run once, first. It writes
``reports/ablation.json`` (:mod:`danceba.ablation_report`: mean, std, min, max and a 95 % t-interval
over seeds of every metric, per variant) and ``reports/ablation.md`` (:mod:`danceba.ablation_markdown`).

Parallel DVC experiments (DVC 3.67.1): concurrent ``dvc exp run --temp`` processes share one git
stash; measured on 2 cores, 2 of 8 processes started 4 at a time failed with "Unable to acquire lock",
and (from DVC's code) a finishing process pops the next entry of the shared stash, which may be
another process's experiment. So each seed runs :mod:`pipelines.dvc_experiment`: DVC's public command
line in a private clone of the workspace that shares the project's DVC cache (``dvc exp run -S <seed
keys>=<s> --name seed-<s>`` there, then ``dvc exp push`` of the result into the project). (``dvc exp run
--queue`` + ``dvc queue start --jobs N`` is parallel too, but in detached Celery workers that Prefect
cannot schedule, limit or retry.)

Dask: the task runner is a parameter (``--task-runner``). ``prefect-dask`` and ``dask`` are not in
``requirements-lock.txt``; to run the seeds on a Dask cluster (workers must see the project folder at
the same path, e.g. a shared file system)::

    .venv/bin/pip install "prefect-dask==0.3.7"      # brings dask[distributed]
    python -m pipelines.flows sweep --seeds 5 --jobs 5 --task-runner dask          # local cluster
    dask scheduler --port 8786 &                                                  # or a real cluster:
    dask worker tcp://HOST:8786 --nworkers 5 --nthreads 1 &                       # (on each machine)
    python -m pipelines.flows sweep --seeds 5 --jobs 5 --task-runner dask --dask-address tcp://HOST:8786
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prefect.task_runners import ThreadPoolTaskRunner

from danceba.ablation import parse_variant_list, select_variants
from danceba.tracking_store import QUIET_ENV
from pipelines.ablation_flow import DEFAULT_ABLATION_SEEDS, ablation
from pipelines.reproduce_flow import reproduce
from pipelines.sweep_flow import DEFAULT_SEEDS, METRICS_FILE, REPORTS_DIR, SEED_PARAMS, fitting_jobs, sweep

_PREFECT_DEFAULTS = {  # env var -> (Prefect setting, value), applied only when the env var is unset
    "PREFECT_SERVER_ANALYTICS_ENABLED": ("server.analytics_enabled", False),
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": ("server.ephemeral.startup_timeout_seconds", 120),
}


def make_task_runner(kind: str, jobs: int, dask_address: str | None = None) -> Any:
    """``threads`` (default: a thread pool of ``jobs``) or ``dask`` (needs prefect-dask; see the docstring)."""
    if kind == "threads":
        return ThreadPoolTaskRunner(max_workers=jobs)
    if kind == "dask":
        try:
            from prefect_dask import DaskTaskRunner
        except ImportError as error:
            raise ValueError(
                '--task-runner dask: install it first: pip install "prefect-dask==0.3.7"'
            ) from error
        if dask_address:
            return DaskTaskRunner(address=dask_address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": jobs, "threads_per_worker": 1})
    raise ValueError(f"--task-runner: expected threads or dask, got {kind!r}")


def parser() -> argparse.ArgumentParser:
    """The ``python -m pipelines.flows`` command line."""
    main_parser = argparse.ArgumentParser(
        prog="python -m pipelines.flows", description=__doc__.splitlines()[0]
    )
    commands = main_parser.add_subparsers(dest="command", required=True)
    repro = commands.add_parser("reproduce", help="run the DVC chain, one Prefect task per stage")
    repro.add_argument("--stage", action="append", dest="stages", help="only this stage and its upstream")
    swp = commands.add_parser("sweep", help="train/generate/evaluate under N seeds, mean ± std")
    add_experiment_arguments(swp, DEFAULT_SEEDS)
    abl = commands.add_parser("ablation", help="the paper's ablation: every variant under N seeds")
    add_experiment_arguments(abl, DEFAULT_ABLATION_SEEDS)
    abl.add_argument(
        "--variants",
        type=variant_names_argument,
        help=f"comma-separated variants (default: all: {','.join(v.name for v in select_variants(None))})",
    )
    for sub in (repro, swp, abl):
        sub.add_argument("--project", default=".", help="the DVC project root (default: %(default)s)")
        sub.add_argument("--download-retries", type=int, default=3)
        sub.add_argument("--download-retry-delay", type=float, default=10.0)
    return main_parser


def variant_names_argument(text: str) -> list[str]:
    """``--variants a,b``: the names, checked against ``danceba.ablation.VARIANTS``."""
    try:
        return [variant.name for variant in select_variants(parse_variant_list(text))]
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def add_experiment_arguments(sub: argparse.ArgumentParser, default_seeds: int) -> None:
    """The options ``sweep`` and ``ablation`` share: seeds, jobs, retries, keys, paths, task runner."""
    group = sub.add_mutually_exclusive_group()
    group.add_argument("--seeds", type=int, default=default_seeds, help="seeds 0..N-1 (default: %(default)s)")
    group.add_argument("--seed-list", type=int, nargs="+", help="explicit seeds")
    sub.add_argument("--jobs", type=int, help="experiments at once (default: cores // compute.threads)")
    sub.add_argument("--seed-retries", type=int, default=1)
    sub.add_argument("--seed-retry-delay", type=float, default=5.0)
    sub.add_argument("--rerun", action="store_true", help="re-run experiments that already finished")
    sub.add_argument("--seed-param", action="append", dest="seed_params", help=f"default: {SEED_PARAMS}")
    sub.add_argument("--metrics", default=METRICS_FILE)
    sub.add_argument("--reports", default=REPORTS_DIR)
    sub.add_argument("--task-runner", choices=("threads", "dask"), default="threads")
    sub.add_argument("--dask-address", help="a running Dask scheduler (default: a local cluster)")


def quiet_prefect_settings(project_root: Path) -> dict[str, Any]:
    """Prefect settings for an offline, quiet run, except those the environment sets itself."""
    updates = {setting: value for env, (setting, value) in _PREFECT_DEFAULTS.items() if env not in os.environ}
    if "PREFECT_HOME" not in os.environ:
        updates["home"] = str(project_root / ".prefect")
    return updates


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; 0 on success, 1 when a sweep/ablation run failed (the reports are still written)."""
    args = parser().parse_args(argv)
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    from prefect.settings import temporary_settings

    root = Path(args.project).resolve()
    with temporary_settings(updates=quiet_prefect_settings(root)):
        if args.command == "reproduce":
            reproduce(str(root), args.stages, args.download_retries, args.download_retry_delay)
            return 0
        jobs = fitting_jobs(root, args.jobs)
        runner = make_task_runner(args.task_runner, jobs, args.dask_address)
        options = {
            "project_root": str(root),
            "seeds": args.seed_list or args.seeds,
            "jobs": jobs,
            "seed_retries": args.seed_retries,
            "seed_retry_delay_s": args.seed_retry_delay,
            "rerun": args.rerun,
            "seed_params": args.seed_params,
            "metrics_file": args.metrics,
            "reports_dir": args.reports,
            "download_retries": args.download_retries,
            "download_retry_delay_s": args.download_retry_delay,
        }
        if args.command == "ablation":
            report = ablation.with_options(task_runner=runner)(**options, variants=args.variants)
        else:
            report = sweep.with_options(task_runner=runner)(**options)
    print((root / args.reports / f"{args.command}.md").read_text(encoding="utf-8"))
    return 1 if report["n_failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
