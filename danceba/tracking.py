"""MLflow run helpers: one run per DVC stage, tagged with the lineage that ties it to its data.

``stage_run`` opens a run for a stage, logs its flattened params and tags it with the git commit
(and dirty flag), seed, data source, dataset version, device, library versions and, for every input
and output path, its DVC hash (``dvc.in.<path>`` / ``dvc.out.<path>``: the md5 DVC writes into
``dvc.lock``, ``<md5>.dir`` for a folder). :mod:`danceba.lineage` walks those tags back to the raw data.

The store (default ``sqlite:///<project>/mlflow.db``, ``MLFLOW_TRACKING_URI`` to point it elsewhere),
its creation and the retries on a locked SQLite file live in :mod:`danceba.tracking_store`.
``DANCEBA_TRACKING=off`` turns every call into a no-op. Every input is also logged as an MLflow dataset
and a stage can log its model with a signature (:mod:`danceba.tracking_models`).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import importlib.metadata
import json
import os
import platform
import re
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from danceba.cpu_kernels import kernels_in_use
from danceba.nested import flatten
from danceba.tracking_models import log_input_datasets
from danceba.tracking_store import configure_tracking, experiment_id, mlflow_client, retry_locked

TRACKING_ENV = "DANCEBA_TRACKING"
PARENT_RUN_ENV = "DANCEBA_PARENT_RUN_ID"
PARENT_RUN_ENVS = (PARENT_RUN_ENV, "MLFLOW_PARENT_RUN_ID")
DVC_IN = "dvc.in."
DVC_OUT = "dvc.out."
PARENT_TAG = "mlflow.parentRunId"
LIBRARIES = ("torch", "numpy", "mlflow", "dvc", "librosa")
_PATH_KEY = re.compile(r"^[\w./\- ]+$")
_MAX_PARAM_VALUE = 6000
_active_run: contextvars.ContextVar[str | None] = contextvars.ContextVar("danceba_active_run", default=None)


# ---------------------------------------------------------------------------------------------
# On/off switch
# ---------------------------------------------------------------------------------------------


def tracking_enabled() -> bool:
    """False when ``DANCEBA_TRACKING`` is ``off`` (or 0 / false / no)."""
    return os.environ.get(TRACKING_ENV, "on").strip().lower() not in {"off", "0", "false", "no"}


# ---------------------------------------------------------------------------------------------
# Lineage values
# ---------------------------------------------------------------------------------------------


def dvc_hash(path: Path) -> str:
    """The md5 DVC records for ``path``: the file's md5, or ``<md5>.dir`` for a folder.

    Computed by ``dvc_data`` itself (the folder hash is the md5 of DVC's sorted JSON listing of
    ``{relpath, md5}``), so it equals what ``dvc repro`` writes into ``dvc.lock``.
    """
    from dvc_data.hashfile.build import build
    from dvc_data.hashfile.db import HashFileDB
    from dvc_objects.fs import MemoryFileSystem, localfs

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: cannot compute its DVC hash, it does not exist")
    staging = HashFileDB(MemoryFileSystem(), "memory://danceba-dvc-hash", hash_name="md5")
    _, _, obj = build(staging, os.fspath(path.resolve()), localfs, "md5", dry_run=True)
    return str(obj.hash_info.value)


def locked_hashes(project_root: Path) -> dict[str, str]:
    """``{path: md5}`` of every stage output recorded in ``<root>/dvc.lock`` ({} without one)."""
    lock = Path(project_root) / "dvc.lock"
    if not lock.exists():
        return {}
    try:
        stages = (yaml.safe_load(lock.read_text(encoding="utf-8")) or {}).get("stages", {})
        return {
            str(out["path"]): str(out["md5"])
            for stage in stages.values()
            for out in stage.get("outs", [])
            if out.get("md5")
        }
    except (yaml.YAMLError, AttributeError, KeyError, TypeError) as error:
        raise ValueError(f"{lock}: not a readable dvc.lock ({error})") from error


def path_key(path: str | os.PathLike[str], project_root: Path) -> str:
    """``path`` as DVC names it: POSIX, relative to the project root (absolute if outside it)."""
    candidate = Path(path)
    if candidate.is_absolute():
        with contextlib.suppress(ValueError):
            candidate = candidate.resolve().relative_to(Path(project_root).resolve())
    key = candidate.as_posix()
    if not _PATH_KEY.match(key) or len(key) > 240:
        raise ValueError(f"{key!r}: a tracked path may hold only letters, digits, _ . / - and spaces")
    return key


def git_state(project_root: Path) -> tuple[str, str]:
    """(commit, dirty) of the git work tree at ``project_root``; ("unknown", "unknown") outside git.

    Dirty means a tracked file differs from the commit, ignoring untracked files (as ``git describe
    --dirty``), ``dvc.lock`` and every output that ``dvc.yaml`` declares: ``dvc repro`` rewrites those
    while it runs (it removes a stage's outputs before running the stage), so they say nothing about
    the code and params a run was made from.
    """

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", "-C", str(project_root), *args], capture_output=True, text=True, timeout=60, check=False
        )

    try:
        commit, status = (
            git("rev-parse", "HEAD"),
            git(
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                ":/",
                ":(top,exclude,glob)**/dvc.lock",
                *(f":(top,exclude){path}" for path in declared_outputs(project_root)),
            ),
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown", "unknown"
    if commit.returncode != 0 or status.returncode != 0:
        return "unknown", "unknown"
    return commit.stdout.strip(), str(bool(status.stdout.strip())).lower()


def declared_outputs(project_root: Path) -> list[str]:
    """Every ``outs`` / ``metrics`` / ``plots`` path of ``<root>/dvc.yaml`` ([] without a readable one)."""
    try:
        stages = (yaml.safe_load((Path(project_root) / "dvc.yaml").read_text(encoding="utf-8")) or {})[
            "stages"
        ]
        entries = [
            entry
            for stage in stages.values()
            for kind in ("outs", "metrics", "plots")
            for entry in stage.get(kind) or []
        ]
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError):
        return []
    return [entry if isinstance(entry, str) else next(iter(entry)) for entry in entries]


def library_versions() -> dict[str, str]:
    """``{lib.<name>: version}`` for the libraries that shape results (read from metadata, no import)."""
    versions = {"lib.python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[f"lib.{name}"] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[f"lib.{name}"] = "absent"
    return versions


def current_device() -> str:
    """``cuda:<GPU name>`` when torch sees a GPU, else ``cpu``."""
    import torch

    return f"cuda:{torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "cpu"


def torch_threads() -> int:
    """The torch intra-op thread count this process computes with (``compute.threads`` in a stage)."""
    import torch

    return torch.get_num_threads()


def flatten_params(params: Mapping[str, Any] | Any) -> dict[str, str]:
    """Nested mapping (or dataclass) -> ``{"a.b.c": str(value)}``; lists as JSON."""
    if not isinstance(params, Mapping) and not (
        dataclasses.is_dataclass(params) and not isinstance(params, type)
    ):
        raise TypeError(f"params: expected a mapping, got {type(params).__name__}")
    return {name: _param_text(value) for name, value in flatten(params).items()}


def _param_text(value: Any) -> str:
    text = json.dumps(value, default=str) if isinstance(value, list | tuple) else str(value)
    return text[:_MAX_PARAM_VALUE]


def parent_run_id() -> str | None:
    """The parent run: ``DANCEBA_PARENT_RUN_ID`` / ``MLFLOW_PARENT_RUN_ID``, else an enclosing stage_run."""
    for name in PARENT_RUN_ENVS:
        if os.environ.get(name):
            return os.environ[name]
    return _active_run.get()


# ---------------------------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------------------------


class StageRun:
    """The MLflow run of one stage; every write retries on ``database is locked``."""

    def __init__(
        self, client: Any, run: Any, stage: str, lineage: Mapping[str, str], tracking_uri: str | None = None
    ) -> None:
        self.client, self.stage, self.tracking_uri = client, stage, tracking_uri
        self.run_id: str | None = run.info.run_id
        self.experiment_id: str = run.info.experiment_id
        self.artifact_uri: str = run.info.artifact_uri
        self.lineage: dict[str, str] = {"mlflow.run_id": run.info.run_id, **lineage}

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log ``{name: value}`` at ``step`` (a training step; None for final metrics, stored as 0)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(str(k), float(v), now, int(step or 0)) for k, v in metrics.items()]
        for start in range(0, len(batch), 1000):
            retry_locked(self.client.log_batch, self.run_id, metrics=batch[start : start + 1000])

    def on_log(self, step: int, metrics: Mapping[str, float]) -> None:
        """``log_metrics`` with the argument order of ``danceba.train.loop.train(on_log=...)``."""
        self.log_metrics(metrics, step)

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        """Copy a file (or a folder's files) into the run's artifacts."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: artifact to log does not exist")
        log = self.client.log_artifacts if path.is_dir() else self.client.log_artifact
        retry_locked(log, self.run_id, str(path), artifact_path)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """Add tags to the run."""
        from mlflow.entities import RunTag

        batch = [RunTag(str(k), str(v)) for k, v in tags.items()]
        for start in range(0, len(batch), 100):
            retry_locked(self.client.log_batch, self.run_id, tags=batch[start : start + 100])

    def register_model(self, checkpoint_path: str | os.PathLike[str], name: str) -> str | None:
        """Log the checkpoint under ``checkpoints/`` and register it as a new version of model ``name``,
        unless the latest version holds the same bytes (a no-op re-run): then return that version."""
        checkpoint = Path(checkpoint_path)
        if not checkpoint.is_file():
            raise FileNotFoundError(f"{checkpoint}: checkpoint to register is not a file")
        md5 = dvc_hash(checkpoint)
        if (same := self._latest_version(name)) is not None and same.tags.get("dvc.md5") == md5:
            return str(same.version)  # the same bytes as the latest version: nothing new to register
        self.log_artifact(checkpoint, "checkpoints")
        try:
            retry_locked(self.client.create_registered_model, name)
        except Exception as error:
            if "already exists" not in str(error).lower():
                raise
        version = retry_locked(
            self.client.create_model_version,
            name,
            source=f"{self.artifact_uri}/checkpoints/{checkpoint.name}",
            run_id=self.run_id,
            tags={"dvc.md5": md5, "danceba.stage": self.stage},
        )
        return str(version.version)

    def log_model(self, model: Any, name: str, signature: Any) -> str | None:
        """Log ``model`` the MLflow way (``mlflow.pytorch.log_model`` with ``signature``, see
        :mod:`danceba.tracking_models`) under ``name``; return its model URI."""
        from danceba.tracking_models import log_torch_model

        if self.tracking_uri is None:
            raise ValueError(f"run {self.run_id}: no tracking URI to log model {name!r} to")
        metadata = {
            "danceba.stage": self.stage,
            **{k: v for k, v in self.lineage.items() if k.startswith(DVC_IN)},
        }
        return log_torch_model(
            self.tracking_uri, self.run_id, self.experiment_id, model, name, signature, metadata
        )

    def _latest_version(self, name: str) -> Any | None:
        """The highest version of registered model ``name`` (None when there is none)."""
        versions = retry_locked(self.client.search_model_versions, f"name = '{name}'")
        return max(versions, key=lambda v: int(v.version), default=None)


class NullStageRun:
    """What ``stage_run`` yields when tracking is off: the same calls, doing nothing."""

    run_id: str | None = None
    artifact_uri: str | None = None
    lineage: dict[str, str] = {}  # noqa: RUF012 - never mutated

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Do nothing."""

    def on_log(self, step: int, metrics: Mapping[str, float]) -> None:
        """Do nothing."""

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        """Do nothing."""

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """Do nothing."""

    def register_model(self, checkpoint_path: str | os.PathLike[str], name: str) -> str | None:
        """Do nothing; no version."""
        return None

    def log_model(self, model: Any, name: str, signature: Any) -> str | None:
        """Do nothing; no model URI."""
        return None


def input_hashes(keys: Sequence[str], project_root: Path) -> dict[str, str]:
    """DVC hash per input: an upstream stage's output hash from dvc.lock, else computed now."""
    locked = locked_hashes(project_root)
    hashes = {}
    for key in keys:
        if key not in locked and not (Path(project_root) / key).exists():
            raise FileNotFoundError(f"{key}: stage input does not exist and is not an output in dvc.lock")
        hashes[key] = locked.get(key) or dvc_hash(Path(project_root) / key)
    return hashes


def start_tags(
    project_root: Path, seed: int | None, data_source: str | None, device: str | None
) -> dict[str, str]:
    """Git commit and dirty flag, seed, data source, device and library versions, as run tags."""
    commit, dirty = git_state(project_root)
    return {
        "git.commit": commit,
        "git.dirty": dirty,
        "mlflow.source.git.commit": commit,
        "danceba.seed": "none" if seed is None else str(seed),
        "danceba.data_source": data_source or "unknown",
        "danceba.device": device or current_device(),
        "danceba.threads": str(torch_threads()),
        **{f"danceba.cpu_kernels.{name}": value for name, value in kernels_in_use().items()},
        **library_versions(),
    }


@contextlib.contextmanager
def stage_run(
    stage: str,
    params: Mapping[str, Any] | Any,
    *,
    inputs: Sequence[str | os.PathLike[str]],
    outputs: Sequence[str | os.PathLike[str]],
    seed: int | None = None,
    data_source: str | None = None,
    project_root: Path,
    experiment: str = "danceba",
    device: str | None = None,
    dataset: str = "data/raw",
) -> Iterator[StageRun | NullStageRun]:
    """Run the body inside one MLflow run of ``stage`` (see the module docstring for the tags).

    ``inputs`` / ``outputs``: the stage's data paths (relative to ``project_root``, as in dvc.yaml);
    outputs are hashed when the body returns, and a missing one fails the run. ``dataset``: the path
    whose hash is the dataset version. On an exception the run ends FAILED (KILLED on Ctrl-C) and
    the exception propagates.
    """
    if not tracking_enabled():
        yield NullStageRun()
        return
    root = Path(project_root).resolve()
    in_keys = [path_key(p, root) for p in inputs]
    out_keys = [path_key(p, root) for p in outputs]
    ins = input_hashes(in_keys, root)
    lineage = {
        "danceba.stage": stage,
        **start_tags(root, seed, data_source, device),
        "danceba.dataset_version": ins.get(dataset) or locked_hashes(root).get(dataset) or "unknown",
        **{f"{DVC_IN}{key}": value for key, value in ins.items()},
    }
    parent = parent_run_id()
    with mlflow_run(root, stage, lineage, parent, params, experiment) as tracker:
        token = _active_run.set(tracker.run_id)
        try:
            context = "training" if stage.startswith("train") else "input"
            log_input_datasets(tracker.client, tracker.run_id, ins, root, context)
            yield tracker
            outs = {key: dvc_hash(root / key) for key in out_keys}
            tracker.set_tags({f"{DVC_OUT}{key}": value for key, value in outs.items()})
            if dataset in outs:
                tracker.set_tags({"danceba.dataset_version": outs[dataset]})
        finally:
            _active_run.reset(token)


@contextlib.contextmanager
def mlflow_run(
    project_root: Path,
    name: str,
    lineage: Mapping[str, str],
    parent: str | None = None,
    params: Mapping[str, Any] | Any = None,
    experiment: str = "danceba",
) -> Iterator[StageRun]:
    """One MLflow run's lifecycle, shared by the stages and the flows: created in ``experiment`` with the
    ``lineage`` tags (and the parent's id, making it a child), ``params`` logged flat (100 a batch),
    ended FINISHED; on an exception FAILED (KILLED on Ctrl-C), and the exception propagates."""
    uri = configure_tracking(project_root)
    client = mlflow_client(uri)
    tags = {**lineage, PARENT_TAG: parent} if parent else dict(lineage)
    run = retry_locked(client.create_run, experiment_id(client, experiment, uri), tags=tags, run_name=name)
    tracker = StageRun(client, run, name, lineage, uri)
    try:
        if params:
            from mlflow.entities import Param

            flat = [Param(k, v) for k, v in flatten_params(params).items()]
            for start in range(0, len(flat), 100):
                retry_locked(client.log_batch, tracker.run_id, params=flat[start : start + 100])
        yield tracker
    except BaseException as error:
        status = "FAILED" if isinstance(error, Exception) else "KILLED"
        retry_locked(client.set_terminated, tracker.run_id, status)
        raise
    else:
        retry_locked(client.set_terminated, tracker.run_id, "FINISHED")
