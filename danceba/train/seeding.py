"""One ``seed_everything`` and the RNG state that a checkpoint carries.

Seeding covers python ``random``, numpy's global generator, torch on CPU and every CUDA device. Under
DDP every process seeds ``seed + rank`` (as nanoGPT does), so dropout masks differ between ranks while
the run as a whole stays reproducible.

:func:`capture_rng_state` returns the generators' states as plain containers (ints, floats, strings,
lists and tensors only) so that a checkpoint holding them loads with ``torch.load(weights_only=True)``;
:func:`restore_rng_state` puts them back.
"""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

# cuBLAS needs this workspace setting to be deterministic (read when the CUDA context starts).
_CUBLAS_WORKSPACE = ":4096:8"


def process_rank() -> int:
    """This process's global rank: from the initialised process group, else ``RANK``, else 0."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0"))


def seed_everything(seed: int, deterministic: bool = False) -> torch.Generator:
    """Seed python, numpy, torch (CPU and CUDA) with ``seed + rank``; return a CPU generator so seeded.

    ``deterministic`` switches ``torch.use_deterministic_algorithms`` on (and cuDNN autotuning off,
    with the cuBLAS workspace setting it needs); ``False`` switches it off again, so the global flag
    always matches the last call.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed: expected a non-negative int, got {seed!r}")
    effective = seed + process_rank()
    random.seed(effective)
    np.random.seed(effective % 2**32)  # noqa: NPY002 (the legacy global generator is what libraries use)
    torch.manual_seed(effective)  # also seeds every CUDA device
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", _CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.deterministic = deterministic
    if deterministic:
        torch.backends.cudnn.benchmark = False
    return torch.Generator().manual_seed(effective)


def capture_rng_state() -> dict[str, Any]:
    """The states of python ``random``, numpy's global generator, torch CPU and CUDA, as plain data.

    Python's state becomes a list of ints; numpy's ``('MT19937', uint32[624], pos, has_gauss,
    cached_gaussian)`` becomes a dict with the key array as an int64 tensor; torch states are uint8
    tensors (one per CUDA device).
    """
    py_version, py_internal, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_cached = np.random.get_state(legacy=True)  # noqa: NPY002
    cuda = [s.clone() for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else []
    return {
        "python": {"version": int(py_version), "internal": list(py_internal), "gauss_next": py_gauss},
        "numpy": {
            "name": str(np_name),
            "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_cached),
        },
        "torch": torch.get_rng_state().clone(),
        "cuda": cuda,
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    """Undo :func:`capture_rng_state`. CUDA states are restored only when as many devices are present."""
    try:
        python, numpy_state, torch_state, cuda = (
            state["python"],
            state["numpy"],
            state["torch"],
            state["cuda"],
        )
    except KeyError as error:
        raise ValueError(f"RNG state: missing key {error} (keys: {sorted(state)})") from error
    random.setstate((python["version"], tuple(python["internal"]), python["gauss_next"]))
    np.random.set_state(  # noqa: NPY002
        (
            numpy_state["name"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(torch_state.to(device="cpu", dtype=torch.uint8))
    if cuda and torch.cuda.is_available() and torch.cuda.device_count() == len(cuda):
        torch.cuda.set_rng_state_all([s.to(device="cpu", dtype=torch.uint8) for s in cuda])
