"""The MLflow store behind the stage runs: where it is, how it is created, and retries on a locked SQLite.

Default store: ``sqlite:///<project>/mlflow.db`` with artifacts under ``<project>/mlartifacts`` (no
server); ``MLFLOW_TRACKING_URI`` points it elsewhere.

Parallel writers (a 5-seed sweep) share the SQLite file. Measured with MLflow 3.17.2: processes that
open a *fresh* store together break it (MLflow migrates an empty database without a lock), so the
schema is created once under a file lock; on a ready store plain MLflow survived 10 writers x 200
steps (its 20 s busy timeout), and WAL journaling (set once, persistent) roughly halved their wall
time and lets readers (``mlflow ui``, lineage queries) run beside writers. Every write also retries
with backoff on ``database is locked``, in case a transaction outlasts the busy timeout.
"""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

DB_NAME = "mlflow.db"
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"  # MLflow 3's UI: GenAI view unless this says otherwise
CLASSIC_ML_KIND = "custom_model_development"
ARTIFACTS_DIR = "mlartifacts"
# Offline and quiet (see ecosystem notes): no telemetry DNS lookups, no progress bars, no git warnings.
QUIET_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "DVC_NO_ANALYTICS": "1",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "GIT_PYTHON_REFRESH": "quiet",
}
T = TypeVar("T")


def configure_tracking(project_root: Path) -> str:
    """The tracking URI: ``MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<root>/mlflow.db``.

    Sets the environment that keeps MLflow and DVC offline and quiet; a local SQLite store gets its
    schema created once (under a file lock) and WAL journaling (persistent in the file).
    """
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(project_root).resolve() / DB_NAME}"
    db = sqlite_path(uri)
    if db is not None:
        prepare_sqlite_store(db, uri)
    return uri


def prepare_sqlite_store(db: Path, uri: str) -> None:
    """Create the MLflow schema in ``db`` once, in WAL mode, under an inter-process file lock.

    MLflow 3.17 migrates an empty database without a lock, so processes that open a fresh store at
    the same moment race on the migrations (``duplicate column name``) and break the file.
    """
    from filelock import FileLock

    db.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{db}.lock", timeout=600):
        retry_locked(enable_wal, db)
        if not schema_ready(db):
            retry_locked(mlflow_client(uri).search_experiments, max_results=1)  # runs MLflow's migrations


def schema_ready(db: Path) -> bool:
    """True when ``db`` holds a completed MLflow schema (an alembic version, no half-done migration)."""
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "alembic_version" not in tables or any(name.startswith("_alembic_tmp") for name in tables):
            return False
        return connection.execute("SELECT count(*) FROM alembic_version").fetchone()[0] > 0


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, None for any other store (or in-memory SQLite)."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri.removeprefix("sqlite:///").split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def artifact_location(uri: str) -> str | None:
    """``<folder of the SQLite file>/mlartifacts`` as a file URI; None (the server decides) otherwise."""
    db = sqlite_path(uri)
    return (db.resolve().parent / ARTIFACTS_DIR).as_uri() if db is not None else None


def enable_wal(db: Path) -> None:
    """Put the SQLite database ``db`` in WAL mode (creates an empty file if there is none)."""
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as connection:
        (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
        if str(mode).lower() != "wal":
            connection.execute("PRAGMA journal_mode=WAL")


def is_lock_error(error: BaseException) -> bool:
    """True for SQLite's transient ``database is locked`` / ``busy`` (raw or wrapped by MLflow)."""
    text = str(error).lower()
    return "database is locked" in text or "database is busy" in text


def retry_locked(
    fn: Callable[..., T], *args: Any, attempts: int = 8, delay_s: float = 0.05, **kwargs: Any
) -> T:
    """Call ``fn``; on a lock error wait ``delay_s * 2**k`` (x1-2 jitter) and try again."""
    for attempt in range(attempts):
        try:
            return fn(*args, **kwargs)
        except Exception as error:
            if attempt == attempts - 1 or not is_lock_error(error):
                raise
            time.sleep(delay_s * 2**attempt * (1.0 + random.random()))
    raise AssertionError("unreachable")


def mlflow_client(uri: str) -> Any:
    """An MlflowClient for tracking and registry at ``uri`` (imports MLflow: ~3 s the first time)."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment_id(client: Any, name: str, uri: str) -> str:
    """Id of experiment ``name``, created (with the local artifact folder) if missing; race-safe.

    The experiment is tagged for MLflow's classic ML view (``mlflow.experimentKind``; without it the
    MLflow 3 UI opens it in the GenAI view)."""
    experiment = retry_locked(client.get_experiment_by_name, name)
    if experiment is None:
        try:
            retry_locked(client.create_experiment, name, artifact_location=artifact_location(uri))
        except Exception:  # another process created it between the two calls
            if retry_locked(client.get_experiment_by_name, name) is None:
                raise
        experiment = retry_locked(client.get_experiment_by_name, name)
    if experiment.tags.get(EXPERIMENT_KIND_TAG) != CLASSIC_ML_KIND:
        retry_locked(
            client.set_experiment_tag, experiment.experiment_id, EXPERIMENT_KIND_TAG, CLASSIC_ML_KIND
        )
    return experiment.experiment_id
