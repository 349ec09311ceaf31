"""The ``sweep`` flow (N seeds) and the experiment machinery it shares with ``ablation``: each run a DVC
experiment in its own process, a Prefect task with retries, an MLflow child run and a record (see
:mod:`pipelines.flows` for the whole story)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture, as_completed
from prefect.task_runners import ThreadPoolTaskRunner

from danceba.atomic import write_text_atomic
from danceba.nested import number_leaves
from danceba.run_progress import ProgressLine
from danceba.sweep import (
    STATUS_FAILED,
    STATUS_OK,
    SeedRecord,
    SeedRun,
    format_sweep_markdown,
    metric_values,
    read_seed_records,
    seeds_to_run,
    sweep_fingerprint,
    sweep_report,
    sweep_seeds,
    write_seed_record,
)
from danceba.tracking import NullStageRun, StageRun
from danceba.tracking_store import configure_tracking
from pipelines import dvc_experiment
from pipelines.commands import git_output, run_watched, subprocess_env
from pipelines.dvc_graph import StageInfo, dvc_stages, lists_param, seed_dependent
from pipelines.flow_runs import tracked_run
from pipelines.reproduce_flow import repro_in_order

log = logging.getLogger("danceba.flows")

SEED_PARAMS: tuple[str, ...] = ("train_gpt.train.seed",)
METRICS_FILE = "reports/metrics.json"
# Read back with it from every experiment (when present), under these keys: the teacher-forced val CE with
# the real and another song's music (the "does it listen" gap) is a training metric.
EXTRA_METRICS = {"train_gpt": "reports/train_gpt/metrics.json"}
REPORTS_DIR = "reports"
DEFAULT_SEEDS = 5
CODE_ROOT = Path(__file__).resolve().parents[1]

Item = TypeVar("Item")


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
            tracker.log_metrics(number_leaves(metric_values(result["metrics"])))
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


def project_param(project_root: Path, dotted_key: str) -> Any:
    """A value of the project's ``params.yaml`` (``None`` when the file or the key is missing).

    Read as plain YAML, not through ``danceba.config``: the flows run any DVC project's stages (the
    tests' tiny projects have params of their own)."""
    path = project_root / "params.yaml"
    node: Any = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else {}
    for part in dotted_key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def fitting_jobs(project_root: Path, jobs: int | None) -> int:
    """Experiments at once: ``jobs``, or as many as the cores hold at ``compute.threads`` each.

    Each stage computes with ``compute.threads`` threads (a param: results depend on it), so parallel
    experiments share cores by running fewer at once, not by changing the thread count: 2 jobs x 2
    threads on 2 cores ran each GPT 4x slower than one alone. More than fit is allowed, with a warning.
    """
    threads = int(project_param(project_root, "compute.threads") or 1)  # a project without the key: 1
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
