"""The MLflow run of a flow or of one of its experiments (a child of the flow's run): lineage tags
(git state, library versions) on the shared run lifecycle of :func:`danceba.tracking.mlflow_run`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from danceba.tracking import (
    NullStageRun,
    StageRun,
    git_state,
    library_versions,
    mlflow_run,
    tracking_enabled,
)

MLFLOW_EXPERIMENT = "danceba"


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
    commit, dirty = git_state(project_root)
    lineage = {"git.commit": commit, "git.dirty": dirty, "mlflow.source.git.commit": commit}
    lineage |= library_versions() | dict(tags or {})
    with mlflow_run(project_root, name, lineage, parent_run_id, params, MLFLOW_EXPERIMENT) as tracker:
        yield tracker
