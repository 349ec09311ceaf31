"""Trained-model exports: what a training stage hands to the later stages and to users.

An export is a checkpoint (``danceba.train.checkpoint``: plain tensors and containers, loaded with
``torch.load(weights_only=True)``) holding ``kind`` (the model class), ``model`` (state dict), ``config``
(the model's frozen dataclass as plain values), ``metrics`` and ``provenance`` (what the weights came from: the inputs' DVC hashes and the code digest
(``pipelines.stage.export_provenance``), or the converted file; never a run id or a time).
Loading checks the kind and rebuilds the model from the stored config, so a checkpoint of the wrong
kind or architecture is refused with a message naming the file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch

from danceba.nested import to_plain_config
from danceba.strict_dataclass import build_dataclass
from danceba.train.checkpoint import load_checkpoint, save_checkpoint

ModelT = TypeVar("ModelT", bound=torch.nn.Module)


def save_export(
    path: Path, kind: str, model: torch.nn.Module, config: Any, metrics: dict, provenance: dict
) -> None:
    """Write a model export atomically."""
    save_checkpoint(
        path,
        {
            "kind": kind,
            "model": model.state_dict(),
            "config": canonical(config, "config"),
            "metrics": canonical(metrics, "metrics"),
            "provenance": canonical(provenance, "provenance"),
        },
    )


def canonical(value: Any, where: str) -> Any:
    """``value`` as plain data rebuilt from its JSON text, so that equal values pickle to equal bytes.

    Pickle writes a string seen twice as a reference to the first, so its bytes depend on which
    strings are the same object: metrics read back from a resumed checkpoint and metrics just computed
    are equal but pickle differently. Rebuilt from text, equal values are equal objects.
    """
    return json.loads(json.dumps(to_plain_config(value, where)))


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
    bad = sorted(
        name
        for name, tensor in payload["model"].items()
        if isinstance(tensor, torch.Tensor)
        and tensor.is_floating_point()
        and not torch.isfinite(tensor).all()
    )
    if bad:
        raise ValueError(
            f"{path}: {len(bad)} weight tensor(s) hold NaN or infinite values ({', '.join(bad[:3])}"
            f"{', ...' if len(bad) > 3 else ''}): the training diverged or the file is damaged"
        )
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as error:
        raise ValueError(
            f"{path}: weights do not match the stored architecture: {str(error)[:300]}"
        ) from error
    return model.eval()
