"""Models and datasets the MLflow way (``danceba.tracking_models``), read back through MlflowClient:
a stage run's inputs are datasets with their DVC hash and Parquet schema, an exported model is a logged
model with a tensor signature that loads back, and the experiment opens in MLflow's classic ML view."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from danceba import tracking, tracking_store
from danceba.models.gpt import build_gpt
from danceba.tracking_models import gpt_signature
from tests.test_tracking import clean_env
from tests.tiny_models import TINY_GPT


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    clean_env(monkeypatch)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "data").mkdir()
    table = pa.table({"sequence": ["a", "b"], "frame": pa.array([0, 1], pa.int64()), "codes": [[1, 2], [3]]})
    pq.write_table(table, tmp_path / "data" / "tokens.parquet")
    return tmp_path


def test_a_stage_run_has_its_inputs_as_datasets_and_its_model_logged(project: Path, monkeypatch) -> None:
    import mlflow.pytorch

    config = dataclasses.replace(TINY_GPT, vocab_up=16, vocab_down=16)
    torch.manual_seed(0)
    model = build_gpt(config).eval()
    tokens = "data/tokens.parquet"
    with tracking.stage_run("train_gpt", {"lr": 1}, inputs=[tokens], outputs=[], project_root=project) as run:
        uri = run.log_model(model, "gpt", gpt_signature(config))
    client = tracking_store.mlflow_client(tracking_store.configure_tracking(project))

    logged = client.get_run(run.run_id)
    (dataset_input,) = logged.inputs.dataset_inputs
    assert dataset_input.dataset.name == tokens
    assert dataset_input.dataset.digest == tracking.dvc_hash(project / tokens)
    assert {t.key: t.value for t in dataset_input.tags}["mlflow.data.context"] == "training"
    assert '"sequence"' in dataset_input.dataset.schema and '"codes"' in dataset_input.dataset.schema
    assert json.loads(dataset_input.dataset.source)["uri"] == (project / tokens).resolve().as_uri()

    experiment = client.get_experiment(logged.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"

    (model_output,) = logged.outputs.model_outputs
    stored = client.get_logged_model(model_output.model_id)
    assert stored.name == "gpt" and stored.source_run_id == run.run_id
    assert stored.experiment_id == logged.info.experiment_id
    monkeypatch.setenv("MLFLOW_TRACKING_URI", run.tracking_uri)  # "models:/..." URIs resolve in the store
    info = mlflow.models.get_model_info(uri)
    inputs = {spec.name: spec.shape for spec in info.signature.inputs.inputs}
    assert inputs == {"up_idx": (-1, -1), "down_idx": (-1, -1), "music": (-1, -1, config.n_music)}
    assert [spec.name for spec in info.signature.outputs.inputs] == ["logits_up", "logits_down"]
    loaded = mlflow.pytorch.load_model(uri).eval()
    up = torch.zeros(1, 3, dtype=torch.long)
    music = torch.from_numpy(np.random.default_rng(0).normal(size=(1, 3, config.n_music)).astype(np.float32))
    with torch.no_grad():
        torch.testing.assert_close(loaded(up, up, music)[0], model(up, up, music)[0], rtol=0, atol=0)


def test_a_file_named_parquet_that_is_not_one_gets_no_schema_and_fails_nothing(tmp_path: Path) -> None:
    from danceba.tracking_models import parquet_schema

    fake = tmp_path / "features.parquet"
    fake.write_bytes(b"f1")
    assert parquet_schema(fake) is None
    real = tmp_path / "real.parquet"
    pq.write_table(pa.table({"frame": pa.array([0, 1], pa.int32())}), real)
    assert [column.name for column in parquet_schema(real).inputs] == ["frame"]
