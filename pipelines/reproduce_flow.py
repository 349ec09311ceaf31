"""The ``reproduce`` flow: the DVC chain, one Prefect task per stage (``dvc repro --single-item``) in
the order of ``dvc.yaml``'s DAG, under one MLflow parent run (see :mod:`pipelines.flows`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from pipelines.commands import dvc_command, run_command, subprocess_env
from pipelines.dvc_graph import dvc_stages, with_upstream
from pipelines.flow_runs import tracked_run

DOWNLOAD_STAGES: tuple[str, ...] = ("fetch",)


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
