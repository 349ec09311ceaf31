"""The training loop under a real 2-process ``torchrun`` (gloo, CPU): exits 0, only rank 0 writes files,
``train`` can be called twice in one process (resuming), both ranks end with identical weights, equal
to a single-process run of the same global batches, and the run resumes single-process from its
``last.pt``."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from danceba.train.checkpoint import load_checkpoint
from danceba.train.loop import train
from danceba.train.train_config import OptimConfig
from tests.project_files import ROOT

SCRIPT = Path(__file__).parent / "torchrun_tiny_train.py"

_spec = importlib.util.spec_from_file_location("torchrun_tiny_train", SCRIPT)
tiny = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tiny)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(run_dir: Path, report_dir: Path, *steps: int) -> list[dict[str, np.ndarray]]:
    """Launch 2 processes calling ``train`` once per ``steps`` value; return each rank's report."""
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
        str(SCRIPT), str(run_dir), str(report_dir), "0.0", *map(str, steps),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-4000:]
    return [dict(np.load(report_dir / f"rank{r}.npz")) for r in range(2)]


def _single_process_weights(run_dir: Path, steps: int) -> dict[str, torch.Tensor]:
    model, data = tiny.tiny_problem(0.0)
    train(model, tiny.mse_loss, data, tiny.tiny_config(steps), OptimConfig(lr=1e-2), run_dir)
    return model.state_dict()


@pytest.mark.slow
def test_two_process_torchrun_writes_on_rank0_only_and_matches_single_process(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    # Two train() calls in each process (as the two VQ-VAE phases do): 4 steps, then resumed to 8.
    rank0, rank1 = _torchrun(run_dir, tmp_path / "report", 4, 8)
    assert rank0["starts"].tolist() == rank1["starts"].tolist() == [0, 4]
    written = {Path(p).relative_to(run_dir).as_posix() for p in rank0["writes"]}
    assert written == {"last.pt", "metrics.json", "plots/train.csv"}
    assert rank1["writes"].size == 0
    assert not [p for p in run_dir.rglob("*") if p.name.endswith(".tmp")]
    weights = [k for k in rank0 if k not in ("writes", "starts")]
    assert weights and all(np.array_equal(rank0[k], rank1[k]) for k in weights)
    last = load_checkpoint(run_dir / "last.pt")
    assert last["step"] == 8 and last["world_size"] == 2 and len(last["rng"]) == 2
    # Each rank took half of every global batch: the same maths as one process (up to float rounding).
    single = _single_process_weights(tmp_path / "single8", 8)
    for key in weights:
        np.testing.assert_allclose(rank0[key], single[key].numpy(), rtol=0, atol=1e-5)

    # The data order does not depend on the world size: the DDP run resumes single-process.
    model, data = tiny.tiny_problem(0.0)
    result = train(model, tiny.mse_loss, data, tiny.tiny_config(11), OptimConfig(lr=1e-2), run_dir)
    assert result.start_step == 8 and load_checkpoint(run_dir / "last.pt")["world_size"] == 1
    single = _single_process_weights(tmp_path / "single11", 11)
    for key in weights:
        torch.testing.assert_close(model.state_dict()[key], single[key], rtol=0, atol=1e-5)
