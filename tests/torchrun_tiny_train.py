"""A tiny DDP training run, launched by tests/test_torchrun.py under torchrun (gloo, CPU):

    python -m torch.distributed.run --nproc_per_node 2 tests/torchrun_tiny_train.py RUN_DIR REPORT_DIR DROPOUT STEPS...

Trains a 2-layer MLP on fixed random data with :func:`danceba.train.loop.train` in RUN_DIR, once per
STEPS value (each call resumes the previous one, in the same process and process group), recording the
files this process wrote, and writes REPORT_DIR/rank<r>.npz with the final weights, those paths and
each call's start step, so the test can check that only rank 0 wrote files and that the ranks agree.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import torch

from danceba.train.loop import train
from danceba.train.train_config import OptimConfig, TrainConfig

WRITES: list[str] = []  # files this process put in place (atomic writes end with os.replace)
_os_replace = os.replace


def _counting_replace(src, dst, *args, **kwargs):
    WRITES.append(str(dst))
    return _os_replace(src, dst, *args, **kwargs)


def tiny_problem(dropout: float) -> tuple[torch.nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    """The MLP (seeded init, identical on every rank) and 32 samples: x (32, 4), y (32, 1)."""
    torch.manual_seed(0)  # the same initial weights on every rank (DDP broadcasts rank 0's anyway)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Dropout(dropout), torch.nn.Linear(16, 1)
    )
    g = torch.Generator().manual_seed(1)
    x = torch.randn(32, 4, generator=g)
    return model, (x, x.sum(dim=1, keepdim=True))


def mse_loss(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]):
    x, y = batch
    loss = ((model(x) - y) ** 2).mean()
    return loss, {"mse": loss}


def tiny_config(steps: int) -> TrainConfig:
    return TrainConfig(
        max_steps=steps, batch_size=8, log_every=2, eval_every=0, checkpoint_every=3, seed=7, device="cpu"
    )


def main() -> None:
    run_dir, report_dir, dropout = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
    torch.set_num_threads(1)
    starts = []
    os.replace = _counting_replace
    try:
        for steps in map(int, sys.argv[4:]):
            model, data = tiny_problem(dropout)
            result = train(model, mse_loss, data, tiny_config(steps), OptimConfig(lr=1e-2), run_dir)
            starts.append(result.start_step)
    finally:
        os.replace = _os_replace
    rank = int(os.environ.get("RANK", "0"))
    weights = {k: v.numpy() for k, v in model.state_dict().items()}
    report_dir.mkdir(parents=True, exist_ok=True)
    np.savez(report_dir / f"rank{rank}.npz", writes=np.array(WRITES), starts=np.array(starts), **weights)


if __name__ == "__main__":
    main()
