"""danceba.tracking and its store: stage runs (params, metrics, artifacts, lineage tags), DVC-equal
hashes, concurrency."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import platform
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from danceba import tracking, tracking_store
from tests.tiny_dvc import git

LOCKED_RAW = "0123456789abcdef0123456789abcdef.dir"
DVC_LOCK = {
    "schema": "2.0",
    "stages": {
        "fetch": {
            "cmd": "python -m pipelines.fetch",
            "outs": [{"path": "data/raw", "hash": "md5", "md5": LOCKED_RAW, "size": 5, "nfiles": 1}],
        }
    },
}


def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No outside store, parent run or off switch leaks into a test."""
    for name in ("MLFLOW_TRACKING_URI", tracking.TRACKING_ENV, *tracking.PARENT_RUN_ENVS):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A git project (one commit, untracked data: dirty) with a dvc.lock and its own SQLite store."""
    root = tmp_path_factory.mktemp("project")
    git(root, "init", "-q")
    (root / "README.md").write_text("tiny\n")
    git(root, "add", "README.md")
    git(root, "commit", "-q", "-m", "init")
    (root / "data" / "raw").mkdir(parents=True)
    (root / "data" / "raw" / "a.wav").write_bytes(b"audio")
    (root / "dvc.lock").write_text(yaml.safe_dump(DVC_LOCK))
    with pytest.MonkeyPatch.context() as monkeypatch:
        clean_env(monkeypatch)
        tracking_store.configure_tracking(root)
        yield root


@pytest.fixture(scope="module")
def client(project: Path):
    return tracking_store.mlflow_client(tracking_store.configure_tracking(project))


def test_git_state_ignores_dvc_lock_and_untracked_files(tmp_path: Path) -> None:
    assert tracking.git_state(tmp_path) == ("unknown", "unknown")
    git(tmp_path, "init", "-q")
    (tmp_path / "sub").mkdir()
    for name in ("train.py", "dvc.lock", "sub/dvc.lock"):
        (tmp_path / name).write_text("v1\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "init")
    (tmp_path / "dvc.lock").write_text("v2\n")  # dvc repro rewrites it between stages
    (tmp_path / "sub" / "dvc.lock").write_text("v2\n")
    (tmp_path / "scratch.txt").write_text("untracked\n")
    commit, dirty = tracking.git_state(tmp_path / "sub")
    assert (commit, dirty) == (git(tmp_path, "rev-parse", "HEAD"), "false")
    (tmp_path / "train.py").write_text("v2\n")
    assert tracking.git_state(tmp_path / "sub") == (commit, "true")


def test_git_state_ignores_the_outputs_dvc_yaml_declares(tmp_path: Path) -> None:
    """``dvc repro`` removes a stage's outputs before running it: a committed report is then missing."""
    git(tmp_path, "init", "-q")
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "metrics.json").write_text("{}\n")
    (tmp_path / "notes.md").write_text("v1\n")
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  evaluate:\n    cmd: echo\n    metrics:\n      - reports/metrics.json:\n"
        "          cache: false\n    outs:\n      - data/out\n"
    )
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "init")
    assert tracking.declared_outputs(tmp_path) == ["data/out", "reports/metrics.json"]
    (tmp_path / "reports" / "metrics.json").unlink()
    assert tracking.git_state(tmp_path)[1] == "false"
    (tmp_path / "notes.md").write_text("v2\n")
    assert tracking.git_state(tmp_path)[1] == "true"


def test_configure_tracking_defaults_to_project_sqlite_in_wal_mode(project: Path, monkeypatch) -> None:
    uri = tracking_store.configure_tracking(project)
    assert uri == f"sqlite:///{project.resolve()}/mlflow.db"
    with sqlite3.connect(project / "mlflow.db") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert tracking_store.schema_ready(project / "mlflow.db")
    assert tracking_store.artifact_location(uri) == (project.resolve() / "mlartifacts").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking_store.configure_tracking(project) == "http://127.0.0.1:5000"
    assert tracking_store.artifact_location("http://127.0.0.1:5000") is None


def test_stage_run_logs_params_metrics_artifacts_and_lineage_tags(project: Path, client) -> None:
    (project / "data" / "extra.txt").write_text("extra")
    params = {"optim": {"lr": 0.001, "betas": [0.9, 0.99]}, "max_steps": 5}
    outputs = ["reports/metrics.json", "checkpoints/gpt"]
    inputs = ["data/raw", project / "data" / "extra.txt"]
    with tracking.stage_run(
        "train_gpt", params, inputs=inputs, outputs=outputs, seed=3, data_source="mini", project_root=project
    ) as run:
        for step in range(5):
            run.log_metrics({"loss": 1.0 / (step + 1), "lr": 1e-3}, step=step)
        (project / "reports").mkdir(exist_ok=True)
        (project / "reports" / "metrics.json").write_text('{"mpjpe": 0.25}\n')
        (project / "checkpoints" / "gpt" / "sub").mkdir(parents=True)
        (project / "checkpoints" / "gpt" / "last.pt").write_bytes(b"weights")
        (project / "checkpoints" / "gpt" / "sub" / "best.pt").write_bytes(b"best")
        run.log_metrics({"mpjpe": 0.25})
        run.log_artifact(project / "reports" / "metrics.json")

    logged = client.get_run(run.run_id)
    assert logged.info.status == "FINISHED"
    assert logged.data.params == {"optim.lr": "0.001", "optim.betas": "[0.9, 0.99]", "max_steps": "5"}
    history = client.get_metric_history(run.run_id, "loss")
    assert sorted((m.step, m.value) for m in history) == [(s, 1.0 / (s + 1)) for s in range(5)]
    assert logged.data.metrics["mpjpe"] == 0.25
    assert [a.path for a in client.list_artifacts(run.run_id)] == ["metrics.json"]
    assert (project / "mlartifacts" / run.run_id / "artifacts" / "metrics.json").exists()

    tags = logged.data.tags
    import mlflow

    assert tags["danceba.stage"] == "train_gpt"
    assert tags["git.commit"] == git(project, "rev-parse", "HEAD") and len(tags["git.commit"]) == 40
    assert tags["git.dirty"] == "false"  # only untracked files changed
    assert tags["danceba.seed"] == "3"
    assert tags["danceba.data_source"] == "mini"
    assert tags["danceba.dataset_version"] == LOCKED_RAW
    assert tags["danceba.device"] == "cpu" or tags["danceba.device"].startswith("cuda:")
    assert tags["lib.mlflow"] == mlflow.__version__
    assert tags["lib.python"] == platform.python_version()
    assert {"lib.torch", "lib.numpy", "lib.dvc", "lib.librosa"} <= tags.keys()
    assert tags["dvc.in.data/raw"] == LOCKED_RAW  # an upstream output: read from dvc.lock, not recomputed
    assert tags["dvc.in.data/extra.txt"] == hashlib.md5(b"extra").hexdigest()
    assert tags["dvc.out.reports/metrics.json"] == hashlib.md5(b'{"mpjpe": 0.25}\n').hexdigest()
    assert tags["dvc.out.checkpoints/gpt"] == tracking.dvc_hash(project / "checkpoints" / "gpt")
    assert tags["dvc.out.checkpoints/gpt"].endswith(".dir")
    assert run.lineage["git.commit"] == tags["git.commit"] and run.lineage["mlflow.run_id"] == run.run_id


def test_failing_body_marks_the_run_failed_and_reraises(project: Path, client) -> None:
    with (
        pytest.raises(RuntimeError, match="diverged"),
        tracking.stage_run(
            "train_vqvae", {}, inputs=[], outputs=["never/written.pt"], project_root=project, device="cpu"
        ) as run,
    ):
        raise RuntimeError("loss diverged")
    logged = client.get_run(run.run_id)
    assert logged.info.status == "FAILED"
    assert not any(key.startswith(tracking.DVC_OUT) for key in logged.data.tags)


def test_missing_output_fails_the_run(project: Path, client) -> None:
    with (
        pytest.raises(FileNotFoundError, match=r"never/written\.pt"),
        tracking.stage_run(
            "generate", {}, inputs=[], outputs=["never/written.pt"], project_root=project, device="cpu"
        ) as run,
    ):
        pass
    assert client.get_run(run.run_id).info.status == "FAILED"


def test_missing_input_is_a_clear_error(project: Path) -> None:
    with (
        pytest.raises(FileNotFoundError, match=r"data/absent\.parquet"),
        tracking.stage_run("joints", {}, inputs=["data/absent.parquet"], outputs=[], project_root=project),
    ):
        pass


def test_runs_nest_under_the_parent_from_env_and_from_an_enclosing_run(project: Path, client, monkeypatch):
    with tracking.stage_run("sweep", {}, inputs=[], outputs=[], project_root=project, device="cpu") as parent:
        with tracking.stage_run(
            "seed0", {}, inputs=[], outputs=[], project_root=project, device="cpu"
        ) as inner:
            pass
    monkeypatch.setenv(tracking.PARENT_RUN_ENV, parent.run_id)  # as a worker process would see it
    with tracking.stage_run("seed1", {}, inputs=[], outputs=[], project_root=project, device="cpu") as child:
        pass
    assert client.get_run(inner.run_id).data.tags[tracking.PARENT_TAG] == parent.run_id
    assert client.get_run(child.run_id).data.tags[tracking.PARENT_TAG] == parent.run_id
    assert tracking.PARENT_TAG not in client.get_run(parent.run_id).data.tags
    found = client.search_runs(
        [client.get_run(parent.run_id).info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.run_id}'"
    )
    assert {r.info.run_id for r in found} == {inner.run_id, child.run_id}


def test_register_model_adds_a_version_only_when_the_weights_change(project: Path, client) -> None:
    checkpoint = project / "checkpoints" / "vqvae" / "best_val_loss.pt"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"vq weights")
    with tracking.stage_run(
        "train_vqvae", {}, inputs=[], outputs=[], project_root=project, device="cpu"
    ) as run:
        first = run.register_model(checkpoint, "danceba-vqvae")
        again = run.register_model(checkpoint, "danceba-vqvae")  # a no-op re-run: same bytes
        checkpoint.write_bytes(b"new vq weights")
        changed = run.register_model(checkpoint, "danceba-vqvae")
    assert (first, again, changed) == ("1", "1", "2")
    assert len(client.search_model_versions("name = 'danceba-vqvae'")) == 2
    version = client.get_model_version("danceba-vqvae", "2")
    assert version.run_id == run.run_id
    assert version.source.endswith("/artifacts/checkpoints/best_val_loss.pt")
    assert version.tags["dvc.md5"] == hashlib.md5(b"new vq weights").hexdigest()
    assert (project / "mlartifacts" / run.run_id / "artifacts" / "checkpoints" / checkpoint.name).exists()


def test_tracking_off_is_a_no_op(tmp_path: Path, monkeypatch) -> None:
    clean_env(monkeypatch)
    monkeypatch.setenv(tracking.TRACKING_ENV, "off")
    with tracking.stage_run(
        "evaluate", {"a": 1}, inputs=["absent"], outputs=["absent"], project_root=tmp_path
    ) as run:
        run.log_metrics({"fid_k": 1.0}, step=0)
        run.log_artifact(tmp_path / "absent")
        assert run.register_model(tmp_path / "absent.pt", "m") is None
    assert run.run_id is None
    assert not (tmp_path / "mlflow.db").exists()


@dataclass(frozen=True)
class _Optim:
    lr: float = 0.1
    betas: tuple[float, float] = (0.9, 0.99)


def test_flatten_params_and_path_keys(tmp_path: Path) -> None:
    assert tracking.flatten_params({"optim": _Optim(), "n": None}) == {
        "optim.lr": "0.1",
        "optim.betas": "[0.9, 0.99]",
        "n": "None",
    }
    with pytest.raises(TypeError, match="expected a mapping"):
        tracking.flatten_params([1, 2])
    assert tracking.path_key(tmp_path / "data" / "x.parquet", tmp_path) == "data/x.parquet"
    with pytest.raises(ValueError, match="may hold only"):
        tracking.path_key("data/it's.parquet", tmp_path)


def test_dvc_hash_equals_what_dvc_repro_writes(tmp_path: Path) -> None:
    """A file (with CRLF text: no dos2unix) and a nested folder, hashed by ``dvc repro`` and by us."""
    maker = (
        "from pathlib import Path\n"
        "Path('out.txt').write_bytes(b'line one\\r\\nline two\\r\\n')\n"
        "Path('outdir/sub').mkdir(parents=True)\n"
        "Path('outdir/a.txt').write_text('a')\n"
        "Path('outdir/sub/b.bin').write_bytes(bytes(range(256)) * 9)\n"
    )
    (tmp_path / "make.py").write_text(maker)
    stage = {"cmd": f"{sys.executable} make.py", "deps": ["make.py"], "outs": ["out.txt", "outdir"]}
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"make": stage}}))
    git(tmp_path, "init", "-q")
    env = {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "DVC_SITE_CACHE_DIR": str(tmp_path / ".site"),
        "DVC_GLOBAL_CONFIG_DIR": str(tmp_path / ".global"),
    }
    dvc = "import sys; from dvc.cli import main; sys.exit(main(['init', '-q']) or main(['repro', '-q']))"
    subprocess.run([sys.executable, "-c", dvc], cwd=tmp_path, env=env, check=True, timeout=120)
    outs = {
        o["path"]: o["md5"]
        for o in yaml.safe_load((tmp_path / "dvc.lock").read_text())["stages"]["make"]["outs"]
    }
    assert outs["outdir"].endswith(".dir")
    assert tracking.dvc_hash(tmp_path / "out.txt") == outs["out.txt"]
    assert tracking.dvc_hash(tmp_path / "outdir") == outs["outdir"]
    assert tracking.locked_hashes(tmp_path) == outs


def _write_seed_runs(args: tuple[str, int, int]) -> str:
    """One worker of the parallel test: a stage run with ``n_metrics`` steps of two metrics."""
    root, seed, n_metrics = args
    with tracking.stage_run(
        "train_gpt", {"seed": seed}, inputs=[], outputs=[], seed=seed, project_root=Path(root), device="cpu"
    ) as run:
        for step in range(n_metrics):
            run.log_metrics({"loss": 1.0 / (step + 1), "lr": 0.1}, step=step)
    return str(run.run_id)


@pytest.mark.slow  # 5 spawned interpreters each import MLflow (~3 s CPU apiece)
def test_parallel_writers_on_a_fresh_store(tmp_path: Path, monkeypatch) -> None:
    """5 processes open a fresh store at once and log 50 steps each: all runs complete, nothing lost.

    Plain MLflow 3.17 fails here (concurrent schema migrations), see configure_tracking.
    """
    clean_env(monkeypatch)
    with multiprocessing.get_context("spawn").Pool(5) as pool:
        run_ids = pool.map(_write_seed_runs, [(str(tmp_path), seed, 50) for seed in range(5)])
    client = tracking_store.mlflow_client(tracking_store.configure_tracking(tmp_path))
    assert len(set(run_ids)) == 5
    for run_id in run_ids:
        assert client.get_run(run_id).info.status == "FINISHED"
        assert sorted(m.step for m in client.get_metric_history(run_id, "loss")) == list(range(50))
