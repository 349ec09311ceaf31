"""A tiny DDP training run that logs the way a stage does, launched by tests/test_progress.py:

    python -m torch.distributed.run --nproc_per_node 2 tests/torchrun_logging.py RUN_DIR

Configures logging as every stage entry point does (``danceba.progress.configure_logging``), trains the
MLP of tests/torchrun_tiny_train.py with an evaluation (rank 0 only) and logs the final validation
loss from every rank, as ``pipelines/train_gpt.py`` does: only rank 0's line may reach stderr.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path

import torch

from danceba.progress import configure_logging
from danceba.train.loop import train
from danceba.train.train_config import OptimConfig, TrainConfig

_spec = importlib.util.spec_from_file_location(
    "torchrun_tiny_train", Path(__file__).with_name("torchrun_tiny_train.py")
)
tiny = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tiny)
log = logging.getLogger("danceba.torchrun_logging")


def main() -> None:
    configure_logging()
    torch.set_num_threads(1)
    model, data = tiny.tiny_problem(0.0)
    x, y = data
    config = TrainConfig(
        max_steps=4, batch_size=8, log_every=2, eval_every=2, checkpoint_every=4, seed=7, device="cpu"
    )

    def evaluate(module: torch.nn.Module) -> dict[str, float]:
        return {"val_loss": float(((module(x) - y) ** 2).mean())}

    result = train(model, tiny.mse_loss, data, config, OptimConfig(lr=1e-2), Path(sys.argv[1]), evaluate)
    log.info("final val_loss %s", result.final_metrics.get("val_loss"))


if __name__ == "__main__":
    main()
