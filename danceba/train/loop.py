"""The model-agnostic training loop: one call trains any ``nn.Module`` from a loss function.

``train(model, loss_fn, dataset, cfg, optim_cfg, out_dir)`` runs ``cfg.max_steps`` optimiser steps of
``loss_fn(model, batch) -> (loss, {term: value})`` on batches drawn by the resumable sampler, and keeps
the run folder ``out_dir`` up to date: ``last.pt`` every ``checkpoint_every`` steps and at the end,
``best_<metric>.pt`` whenever ``evaluate(model)[cfg.best_metric]`` improves, ``metrics.json`` and
``plots/{train,val}.csv`` for DVC. Started again in the same folder with the same config, it resumes
from ``last.pt`` and ends with weights bit-identical to an uninterrupted run (CPU; requires a data set
that draws no random numbers in DataLoader workers, e.g. ``num_workers=0`` or deterministic items).

The same call works under ``torchrun`` (see :mod:`danceba.train.distributed`): the model is wrapped in
DDP, each rank takes its slice of the global batch, only rank 0 evaluates, logs and writes files. Under
DDP ``loss_fn`` receives the DDP wrapper, so it must run the forward pass as ``model(...)``;
``evaluate`` receives the bare module, under ``torch.no_grad()`` and ``model.eval()`` (module modes
are restored afterwards). The model trains in the mode it is given.

Evaluation, logging and checkpoints happen at multiples of their cadence only, so ``max_steps`` does
not change what a step computes: choose ``max_steps`` as a multiple of ``eval_every`` to end on an
evaluation. A non-finite loss stops the run with :class:`NonFiniteLossError`; weights that a
non-finite update reached are never written (the check runs one step behind on the device, and
always before a checkpoint).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset
from tqdm import tqdm

from danceba.nested import to_plain_config
from danceba.train.batches import as_dataset, batch_iterator, to_device
from danceba.train.best_metric import BestMetric
from danceba.train.checkpoint import (
    best_checkpoint_path,
    check_run_folder,
    last_checkpoint_path,
    load_checkpoint,
    save_checkpoint,
)
from danceba.train.distributed import (
    DistributedContext,
    all_gather_objects,
    barrier,
    env_local_rank,
    resolve_device,
    setup_distributed,
)
from danceba.train.history import DvcOutputs, MetricsHistory
from danceba.train.optim import build_optimizer, build_scheduler
from danceba.train.precision import Precision
from danceba.train.sampler import ResumableBatchSampler
from danceba.train.seeding import capture_rng_state, restore_rng_state, seed_everything
from danceba.train.step_stats import StepStats
from danceba.train.train_config import RESUMABLE_CHANGES, OptimConfig, TrainConfig

log = logging.getLogger(__name__)

LossFn = Callable[[torch.nn.Module, Any], tuple[torch.Tensor, Mapping[str, Any]]]
EvaluateFn = Callable[[torch.nn.Module], Mapping[str, float]]
OnLog = Callable[[int, dict[str, float]], None]


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; names the step and the loss terms."""

    def __init__(self, step: int, terms: dict[str, float], last_checkpoint: Path | None) -> None:
        self.step, self.terms = step, terms
        listed = ", ".join(f"{k}={v:.6g}" for k, v in terms.items())
        kept = (
            f"the last good checkpoint {last_checkpoint} is kept" if last_checkpoint else "no checkpoint yet"
        )
        super().__init__(f"non-finite loss at step {step} ({listed}); training stopped, {kept}")


class NonFiniteWeightsError(RuntimeError):
    """Weights became NaN or infinite although the loss was finite; nothing is written."""


@dataclass(frozen=True)
class TrainResult:
    """What a run did: steps reached, where it started, last metrics, best, checkpoint paths."""

    steps: int
    start_step: int
    final_metrics: dict[str, float]
    best: dict[str, Any] | None
    last_checkpoint: Path
    best_checkpoint: Path | None
    history: MetricsHistory


def train(
    model: torch.nn.Module,
    loss_fn: LossFn,
    dataset: Dataset | tuple[torch.Tensor, ...],
    cfg: TrainConfig,
    optim_cfg: OptimConfig,
    out_dir: str | Path,
    evaluate: EvaluateFn | None = None,
    on_log: OnLog | None = None,
    *,
    lineage: Mapping[str, Any] | None = None,
    run_config: Mapping[str, Any] | None = None,
    resume: bool = False,
    outputs: DvcOutputs | None = None,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    find_unused_parameters: bool = False,
) -> TrainResult:
    """Train ``model`` for ``cfg.max_steps`` steps in the run folder ``out_dir`` (resuming if it can).

    ``run_config`` (e.g. the model config, plain values) is stored and compared like ``cfg`` and
    ``optim_cfg``; ``lineage`` (data hashes, git commit, tracking ids) is stored, not compared.
    ``resume=True`` continues from a folder whose config differs. ``outputs`` places ``metrics.json``
    and the plots (default: under ``out_dir``). ``on_log(step, metrics)`` sees every train and val row.
    ``find_unused_parameters`` is passed to DDP (for models whose trainable parameters are not all
    used in every forward pass; better: set ``requires_grad=False`` on frozen parts).
    """
    run = _Run(model, loss_fn, as_dataset(dataset), cfg, optim_cfg, Path(out_dir), evaluate, on_log)
    try:
        outputs = outputs or DvcOutputs.under(out_dir)
        run.setup(lineage or {}, run_config or {}, resume, outputs, collate_fn, find_unused_parameters)
        return run.run()
    finally:
        run.close()


class _Run:
    """The state of one call to :func:`train` (single use)."""

    def __init__(self, model, loss_fn, dataset, cfg, optim_cfg, out_dir, evaluate, on_log) -> None:
        self.model, self.loss_fn, self.dataset = model, loss_fn, dataset
        self.cfg, self.optim_cfg, self.out_dir = cfg, optim_cfg, out_dir
        self.evaluate, self.on_log = evaluate, on_log
        self.device = resolve_device(cfg.device, env_local_rank())
        self.ctx: DistributedContext = setup_distributed(self.device)
        self.history = MetricsHistory()
        self.best = BestMetric(cfg.best_metric, cfg.best_mode)
        self.last_path = last_checkpoint_path(out_dir)
        self.best_path = best_checkpoint_path(out_dir, cfg.best_metric)
        self.last_saved_step: int | None = None
        self.improved_from: tuple[float | None, int | None] | None = None
        self.batches: Any = None
        self.progress: tqdm | None = None

    # -------------------------------------------------------------------------------------- set-up
    def setup(self, lineage, run_config, resume, outputs, collate_fn, find_unused_parameters) -> None:
        cfg, ctx = self.cfg, self.ctx
        self.outputs = outputs
        self.lineage = to_plain_config(lineage, "lineage")
        self.config = {
            "train": to_plain_config(cfg),
            "optim": to_plain_config(self.optim_cfg),
            "run": to_plain_config(run_config, "run_config"),
        }
        ignore = [f"train.{k}" for k in RESUMABLE_CHANGES]
        checkpoint = check_run_folder(self.out_dir, self.config, resume, ignore)
        self.precision = Precision(cfg.amp, self.device)
        if cfg.amp != "fp32" and not self.precision.enabled and ctx.is_main:
            log.info("amp=%s ignored: autocast runs on CUDA only (device %s)", cfg.amp, self.device)
        self.model.to(self.device)
        self.optimizer = build_optimizer(self.model.parameters(), self.optim_cfg)
        self.scheduler = build_scheduler(self.optimizer, self.optim_cfg)
        self.stats = StepStats(self.device, ctx)
        self.sampler = ResumableBatchSampler(
            len(self.dataset), cfg.batch_size, cfg.seed, ctx.rank, ctx.world_size
        )
        self.step = self._restore(checkpoint) if checkpoint else 0
        if checkpoint is None and self.best_path.is_file():
            self.best.load_state_dict(load_checkpoint(self.best_path)["metrics"]["best"] or {})
        self.start_step = self.sampler.start_batch = self.step
        self.train_model = self.model
        if ctx.enabled:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = DistributedDataParallel(
                self.model, device_ids=device_ids, find_unused_parameters=find_unused_parameters
            )
        self.batches = batch_iterator(self.dataset, self.sampler, cfg.num_workers, self.device, collate_fn)
        # The RNG streams are set last, so nothing in the set-up above shifts them.
        seed_everything(cfg.seed, cfg.deterministic)
        if checkpoint is not None:
            self._restore_rng(checkpoint["rng"])
        if ctx.is_main:
            self.progress = tqdm(total=cfg.max_steps, initial=self.step, desc=f"train {self.out_dir.name}")
        barrier(ctx)

    def _restore(self, checkpoint: dict[str, Any]) -> int:
        step = int(checkpoint["step"])
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        self.precision.load_state_dict(checkpoint["scaler"])
        if self.sampler.check_state(checkpoint["sampler"]) != step:
            raise ValueError(f"{self.last_path}: sampler position does not match step {step}")
        metrics = checkpoint["metrics"]
        self.history.load_state_dict(metrics["history"])
        self.best.load_state_dict(metrics["best"] or {})
        self.stats.load_state_dict(metrics["window"])
        self.last_saved_step = step
        if self.ctx.is_main:
            log.info("%s: resuming at step %d of %d", self.last_path, step, self.cfg.max_steps)
        return step

    def _restore_rng(self, states: list[dict[str, Any]]) -> None:
        if len(states) == self.ctx.world_size:
            restore_rng_state(states[self.ctx.rank])
        elif self.ctx.is_main:
            log.warning(
                "RNG states saved for %d processes, now %d: reseeded", len(states), self.ctx.world_size
            )

    # -------------------------------------------------------------------------------------- loop
    def run(self) -> TrainResult:
        for step in range(self.step + 1, self.cfg.max_steps + 1):
            self._train_step(step)
            self.step = step
            if step % self.cfg.log_every == 0:
                self._log_train(step)
            evaluated = self._maybe_evaluate(step)
            last = step % self.cfg.checkpoint_every == 0
            if evaluated or last:
                self._snapshot(step, last)
            if self.progress is not None:
                self.progress.update(1)
        if self.last_saved_step != self.step:
            self._snapshot(self.step, last=True)
        summary = self._best_summary()
        if self.ctx.is_main:
            self.outputs.write(self.history, summary, self.step)
        best_path = self.best_path if summary else None
        final = self.history.final()
        return TrainResult(
            self.step, self.start_step, final, summary, self.last_path, best_path, self.history
        )

    def _train_step(self, step: int) -> None:
        batch = to_device(next(self.batches), self.device)
        lr = float(self.optimizer.param_groups[0]["lr"])
        with self.precision.autocast():
            loss, terms = self.loss_fn(self.train_model, batch)
        self.stats.record(step, loss, terms, lr)
        self.optimizer.zero_grad(set_to_none=True)
        scaler = self.precision.scaler
        scaler.scale(loss).backward()
        if self.optim_cfg.grad_clip > 0:
            scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.optim_cfg.grad_clip)
        scaler.step(self.optimizer)
        scaler.update()
        self.scheduler.step()
        self._raise_if_nonfinite(self.stats.check_previous())

    def _raise_if_nonfinite(self, bad: tuple[int, dict[str, float]] | None) -> None:
        if bad is not None:
            last = self.last_path if self.last_saved_step is not None else None
            raise NonFiniteLossError(bad[0], bad[1], last)

    def _log_train(self, step: int) -> None:
        self._raise_if_nonfinite(self.stats.check_all())
        row = {"step": step, **self.stats.window_means()}
        if self.ctx.is_main:
            self.history.train.append(row)
            self.progress.set_postfix(loss=f"{row['train_loss']:.4g}", refresh=False)
            if self.on_log is not None:
                self.on_log(step, {k: v for k, v in row.items() if k != "step"})

    def _maybe_evaluate(self, step: int) -> bool:
        """Run ``evaluate`` on rank 0 at eval steps; record the row and whether it is a new best."""
        if self.evaluate is None or not self.cfg.eval_every or step % self.cfg.eval_every:
            return False
        self.improved_from = None
        if not self.ctx.is_main:
            return True
        metrics = self._run_evaluate()
        if self.cfg.best_metric not in metrics:
            raise ValueError(
                f"evaluate() returned {sorted(metrics)}; best_metric {self.cfg.best_metric!r} is not among them"
            )
        self.history.val.append({"step": step, **metrics})
        if self.on_log is not None:
            self.on_log(step, dict(metrics))
        if self.best.improves(metrics[self.cfg.best_metric]):
            self.improved_from = self.best.update(metrics[self.cfg.best_metric], step)
        return True

    def _run_evaluate(self) -> dict[str, float]:
        modes = [(module, module.training) for module in self.model.modules()]
        self.model.eval()
        try:
            with torch.no_grad():
                metrics = self.evaluate(self.model)
        finally:
            for module, training in modes:
                module.training = training
        return {str(k): float(v) for k, v in metrics.items()}

    # -------------------------------------------------------------------------------------- checkpoints
    def _snapshot(self, step: int, last: bool) -> None:
        """Gather every rank's RNG state; rank 0 writes ``best_*.pt`` (if improved) and ``last.pt`` (if
        ``last``), after checking loss and weights are finite; all ranks wait for the writes."""
        self._raise_if_nonfinite(self.stats.check_all())
        finite = torch.stack([torch.isfinite(p).all() for p in self.model.parameters()]).all()
        if not bool(finite):
            raise NonFiniteWeightsError(f"step {step}: model weights are not finite; nothing written")
        rng = all_gather_objects(capture_rng_state(), self.ctx)
        if self.ctx.is_main:
            payload = self._payload(step, rng)
            if self.improved_from is not None:
                save_checkpoint(self.best_path, payload)
                self._log_best(step, *self.improved_from)
            if last:
                save_checkpoint(self.last_path, payload)
                self.outputs.write(self.history, self._best_summary(), step)
        self.improved_from = None
        if last:
            self.last_saved_step = step
        barrier(self.ctx)

    def _log_best(self, step: int, old_value: float | None, old_step: int | None) -> None:
        name, new = self.cfg.best_metric, self.best.value
        if old_value is None:
            log.info("%s: first %s = %.6g at step %d", self.best_path.name, name, new, step)
        else:
            log.info(
                "%s: replaced the previous best (%s %.6g at step %d) with %s %.6g at step %d",
                self.best_path.name,
                name,
                old_value,
                old_step,
                name,
                new,
                step,
            )

    def _payload(self, step: int, rng: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "step": step,
            "world_size": self.ctx.world_size,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.precision.state_dict(),
            "rng": rng,
            "sampler": self.sampler.state_at(step),
            "config": self.config,
            "lineage": self.lineage,
            "metrics": {
                "history": self.history.state_dict(),
                "best": self.best.state_dict(),
                "window": self.stats.state_dict(),
            },
        }

    def _best_summary(self) -> dict[str, Any] | None:
        if self.best.value is None:
            return None
        return {**self.best.state_dict(), "checkpoint": self.best_path.name}

    def close(self) -> None:
        if self.progress is not None:
            self.progress.close()
        self.batches = None  # shuts DataLoader workers down
