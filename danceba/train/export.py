"""Trained-model exports: what a training stage hands to the later stages and to users.

An export is a checkpoint (``danceba.train.checkpoint``: plain tensors and containers, loaded with
``torch.load(weights_only=True)``) holding ``kind`` (the model class), ``model`` (state dict), ``config``
(the model's frozen dataclass as plain values), ``metrics`` and ``lineage`` (MLflow run, DVC hashes).
Loading checks the kind and rebuilds the model from the stored config, so a checkpoint of the wrong
kind or architecture is refused with a message naming the file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch

from danceba.strict_dataclass import build_dataclass
from danceba.train.checkpoint import load_checkpoint, save_checkpoint, to_plain_config

ModelT = TypeVar("ModelT", bound=torch.nn.Module)


def save_export(
    path: Path, kind: str, model: torch.nn.Module, config: Any, metrics: dict, lineage: dict
) -> None:
    """Write a model export atomically."""
    save_checkpoint(
        path,
        {
            "kind": kind,
            "model": model.state_dict(),
            "config": to_plain_config(config),
            "metrics": to_plain_config(metrics),
            "lineage": to_plain_config(lineage),
        },
    )


def load_export(
    path: Path,
    kind: str,
    config_type: type,
    build: Callable[[Any], ModelT],
    what: str,
    map_location: str | torch.device = "cpu",
) -> ModelT:
    """Rebuild the model of an export of ``kind`` in eval mode; refuse another kind or architecture."""
    payload = load_checkpoint(path, map_location)
    if payload.get("kind") != kind:
        raise ValueError(f"{path}: not a {what} export (kind {payload.get('kind')!r}, expected {kind!r})")
    model = build(build_dataclass(config_type, payload["config"], what))
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as error:
        raise ValueError(
            f"{path}: weights do not match the stored architecture: {str(error)[:300]}"
        ) from error
    return model.eval()
