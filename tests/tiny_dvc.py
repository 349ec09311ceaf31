"""Tiny git + DVC projects for the flow tests (``test_flows.py``, ``test_ablation_flow.py``)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

IGNORED = "/reports/\n/mlflow.db*\n/mlartifacts/\n/.prefect/\n"


def git(root: Path, *args: str) -> str:
    """stdout of ``git -C root <args>`` without its trailing newline, committing as a test identity (a
    failure raises)."""
    command = ["git", "-C", str(root), "-c", "user.name=tests", "-c", "user.email=tests@danceba", *args]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()


def make_project(root: Path, files: Mapping[str, str]) -> Path:
    """Write ``files`` (path -> text) and a .gitignore into ``root``, ``git init`` + ``dvc init``, commit."""
    for name, text in {".gitignore": IGNORED, **files}.items():
        (root / name).write_text(text)
    git(root, "init", "-q")
    git(root, "config", "user.email", "tests@danceba")
    git(root, "config", "user.name", "tests")
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, check=True)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "tiny project")
    return root


def mlflow_runs(root: Path) -> dict[str, Any]:
    """Every MLflow run of the project (``<root>/mlflow.db``, experiment ``danceba``), by run id."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("danceba")
    return {run.info.run_id: run for run in client.search_runs([experiment.experiment_id], max_results=1000)}
