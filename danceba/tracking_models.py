"""Models and datasets the MLflow way: what the UI's *Models*, *Datasets* and schema panes show.

* :func:`log_input_datasets`: every stage input as an MLflow dataset (``mlflow.data``
  ``MetaDataset``: metadata only, nothing copied) named by its DVC path, with its DVC hash (the md5 in
  ``dvc.lock``) as the digest, the local file as the source and, for a Parquet table, its column schema
  (read from the file's footer).
* :func:`log_torch_model`: an exported model through ``mlflow.pytorch.log_model`` (a logged model of
  the run, loadable with ``mlflow.pytorch.load_model``) with a tensor signature of its inputs and
  outputs (:func:`gpt_signature`, :func:`vqvae_signature`). Pickled whole by MLflow, so loading needs
  the ``danceba`` package importable.
* The classic view: MLflow 3's UI opens an experiment in its GenAI view unless the experiment's
  ``mlflow.experimentKind`` tag says ``custom_model_development`` (the classic runs and models view);
  ``danceba.tracking_store.experiment_id`` sets it.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from danceba.tracking_store import retry_locked

BAILANDO_CHANNELS = 72  # 24 joints x xyz, root channels first (danceba.motion.bailando_layout)
_ARROW_TO_MLFLOW = {
    "bool": "boolean",
    "int8": "integer",
    "int16": "integer",
    "int32": "integer",
    "int64": "long",
    "uint8": "integer",
    "uint16": "integer",
    "uint32": "long",
    "float": "float",
    "halffloat": "float",
    "double": "double",
    "string": "string",
    "large_string": "string",
    "binary": "binary",
    "large_binary": "binary",
}


# ---------------------------------------------------------------------------------------------
# Datasets
# ---------------------------------------------------------------------------------------------


def parquet_schema(path: Path) -> Any | None:
    """The MLflow column schema of a Parquet file (lists as arrays); None when it is not one (also a
    ``.parquet`` file that pyarrow cannot read: tracking never fails a stage over a schema).

    Columns of a type MLflow has no name for (e.g. timestamps) are left out."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from mlflow.types.schema import Array, ColSpec, DataType, Schema

    if Path(path).suffix != ".parquet" or not Path(path).is_file():
        return None
    try:
        fields = pq.read_schema(path)
    except (pa.ArrowException, OSError):
        return None
    columns = []
    for field in fields:
        kind = field.type
        inner = kind.value_type if hasattr(kind, "value_type") else None
        name = _ARROW_TO_MLFLOW.get(str(inner if inner is not None else kind))
        if name is not None:
            data_type = DataType[name] if inner is None else Array(DataType[name])
            columns.append(ColSpec(data_type, field.name))
    return Schema(columns) if columns else None


def input_dataset(key: str, digest: str, project_root: Path) -> Any:
    """The ``MetaDataset`` of stage input ``key`` (a dvc.yaml path): name, DVC hash, file, schema."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    path = Path(project_root) / key
    with warnings.catch_warnings():  # "can be interpreted in multiple ways": both are the local source
        warnings.simplefilter("ignore", UserWarning)
        source = resolve_dataset_source(path.resolve().as_uri())
    return MetaDataset(source, name=key, digest=digest[:36], schema=parquet_schema(path))


def log_input_datasets(
    client: Any, run_id: str, hashes: Mapping[str, str], project_root: Path, context: str
) -> None:
    """Log every ``{dvc path: dvc hash}`` as an input dataset of run ``run_id`` (``mlflow.log_input``'s
    client form), with the ``mlflow.data.context`` tag ``context`` (``training`` or ``input``)."""
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    inputs = [
        DatasetInput(
            input_dataset(key, digest, project_root)._to_mlflow_entity(),
            tags=[InputTag(MLFLOW_DATASET_CONTEXT, context)],
        )
        for key, digest in hashes.items()
    ]
    if inputs:
        retry_locked(client.log_inputs, run_id, datasets=inputs)


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------


def tensor_signature(
    inputs: Mapping[str, tuple[str, tuple[int, ...]]], outputs: Mapping[str, tuple[str, tuple[int, ...]]]
) -> Any:
    """A ``ModelSignature`` of named tensors ``{name: (numpy dtype, shape with -1 for any size)}``."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    def schema(specs: Mapping[str, tuple[str, tuple[int, ...]]]) -> Schema:
        return Schema([TensorSpec(np.dtype(dtype), shape, name) for name, (dtype, shape) in specs.items()])

    return ModelSignature(inputs=schema(inputs), outputs=schema(outputs))


def gpt_signature(config: Any) -> Any:
    """The GPT's forward: up/down codes (B, T) and music (B, T, n_music) -> logits (B, T, vocab)."""
    return tensor_signature(
        {
            "up_idx": ("int64", (-1, -1)),
            "down_idx": ("int64", (-1, -1)),
            "music": ("float32", (-1, -1, config.n_music)),
        },
        {
            "logits_up": ("float32", (-1, -1, config.vocab_up)),
            "logits_down": ("float32", (-1, -1, config.vocab_down)),
        },
    )


def vqvae_signature(config: Any) -> Any:
    """The VQ-VAE's ``encode``: (B, T, 72) joints in the Bailando layout -> up/down codes (B, T / hop)."""
    return tensor_signature(
        {"joints": ("float32", (-1, -1, BAILANDO_CHANNELS))},
        {"up_codes": ("int64", (-1, -1)), "down_codes": ("int64", (-1, -1))},
    )


def log_torch_model(
    tracking_uri: str,
    run_id: str,
    experiment_id: str,
    model: Any,
    name: str,
    signature: Any,
    metadata: Mapping[str, Any],
) -> str:
    """``mlflow.pytorch.log_model`` of ``model`` into run ``run_id`` (of ``experiment_id``) at
    ``tracking_uri``; return its model URI.

    MLflow's fluent API places the logged model in its active experiment, so the store and the
    experiment are set for the call and restored after. The requirements are written, not inferred
    (inference loads the model in a subprocess)."""
    import mlflow.pytorch
    import torch

    with _fluent_target(tracking_uri, experiment_id):
        info = retry_locked(
            mlflow.pytorch.log_model,
            model,
            name=name,
            signature=signature,
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
            metadata=dict(metadata),
            serialization_format="pickle",  # "pt2" traces forward() with an example: not these models
            run_id=run_id,
        )
    return str(info.model_uri)


@contextlib.contextmanager
def _fluent_target(tracking_uri: str, experiment_id: str) -> Iterator[None]:
    import mlflow

    saved = {name: os.environ.get(name) for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID")}
    os.environ.update(MLFLOW_TRACKING_URI=tracking_uri, MLFLOW_EXPERIMENT_ID=str(experiment_id))
    mlflow.set_tracking_uri(tracking_uri)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        mlflow.set_tracking_uri(saved["MLFLOW_TRACKING_URI"])
