"""Prefect flows: ``reproduce`` (the DVC chain), ``sweep`` (N seeds) and ``ablation`` (variants x seeds).

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
(:data:`DOWNLOAD_STAGES`) are retried. One MLflow parent run per flow; every stage subprocess gets
``DANCEBA_PARENT_RUN_ID`` so its own run (``danceba.tracking.stage_run``) becomes a child.
Stage commands find this interpreter's ``python`` (its folder is put first on ``PATH``).

``sweep``: the *seed-dependent* stages are those listing a key of :data:`SEED_PARAMS` among their
params, plus everything downstream of them (here ``train_gpt``, ``generate``, ``evaluate``). The
other (upstream) stages run once, first, in the workspace (as in ``reproduce``); then every seed is a
DVC experiment (``seed-<s>``, every seed key set to ``s``) run in its own temporary copy, where DVC
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
another process's experiment. So each seed runs :mod:`pipelines.dvc_experiment`: the same DVC code path as
``dvc exp run --temp -S <seed keys>=<s> --name seed-<s>``, with a stash of its own. (``dvc exp run
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
import contextlib
import dataclasses
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture, as_completed
from prefect.task_runners import ThreadPoolTaskRunner

from danceba.ablation import (
    Variant,
    parse_variant_list,
    select_variants,
    variant_fingerprint,
    variant_records_dir,
)
from danceba.ablation_markdown import KEY_COLUMNS, format_ablation_markdown
from danceba.ablation_report import ablation_report, protocols
from danceba.atomic import write_text_atomic
from danceba.run_progress import LogWatcher, ProgressLine
from danceba.sweep import (
    STATUS_FAILED,
    STATUS_OK,
    SeedRecord,
    SeedRun,
    flatten_metrics,
    format_sweep_markdown,
    metric_values,
    read_seed_records,
    seeds_to_run,
    sweep_fingerprint,
    sweep_report,
    sweep_seeds,
    write_seed_record,
)
from danceba.tracking import (
    PARENT_RUN_ENV,
    PARENT_TAG,
    NullStageRun,
    StageRun,
    flatten_params,
    git_state,
    library_versions,
    tracking_enabled,
)
from danceba.tracking_store import QUIET_ENV, configure_tracking, experiment_id, mlflow_client, retry_locked
from pipelines import dvc_experiment
from pipelines.dvc_graph import StageInfo, dvc_stages, lists_param, seed_dependent, with_upstream

log = logging.getLogger("danceba.flows")

SEED_PARAMS: tuple[str, ...] = ("train_gpt.train.seed",)
DOWNLOAD_STAGES: tuple[str, ...] = ("fetch",)
METRICS_FILE = "reports/metrics.json"
# Read back with it from every experiment (when present), under these keys: the teacher-forced val CE with
# the real and another song's music (the "does it listen" gap) is a training metric.
EXTRA_METRICS = {"train_gpt": "reports/train_gpt/metrics.json"}
REPORTS_DIR = "reports"
DEFAULT_SEEDS = 5
DEFAULT_ABLATION_SEEDS = 3
MLFLOW_EXPERIMENT = "danceba"
CODE_ROOT = Path(__file__).resolve().parents[1]
_PREFECT_DEFAULTS = {  # env var -> (Prefect setting, value), applied only when the env var is unset
    "PREFECT_SERVER_ANALYTICS_ENABLED": ("server.analytics_enabled", False),
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": ("server.ephemeral.startup_timeout_seconds", 120),
}


Item = TypeVar("Item")


class CommandFailed(RuntimeError):
    """A DVC stage or experiment subprocess exited non-zero."""


# ---------------------------------------------------------------------------------------------
# Subprocesses
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# MLflow
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def tracked_run(
    project_root: Path,
    name: str,
    *,
    parent_run_id: str | None = None,
    tags: Mapping[str, str] | None = None,
    params: Mapping[str, Any] | None = None,
) -> Iterator[StageRun | NullStageRun]:
    """An MLflow run (child of ``parent_run_id`` if given); ended FAILED on an exception, KILLED on Ctrl-C."""
    if not tracking_enabled():
        yield NullStageRun()
        return
    uri = configure_tracking(project_root)
    client = mlflow_client(uri)
    commit, dirty = git_state(project_root)
    lineage = {"git.commit": commit, "git.dirty": dirty, "mlflow.source.git.commit": commit}
    lineage |= library_versions() | dict(tags or {})
    run_tags = {**lineage, PARENT_TAG: parent_run_id} if parent_run_id else dict(lineage)
    experiment = experiment_id(client, MLFLOW_EXPERIMENT, uri)
    run = retry_locked(client.create_run, experiment, tags=run_tags, run_name=name)
    tracker = StageRun(client, run, name, lineage)
    try:
        if params:
            from mlflow.entities import Param

            batch = [Param(k, v) for k, v in flatten_params(params).items()]
            retry_locked(client.log_batch, tracker.run_id, params=batch)
        yield tracker
    except BaseException as error:
        retry_locked(
            client.set_terminated, tracker.run_id, "FAILED" if isinstance(error, Exception) else "KILLED"
        )
        raise
    else:
        retry_locked(client.set_terminated, tracker.run_id, "FINISHED")


# ---------------------------------------------------------------------------------------------
# reproduce
# ---------------------------------------------------------------------------------------------


@task(name="dvc-repro-stage", task_run_name="repro-{stage}", cache_policy=NO_CACHE)
def repro_stage(project_root: str, stage: str, parent_run_id: str | None = None) -> str:
    """``dvc repro --single-item <stage>`` (skipped by DVC when nothing it depends on changed)."""
    command = dvc_command("repro", "--single-item", stage)
    run_command(
        command, f"dvc repro --single-item {stage}", Path(project_root), subprocess_env(parent_run_id)
    )
    return stage


def repro_in_order(
    project_root: Path,
    stages: Sequence[str],
    parent_run_id: str | None,
    download_retries: int,
    download_retry_delay_s: float,
) -> None:
    """Run ``repro_stage`` for each stage in turn; download stages get retries."""
    retrying = repro_stage.with_options(retries=download_retries, retry_delay_seconds=download_retry_delay_s)
    for stage in stages:
        runner = retrying if stage in DOWNLOAD_STAGES else repro_stage
        runner(str(project_root), stage, parent_run_id)


@flow(name="danceba-reproduce")
def reproduce(
    project_root: str = ".",
    stages: list[str] | None = None,
    download_retries: int = 3,
    download_retry_delay_s: float = 10.0,
) -> list[str]:
    """Reproduce the DVC chain (or ``stages`` and their upstream), one task per stage; returns the stages run."""
    root = Path(project_root).resolve()
    graph = dvc_stages(root)
    names = with_upstream(graph, stages) if stages else [s.name for s in graph]
    with tracked_run(root, "reproduce", tags={"danceba.flow": "reproduce"}, params={"stages": names}) as run:
        repro_in_order(root, names, run.run_id, download_retries, download_retry_delay_s)
        if (root / "dvc.lock").exists():
            run.log_artifact(root / "dvc.lock")
    return names


# ---------------------------------------------------------------------------------------------
# sweep
# ---------------------------------------------------------------------------------------------


def current_fingerprint(project_root: Path, upstream: Sequence[str], seed_params: Sequence[str]) -> str:
    """The sweep fingerprint of the workspace as it is now (see ``danceba.sweep.sweep_fingerprint``)."""
    head = git_output(project_root, "rev-parse", "HEAD").strip()
    excluded = (
        ":(exclude)dvc.lock",
        ":(exclude)params.yaml",
        ":(exclude,glob)**/.gitignore",
    )  # DVC edits these
    diff = git_output(project_root, "diff", "HEAD", "--binary", "--", ".", *excluded)
    params_path, lock_path = project_root / "params.yaml", project_root / "dvc.lock"
    params = yaml.safe_load(params_path.read_text(encoding="utf-8")) if params_path.exists() else {}
    lock = yaml.safe_load(lock_path.read_text(encoding="utf-8")) if lock_path.exists() else {}
    locked = (lock or {}).get("stages", {})
    return sweep_fingerprint(head, diff, params or {}, seed_params, {s: locked.get(s) for s in upstream})


def run_seed_experiment(
    project_root: Path,
    name: str,
    overrides: Sequence[str],
    metrics_file: str,
    parent_run_id: str | None,
    log_path: Path,
    flow_name: str = "sweep",
) -> dict[str, Any]:
    """Run one DVC experiment in its own process (:mod:`pipelines.dvc_experiment`); ``{"rev", "metrics"}``.

    While it runs, its stage and step (read from ``log_path``) are shown on one line of stderr
    (:mod:`danceba.run_progress`)."""
    result_path = log_path.with_name(f".{name}.result.json")
    result_path.unlink(missing_ok=True)
    env = subprocess_env(parent_run_id)
    # An experiment runs in a temporary copy of the project: point its stages at this project's store,
    # or their runs would land in the copy's own mlflow.db and vanish with it.
    env.setdefault("MLFLOW_TRACKING_URI", configure_tracking(Path(project_root).resolve()))
    env[dvc_experiment.CALLER_PYTHONPATH] = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(CODE_ROOT), env.get("PYTHONPATH", "")) if p)
    command = dvc_experiment.command(project_root, name, overrides, metrics_file, result_path, EXTRA_METRICS)
    run_watched(command, f"experiment {name}", project_root, env, log_path, ProgressLine(name, flow_name))
    try:
        return json.loads(result_path.read_text(encoding="utf-8"))
    finally:
        result_path.unlink(missing_ok=True)


@task(name="seed-experiment", task_run_name="{run.name}", cache_policy=NO_CACHE)
def run_seed(
    project_root: str,
    run: SeedRun,
    seed_params: list[str],
    metrics_file: str,
    flow_name: str = "sweep",
    parent_run_id: str | None = None,
) -> dict[str, Any]:
    """One experiment: its DVC experiment, its MLflow child run and its record (on success and failure)."""
    from prefect.runtime import task_run

    root, name = Path(project_root), run.name
    attempt = int(task_run.run_count or 1)
    overrides = run.all_overrides(seed_params)
    tags = {
        "danceba.flow": flow_name,
        "danceba.seed": str(run.seed),
        "dvc.exp.name": name,
        "danceba.attempt": str(attempt),
    }
    if run.variant:
        tags["danceba.variant"] = run.variant
    record = SeedRecord(
        run.seed, STATUS_FAILED, attempt, run.fingerprint, experiment=name, variant=run.variant
    )
    start = time.monotonic()
    try:
        with tracked_run(
            root, name, parent_run_id=parent_run_id, tags=tags, params={"overrides": overrides}
        ) as tracker:
            log_path = Path(run.records_dir) / f"{name}.log"
            result = run_seed_experiment(
                root, name, overrides, metrics_file, tracker.run_id or parent_run_id, log_path, flow_name
            )
            tracker.log_metrics(flatten_metrics(metric_values(result["metrics"])))
            tracker.set_tags({"dvc.exp.rev": result["rev"]})
    except Exception as error:
        write_seed_record(
            run.records_dir, _timed(dataclasses.replace(record, error=str(error)[-2000:]), start)
        )
        raise
    record = dataclasses.replace(record, status=STATUS_OK, metrics=result["metrics"], rev=result["rev"])
    write_seed_record(run.records_dir, _timed(record, start))
    return record.to_json()


def _timed(record: SeedRecord, start: float) -> SeedRecord:
    return dataclasses.replace(record, seconds=round(time.monotonic() - start, 3))


def run_windowed(
    submit: Callable[[Item], PrefectFuture[Any]], items: Sequence[Item], jobs: int
) -> dict[Item, Any]:
    """Submit ``items`` keeping at most ``jobs`` running (whatever the task runner); ``{item: state}``."""
    if jobs < 1:
        raise ValueError(f"jobs: need at least 1, got {jobs}")
    pending, running, states = list(items), {}, {}
    while pending or running:
        while pending and len(running) < jobs:
            item = pending.pop(0)
            running[submit(item)] = item
        finished = next(iter(as_completed(list(running))))
        finished.wait()  # sets the final state (`.state` alone may read a stale one from the API)
        states[running.pop(finished)] = finished.state
    return states


def fitting_jobs(project_root: Path, jobs: int | None) -> int:
    """Experiments at once: ``jobs``, or as many as the cores hold at ``compute.threads`` each.

    Each stage computes with ``compute.threads`` threads (a param: results depend on it), so parallel
    experiments share cores by running fewer at once, not by changing the thread count: 2 jobs x 2
    threads on 2 cores ran each GPT 4x slower than one alone. More than fit is allowed, with a warning.
    """
    params = yaml.safe_load((project_root / "params.yaml").read_text(encoding="utf-8")) or {}
    threads = int((params.get("compute") or {}).get("threads", 1))  # a project without the key: 1
    cores = os.cpu_count() or 1
    if jobs is None:
        return max(1, cores // threads)
    if jobs * threads > cores:
        log.warning(
            "%d jobs x compute.threads %d > %d cores: the experiments will slow each other down "
            "(set compute.threads: 1 in params.yaml to run more at once)",
            jobs,
            threads,
            cores,
        )
    return jobs


def split_stages(graph: Sequence[StageInfo], keys: Sequence[str], what: str) -> tuple[set[str], list[str]]:
    """``(varied, upstream)``: the stages that depend on ``keys`` (and their descendants), the others.

    A key no stage lists would be set for nothing: it raises ValueError, as does no varied stage at all.
    """
    unlisted = [key for key in keys if not any(lists_param(stage, key) for stage in graph)]
    if unlisted:
        raise ValueError(f"dvc.yaml: no stage lists the {what} params {unlisted} (nothing would change)")
    varied = seed_dependent(graph, keys)
    if not varied:
        raise ValueError(f"dvc.yaml: no stage lists any of the {what} params {list(keys)} (nothing to run)")
    return varied, [s.name for s in graph if s.name not in varied]


def run_seed_runs(
    project_root: Path,
    runs: Sequence[SeedRun],
    *,
    jobs: int,
    retries: int,
    retry_delay_s: float,
    seed_params: list[str],
    metrics_file: str,
    flow_name: str,
    parent_run_id: str | None,
) -> None:
    """Run the experiments ``jobs`` at a time, each retried ``retries`` times; every run leaves a record."""
    seed_task = run_seed.with_options(retries=retries, retry_delay_seconds=retry_delay_s)
    states = run_windowed(
        lambda run: seed_task.submit(
            str(project_root), run, seed_params, metrics_file, flow_name, parent_run_id
        ),
        runs,
        jobs,
    )
    record_lost_runs(states)


@flow(name="danceba-sweep", task_runner=ThreadPoolTaskRunner())  # `jobs` limits the seeds running at once
def sweep(
    project_root: str = ".",
    seeds: int | list[int] = DEFAULT_SEEDS,
    jobs: int | None = None,
    seed_retries: int = 1,
    seed_retry_delay_s: float = 5.0,
    rerun: bool = False,
    seed_params: list[str] | None = None,
    metrics_file: str = METRICS_FILE,
    reports_dir: str = REPORTS_DIR,
    download_retries: int = 3,
    download_retry_delay_s: float = 10.0,
) -> dict[str, Any]:
    """Train, generate and evaluate under each seed; returns the report written to ``<reports>/sweep.json``.

    ``seeds``: a count N (seeds 0..N-1) or a list. ``jobs``: experiments at once. ``rerun``: ignore
    finished seeds' records. ``seed_params``: the params.yaml keys set to the seed (default
    :data:`SEED_PARAMS`).
    """
    root = Path(project_root).resolve()
    keys = list(seed_params or SEED_PARAMS)
    seed_list = sweep_seeds(seeds) if isinstance(seeds, int) else [int(s) for s in seeds]
    jobs = fitting_jobs(root, jobs)
    seeded, upstream = split_stages(dvc_stages(root), keys, "seed")
    records_dir = root / reports_dir / "sweep"
    params = {"seeds": seed_list, "jobs": jobs, "seed_params": keys, "seed_stages": sorted(seeded)}
    with tracked_run(root, "sweep", tags={"danceba.flow": "sweep"}, params=params) as parent:
        repro_in_order(root, upstream, parent.run_id, download_retries, download_retry_delay_s)
        fingerprint = current_fingerprint(root, upstream, keys)
        todo = seed_list if rerun else seeds_to_run(seed_list, read_seed_records(records_dir), fingerprint)
        runs = [SeedRun(seed, fingerprint, str(records_dir)) for seed in todo]
        run_seed_runs(
            root,
            runs,
            jobs=jobs,
            retries=seed_retries,
            retry_delay_s=seed_retry_delay_s,
            seed_params=keys,
            metrics_file=metrics_file,
            flow_name="sweep",
            parent_run_id=parent.run_id,
        )
        report = sweep_report(seed_list, read_seed_records(records_dir), fingerprint, keys)
        report["skipped"] = [s for s in seed_list if s not in todo]
        json_path, md_path = write_sweep_reports(root / reports_dir, report)
        log_summary(parent, report, json_path, md_path)
    return report


def record_lost_runs(states: Mapping[SeedRun, Any]) -> None:
    """A run whose task failed without writing its failed record (e.g. a lost Dask worker) gets one."""
    for run, state in states.items():
        record = read_seed_records(run.records_dir).get(run.seed)
        if state.is_completed() or (
            record and record.status == STATUS_FAILED and record.fingerprint == run.fingerprint
        ):
            continue
        lost = SeedRecord(
            run.seed,
            STATUS_FAILED,
            0,
            run.fingerprint,
            experiment=run.name,
            error=str(state.message),
            variant=run.variant,
        )
        write_seed_record(run.records_dir, lost)


def write_sweep_reports(reports_dir: Path, report: Mapping[str, Any]) -> tuple[Path, Path]:
    """``<reports>/sweep.json`` and ``<reports>/sweep.md`` (status table + metric tables)."""
    json_path, md_path = reports_dir / "sweep.json", reports_dir / "sweep.md"
    write_text_atomic(json_path, json.dumps(report, indent=2) + "\n")
    write_text_atomic(md_path, format_sweep_markdown(report))
    return json_path, md_path


def log_summary(run: StageRun | NullStageRun, report: Mapping[str, Any], *paths: Path) -> None:
    """Summary statistics as metrics (``<path>.mean`` ...), seed statuses as tags, the reports as artifacts."""
    metrics = {
        f"{path}.{stat}": value
        for path, stats in report["summary"]["metrics"].items()
        for stat in ("mean", "std", "min", "max")
        if (value := stats[stat]) is not None
    }
    run.log_metrics({**metrics, "sweep.n_ok": report["n_ok"], "sweep.n_failed": report["n_failed"]})
    run.set_tags({f"sweep.seed.{seed}": entry["status"] for seed, entry in report["seeds"].items()})
    for path in paths:
        run.log_artifact(path)


# ---------------------------------------------------------------------------------------------
# ablation
# ---------------------------------------------------------------------------------------------


def ablation_runs(
    variants: Sequence[Variant],
    seeds: Sequence[int],
    fingerprints: Mapping[str, str],
    reports_root: Path,
    rerun: bool,
) -> list[SeedRun]:
    """Every (variant, seed) to run, variant by variant; without ``rerun``, those not finished yet."""
    runs = []
    for variant in variants:
        records_dir = variant_records_dir(reports_root, variant)
        fingerprint = fingerprints[variant.name]
        todo = seeds if rerun else seeds_to_run(seeds, read_seed_records(records_dir), fingerprint)
        overrides = tuple(variant.override_args())
        runs += [SeedRun(s, fingerprint, str(records_dir), variant.name, overrides) for s in todo]
    return runs


@flow(name="danceba-ablation", task_runner=ThreadPoolTaskRunner())  # `jobs` limits the runs at once
def ablation(
    project_root: str = ".",
    seeds: int | list[int] = DEFAULT_ABLATION_SEEDS,
    variants: list[str] | None = None,
    jobs: int | None = None,
    seed_retries: int = 1,
    seed_retry_delay_s: float = 5.0,
    rerun: bool = False,
    seed_params: list[str] | None = None,
    metrics_file: str = METRICS_FILE,
    reports_dir: str = REPORTS_DIR,
    download_retries: int = 3,
    download_retry_delay_s: float = 10.0,
) -> dict[str, Any]:
    """The paper's ablation: every variant of ``danceba.ablation.VARIANTS`` (or ``variants``) under each seed.

    Each (variant, seed) is the DVC experiment ``<variant>-seed-<s>`` (the variant's overrides and the
    seed's) and an MLflow child run of the ``ablation`` parent run; the upstream stages run once, first.
    Returns the report written to ``<reports>/ablation.json`` (and ``ablation.md``).
    """
    started = time.monotonic()
    root = Path(project_root).resolve()
    keys = list(seed_params or SEED_PARAMS)
    seed_list = sweep_seeds(seeds) if isinstance(seeds, int) else [int(s) for s in seeds]
    chosen = select_variants(variants)
    jobs = fitting_jobs(root, jobs)
    override_keys = list(dict.fromkeys(key for variant in chosen for key in variant.keys()))
    varied, upstream = split_stages(dvc_stages(root), [*keys, *override_keys], "seed and variant")
    reports_root = root / reports_dir
    params = {
        "seeds": seed_list,
        "variants": [v.name for v in chosen],
        "jobs": jobs,
        "seed_params": keys,
        "varied_stages": sorted(varied),
    }
    with tracked_run(root, "ablation", tags={"danceba.flow": "ablation"}, params=params) as parent:
        repro_in_order(root, upstream, parent.run_id, download_retries, download_retry_delay_s)
        base = current_fingerprint(root, upstream, keys)
        fingerprints = {v.name: variant_fingerprint(base, v) for v in chosen}
        runs = ablation_runs(chosen, seed_list, fingerprints, reports_root, rerun)
        run_seed_runs(
            root,
            runs,
            jobs=jobs,
            retries=seed_retries,
            retry_delay_s=seed_retry_delay_s,
            seed_params=keys,
            metrics_file=metrics_file,
            flow_name="ablation",
            parent_run_id=parent.run_id,
        )
        records = {v.name: read_seed_records(variant_records_dir(reports_root, v)) for v in chosen}
        report = ablation_report(
            chosen,
            seed_list,
            records,
            fingerprints,
            keys,
            wall_time_s=time.monotonic() - started,
            data_source=params_value(root, "data.source"),
        )
        ran = {(run.variant, run.seed) for run in runs}
        report["skipped"] = {v.name: [s for s in seed_list if (v.name, s) not in ran] for v in chosen}
        json_path, md_path = write_ablation_reports(reports_root, report)
        log_ablation_summary(parent, report, json_path, md_path)
    return report


def params_value(project_root: Path, dotted_key: str) -> str:
    """A value of the project's params.yaml as text ("" when the file or the key is missing)."""
    path = project_root / "params.yaml"
    node: Any = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else {}
    for part in dotted_key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return "" if node is None else str(node)


def write_ablation_reports(reports_dir: Path, report: Mapping[str, Any]) -> tuple[Path, Path]:
    """``<reports>/ablation.json`` and ``<reports>/ablation.md``."""
    json_path, md_path = reports_dir / "ablation.json", reports_dir / "ablation.md"
    write_text_atomic(json_path, json.dumps(report, indent=2) + "\n")
    write_text_atomic(md_path, format_ablation_markdown(report))
    return json_path, md_path


def log_ablation_summary(run: StageRun | NullStageRun, report: Mapping[str, Any], *paths: Path) -> None:
    """The Markdown table's metrics (``<variant>.<protocol>.<row>.<metric>.mean`` ...), run statuses as
    tags (``ablation.<variant>.seed.<s>``), the reports as artifacts (every other metric is in the JSON)."""
    metrics = {
        "ablation.n_ok": report["n_ok"],
        "ablation.n_failed": report["n_failed"],
        "ablation.wall_time_s": report["wall_time_s"],
    }
    tags = {}
    for name, part in report["variants"].items():
        for protocol in protocols(report):
            for row, metric, _ in KEY_COLUMNS:
                stats = part["summary"]["metrics"].get(f"{protocol}.{row}.{metric}") or {}
                for stat in ("mean", "std", "ci_low", "ci_high"):
                    if stats.get(stat) is not None:
                        metrics[f"{name}.{protocol}.{row}.{metric}.{stat}"] = stats[stat]
        tags |= {f"ablation.{name}.seed.{seed}": entry["status"] for seed, entry in part["seeds"].items()}
    run.log_metrics(metrics)
    run.set_tags(tags)
    for path in paths:
        run.log_artifact(path)


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


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
