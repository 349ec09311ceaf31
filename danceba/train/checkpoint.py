"""Checkpoint files: plain containers written atomically, read with ``weights_only=True``.

A checkpoint is a dict of tensors, numbers, strings, lists and dicts only (model/optimiser/scheduler
state dicts, RNG states from :mod:`danceba.train.seeding`, the sampler position, the config as a plain
dict and the caller's lineage), so :func:`load_checkpoint` never unpickles arbitrary objects. Writing
goes through :func:`danceba.atomic.atomic_path`: a kill mid-write leaves the previous file intact.

:func:`check_run_folder` guards a run folder: a folder holding checkpoints of a *different* config is
refused (never silently overwritten) unless the caller asks to resume anyway.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import pickle
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from danceba.atomic import atomic_path
from danceba.nested import flatten, to_plain_config
from danceba.train.train_config import RESUMABLE_CHANGES

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "danceba.train.checkpoint/1"
LAST_NAME = "last.pt"

_PLAIN_LEAVES = (str, int, float, bool, type(None), torch.Tensor, torch.dtype, torch.device, torch.Size)


class CheckpointError(RuntimeError):
    """A checkpoint cannot be written or read; the message names the file."""


class CheckpointConfigMismatchError(CheckpointError):
    """The run folder holds checkpoints of a different configuration."""


def last_checkpoint_path(out_dir: str | Path) -> Path:
    return Path(out_dir) / LAST_NAME


def best_checkpoint_path(out_dir: str | Path, metric: str) -> Path:
    return Path(out_dir) / f"best_{metric}.pt"


def _check_plain(value: Any, where: str) -> None:
    if isinstance(value, Mapping):
        if type(value) not in (dict, collections.OrderedDict, collections.Counter):
            raise CheckpointError(f"{where}: {type(value).__name__} would not load with weights_only=True")
        for k, v in value.items():
            _check_plain(v, f"{where}.{k}")
    elif isinstance(value, list | tuple) and not isinstance(value, torch.Size):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
    elif not isinstance(value, _PLAIN_LEAVES):
        raise CheckpointError(f"{where}: {type(value).__name__} would not load with weights_only=True")


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (plain containers only; checked first) to ``path`` atomically.

    The same payload always gives the same bytes: torch names the archive's root folder after the
    file it is given a path to (here a random temporary name), so it is handed an open file instead
    (root folder ``archive``).
    """
    path = Path(path)
    _check_plain(payload, path.name)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        torch.save({"format": CHECKPOINT_FORMAT, **payload}, handle)
    return path


def load_weights_only(path: str | Path, map_location: str | torch.device = "cpu", mmap: bool = False) -> Any:
    """``torch.load(weights_only=True)``: tensors and plain containers only; anything else is refused
    (never unpickled) with a :class:`CheckpointError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"{path}: refused: the file holds non-tensor objects (other than tensors and plain containers), "
            f"which are not unpickled (weights_only load failed: {str(error).splitlines()[0][:200]})"
        ) from error
    except (RuntimeError, EOFError, OSError) as error:
        raise CheckpointError(f"{path}: not a readable checkpoint ({error})") from error


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a danceba checkpoint (:func:`load_weights_only`) and check its format."""
    payload = load_weights_only(path, map_location, mmap=True)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path}: not a danceba training checkpoint (expected format {CHECKPOINT_FORMAT})"
        )
    return payload


def config_differences(
    saved: Mapping[str, Any], current: Mapping[str, Any], ignore: Iterable[str] = ()
) -> list[str]:
    """``"key: saved -> current"`` for every dotted key that differs, except those in ``ignore``."""
    old, new, skip = flatten(saved), flatten(current), set(ignore)
    keys = sorted((set(old) | set(new)) - skip)
    missing = "<absent>"
    return [
        f"{k}: {old.get(k, missing)!r} -> {new.get(k, missing)!r}"
        for k in keys
        if old.get(k, missing) != new.get(k, missing)
    ]


def check_run_folder(
    out_dir: str | Path, config: Mapping[str, Any], resume: bool, ignore: Iterable[str] = ()
) -> dict[str, Any] | None:
    """Decide how a run starts in ``out_dir``; return the checkpoint to resume from, or ``None``.

    * no checkpoint: ``None`` (a fresh run);
    * ``last.pt`` whose config matches (ignoring ``ignore``): that checkpoint (the run resumes);
    * checkpoints of a different config: :class:`CheckpointConfigMismatchError` naming the differing
      keys, unless ``resume`` is true (then ``last.pt`` is resumed, or a fresh run starts when there is
      only a ``best_*.pt``; the differences are logged).
    """
    out_dir = Path(out_dir)
    last = last_checkpoint_path(out_dir)
    existing = [last] if last.is_file() else sorted(out_dir.glob("best_*.pt"))
    if not existing:
        return None
    payload = load_checkpoint(existing[0])
    differences = config_differences(payload.get("config", {}), config, ignore)
    if differences and not resume:
        raise CheckpointConfigMismatchError(
            f"{existing[0]}: the run folder {out_dir} holds checkpoints of a different config "
            f"({'; '.join(differences)}); use a new folder, or pass resume=True to continue from it"
        )
    if differences:
        log.warning("%s: resuming with a changed config: %s", existing[0], "; ".join(differences))
    return payload if existing[0] == last else None


def config_digest(config: Any) -> str:
    """A short stable hash of a run's config, naming its run folder: a new config never reuses old
    checkpoints, while the settings a resume may change (``RESUMABLE_CHANGES``: length, cadences,
    device) are left out, so a run can be extended or moved to a GPU and continue from ``last.pt``."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            is_loop_config = "max_steps" in value
            return {k: strip(v) for k, v in value.items() if not (is_loop_config and k in RESUMABLE_CHANGES)}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    text = json.dumps(strip(to_plain_config(config)), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]
