"""Training the pose VQ-VAE in Bailando's two phases, on windows cut from ``joints.parquet``.

Phase 1 trains the upper/lower ``SepVQVAE`` (root zeroed); phase 2 freezes it and trains the
root-velocity decoder (``SepVQVAER``). Each phase is one call of the generic loop
(:func:`danceba.train.loop.train`) in its own run folder, so both resume after a kill. Held-out windows
(the val/test sequences) give the validation loss and the reconstruction error in millimetres (MPJPE):
phase 1 on root-relative joints, phase 2 on full joints with the root integrated from the predicted
velocity (both start at the origin).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from danceba.data.windows import MotionWindows, load_joints, motion_windows, sequences_in_splits
from danceba.models.root_from_body import BodyRootDecoder
from danceba.models.vqvae import SepVQVAE, SepVQVAER, count_parameters, vqvae_loss_fn
from danceba.models.vqvae_config import VQVAEConfig
from danceba.motion.bailando_layout import (
    JOINT_CHANNELS,
    joints_from_bailando_layout,
    mpjpe_mm,
    with_root_velocity,
    zero_root,
)
from danceba.nested import file_digest, to_plain_config
from danceba.provenance import code_digest
from danceba.train.checkpoint import (
    best_checkpoint_path,
    config_digest,
    load_checkpoint,
)
from danceba.train.export import load_export, save_export
from danceba.train.history import DvcOutputs
from danceba.train.loop import OnLog, TrainResult, train
from danceba.train.seeding import seed_everything
from danceba.trainers.configs import TrainVQVAEConfig, VQVAEPhaseConfig

log = logging.getLogger(__name__)

BEST_METRIC = "mpjpe_mm"
NORMALISATION_WINDOWS = 512  # training windows whose decoded bodies set a body root decoder's statistics


def held_out(windows: np.ndarray, limit: int) -> torch.Tensor:
    """At most ``limit`` evenly spaced windows, as a tensor."""
    if len(windows) > limit:
        windows = windows[np.linspace(0, len(windows) - 1, limit).astype(int)]
    return torch.from_numpy(windows)


def mpjpe_evaluator(
    target: torch.Tensor, root_is_velocity: bool, batch: int = 64
) -> Callable[[torch.nn.Module], dict[str, float]]:
    """Validation on held-out windows (M, T, 72): the model's loss and the MPJPE (mm) of its reconstruction.

    Phase 1 (``root_is_velocity=False``, root zeroed): root-relative joints. Phase 2 (root velocity in
    channels [:3]): full joints with the root integrated from the predicted velocity, from the origin.
    """

    def evaluate(model: torch.nn.Module) -> dict[str, float]:
        device = next(model.parameters()).device
        losses, errors = [], []
        for chunk in target.split(batch):
            chunk = chunk.to(device)
            recon, terms = model(chunk)
            losses.append(float(terms["loss"]) * len(chunk))
            errors.append(
                mpjpe_mm(
                    joints_from_bailando_layout(recon, root_is_velocity),
                    joints_from_bailando_layout(chunk, root_is_velocity),
                )
                * len(chunk)
            )
        return {"val_loss": sum(losses) / len(target), BEST_METRIC: sum(errors) / len(target)}

    return evaluate


@dataclass(frozen=True)
class VQVAEResult:
    """What :func:`train_vqvae` produced."""

    model: SepVQVAER  # best phase-2 weights, eval mode
    stage1: TrainResult
    stage2: TrainResult
    metrics: dict[str, Any]


def _train_phase(
    name: str,
    model: torch.nn.Module,
    windows: MotionWindows,
    evaluate: Callable[[torch.nn.Module], dict[str, float]],
    run_dir: Path,
    reports: Path,
    config: TrainVQVAEConfig,
    on_log: OnLog | None,
    lineage: dict[str, Any] | None,
) -> TrainResult:
    """One phase (``stage1`` / ``stage2``) on the generic loop: its run folder ``run_dir / name``, its
    reports ``<reports>/<name>.json`` and ``<reports>/plots/<name>``, its log keys prefixed ``<name>/``."""
    phase: VQVAEPhaseConfig = getattr(config, name)
    return train(
        model,
        vqvae_loss_fn,
        windows,
        replace(phase.train, best_metric=BEST_METRIC, best_mode="min"),
        phase.optim,
        run_dir / name,
        evaluate,
        on_log=_prefixed(on_log, f"{name}/"),
        lineage=lineage,
        run_config={"model": to_plain_config(config.model)},
        outputs=DvcOutputs(reports / f"{name}.json", reports / "plots" / name),
    )


def train_vqvae(
    joints: Path,
    sequences: Path,
    config: TrainVQVAEConfig,
    run_root: Path,
    reports: Path,
    lineage: dict[str, Any] | None = None,
    on_log: OnLog | None = None,
) -> VQVAEResult:
    """Train both phases; return the best phase-2 model; metrics and plots go under ``reports``.

    ``run_root / <config digest> / stage{1,2}`` hold the resumable run folders (``last.pt``,
    ``best_mpjpe_mm.pt``).
    """
    train_names = sequences_in_splits(sequences, config.train_splits)
    eval_names = sequences_in_splits(sequences, config.eval_splits)
    train_joints, eval_joints = load_joints(joints, train_names), load_joints(joints, eval_names)
    run_dir = Path(run_root) / config_digest(
        {"config": config, "data": file_digest([joints, sequences], "md5"), "code": code_digest(__name__)}
    )
    log.info(
        "VQ-VAE run folder %s (%d train / %d held-out sequences)", run_dir, len(train_names), len(eval_names)
    )

    windows1 = MotionWindows(train_joints, config.stage1.window, config.stage1.stride)
    eval1 = motion_windows(eval_joints, config.stage1.window, config.stage1.window)
    seed_everything(config.stage1.train.seed, config.stage1.train.deterministic)  # initial weights
    model1 = SepVQVAE(config.model)
    log.info("SepVQVAE: %d parameters; %d training windows", count_parameters(model1), len(windows1))
    phase = functools.partial(
        _train_phase, run_dir=run_dir, reports=reports, config=config, on_log=on_log, lineage=lineage
    )
    evaluate1 = mpjpe_evaluator(zero_root(held_out(eval1, config.max_eval_windows)), root_is_velocity=False)
    result1 = phase("stage1", model1, windows1, evaluate1)

    seed_everything(config.stage2.train.seed, config.stage2.train.deterministic)  # root decoder's init
    model2 = SepVQVAER(config.model)
    model2.load_stage1_state_dict(_best_weights(run_dir / "stage1"))
    windows2 = MotionWindows(train_joints, config.stage2.window, config.stage2.stride, root_velocity=True)
    if isinstance(model2.root_decoder, BodyRootDecoder):
        fit_body_normalisation(model2, windows2)
    evaluate2 = mpjpe_evaluator(
        with_root_velocity(held_out(eval1, config.max_eval_windows)), root_is_velocity=True
    )
    result2 = phase("stage2", model2, windows2, evaluate2)
    model2.load_state_dict(_best_weights(run_dir / "stage2"))
    metrics = {
        "parameters": count_parameters(model2),
        "stage1_best_mpjpe_mm": result1.best["value"] if result1.best else None,
        "stage2_best_mpjpe_mm": result2.best["value"] if result2.best else None,
        "stage1_final": result1.final_metrics,
        "stage2_final": result2.final_metrics,
    }
    return VQVAEResult(model2.eval(), result1, result2, metrics)


def fit_body_normalisation(
    model: SepVQVAER, windows: MotionWindows, limit: int = NORMALISATION_WINDOWS
) -> None:
    """Set a :class:`BodyRootDecoder`'s statistics from the stage-1 reconstruction of at most ``limit``
    evenly spaced training windows (the same windows for any number of processes)."""
    picks = np.linspace(0, len(windows) - 1, min(limit, len(windows))).astype(int)
    device = next(model.parameters()).device
    bodies = [
        model.decoded_body(torch.stack([windows[int(i)] for i in chunk]).to(device))
        for chunk in np.array_split(picks, -(-len(picks) // 64))
    ]
    model.root_decoder.fit_normalisation(torch.cat(bodies)[..., JOINT_CHANNELS:].cpu())


def _prefixed(on_log: OnLog | None, prefix: str) -> OnLog | None:
    if on_log is None:
        return None
    return lambda step, metrics: on_log(step, {f"{prefix}{k}": v for k, v in metrics.items()})


def _best_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    path = best_checkpoint_path(run_dir, BEST_METRIC)
    if not path.is_file():
        path = run_dir / "last.pt"
    return load_checkpoint(path)["model"]


def export_vqvae(path: Path, model: SepVQVAER, config: VQVAEConfig, metrics: dict, provenance: dict) -> None:
    """Write the trained VQ-VAE (weights + model config + metrics + provenance) for the later stages."""
    save_export(path, "SepVQVAER", model, config, metrics, provenance)


def load_vqvae(path: Path, map_location: str | torch.device = "cpu") -> SepVQVAER:
    """The exported VQ-VAE, in eval mode; a checkpoint of another kind or architecture is refused by name."""
    return load_export(path, "SepVQVAER", VQVAEConfig, SepVQVAER, "VQ-VAE", map_location)
