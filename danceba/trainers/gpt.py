"""Training the cross-conditional GPT (Bailando or Danceba stack) on precomputed motion tokens.

Reads ``tokens.parquet`` (stage ``tokenize``) and the 7.5 fps music features; never runs the VQ-VAE.
Validation on the held-out (val/test) windows reports the loss, the per-stream cross-entropy
``val_ce`` (nats; the uniform-code baseline is ln(codebook size)) and the top-1 accuracy.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from danceba import tables
from danceba.data.windows import TokenWindows
from danceba.genres import ANY_GENRE, genre_label, sequence_genre
from danceba.models.gpt import CrossCondGPT, build_gpt
from danceba.models.gpt_config import GPTConfig
from danceba.motion_tokens import read_tokens, token_arrays
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
from danceba.trainers.configs import TrainGPTConfig

log = logging.getLogger(__name__)

BEST_METRIC = "val_loss"


def token_dataset(tokens: Path, music_7p5fps: Path, splits: tuple[str, ...]) -> TokenWindows:
    """GPT training pairs of the given splits."""
    table = read_tokens(tokens, splits)
    music_ids = sorted(set(table.column("music_id").to_pylist()))
    music = {mid: tables.read_group(music_7p5fps, mid, "features") for mid in music_ids}
    labels = {name: genre_label(sequence_genre(name)) for name in set(table.column("sequence").to_pylist())}
    return TokenWindows(
        token_arrays(table, "up"),
        token_arrays(table, "down"),
        table.column("music_id").to_pylist(),
        table.column("music_start").to_numpy(),
        music,
        np.array([labels[name] for name in table.column("sequence").to_pylist()], dtype=np.int64),
    )


def corrupt_codes(codes: torch.Tensor, probability: float, vocab: int) -> torch.Tensor:
    """codes (B, t) int64 -> a copy where each code is replaced, with ``probability``, by a uniform random
    code of ``vocab`` (drawn from torch's global RNG, which the training loop seeds and checkpoints)."""
    if probability <= 0:
        return codes
    replace_mask = torch.rand(codes.shape, device=codes.device) < probability
    return torch.where(replace_mask, torch.randint_like(codes, vocab), codes)


def drop_genre(genre: torch.Tensor, probability: float) -> torch.Tensor:
    """genre (B,) labels -> a copy where each becomes "any genre" with ``probability`` (torch's global RNG,
    drawn only when ``probability > 0``): the model learns the "any genre" label too."""
    if probability <= 0:
        return genre
    return torch.where(torch.rand(genre.shape, device=genre.device) < probability, ANY_GENRE, genre)


def batch_genre(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
    """The batch's genre labels for a genre-conditioned model, None for any other."""
    return batch["genre"] if model.config.genre_conditioning else None


def gpt_loss(code_noise: float, vocab: tuple[int, int], genre_dropout: float = 0.0) -> Callable:
    """``loss_fn`` for the loop: CE(up) + CE(down) of the next codes, the input codes corrupted with
    probability ``code_noise`` (targets never are): the model cannot lean on the code history alone.
    A genre-conditioned model reads each window's genre, dropped to "any" with ``genre_dropout``."""

    def loss_fn(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        up_in = corrupt_codes(batch["up_in"], code_noise, vocab[0])
        down_in = corrupt_codes(batch["down_in"], code_noise, vocab[1])
        genre = batch_genre(model, batch)
        if genre is not None:
            genre = drop_genre(genre, genre_dropout)
        targets = (batch["up_target"], batch["down_target"])
        _, _, loss = model(up_in, down_in, batch["music"], targets=targets, genre=genre)
        return loss, {}

    return loss_fn


def music_statistics(data: TokenWindows) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-column mean and population std (n_music,) over every music frame of the dataset's songs."""
    frames = torch.cat([data.music[mid] for mid in sorted(data.music)]).double()
    return frames.mean(0).float(), frames.std(0, correction=0).float()


def sham_music_windows(data: TokenWindows, seed: int = 0) -> TokenWindows:
    """The same token windows paired with another song's music (a derangement over music ids, seeded;
    each window keeps its start, clamped to fit the other song): the teacher-forced "does it listen" control.
    With a single music id there is no other song: ValueError."""
    ids = sorted(data.music)
    if len(ids) < 2:
        raise ValueError("sham music needs at least two music ids")
    generator = torch.Generator().manual_seed(seed)
    shift = 1 + int(torch.randint(len(ids) - 1, (1,), generator=generator))
    other = {mid: ids[(i + shift) % len(ids)] for i, mid in enumerate(ids)}
    music_id = [other[mid] for mid in data.music_id]
    start = [
        min(int(s), len(data.music[mid]) - 1 - data.block)
        for s, mid in zip(data.music_start, music_id, strict=True)
    ]
    music = {mid: v.numpy() for mid, v in data.music.items()}
    return TokenWindows(
        data.up.numpy(), data.down.numpy(), music_id, np.asarray(start), music, data.genre.numpy()
    )


def _subset(data: TokenWindows, limit: int) -> Subset | TokenWindows:
    if len(data) <= limit:
        return data
    step = len(data) / limit
    return Subset(data, [int(i * step) for i in range(limit)])


def gpt_evaluator(
    data: TokenWindows, limit: int, batch_size: int
) -> Callable[[torch.nn.Module], dict[str, float]]:
    """Held-out loss, per-stream cross-entropy (nats) and top-1 accuracy on at most ``limit`` windows, and
    ``val_ce_sham``: the same windows with another song's music (with one music id: not reported)."""
    loader = DataLoader(_subset(data, limit), batch_size=batch_size, shuffle=False)
    sham = (
        DataLoader(_subset(sham_music_windows(data), limit), batch_size=batch_size)
        if len(data.music) > 1
        else None
    )

    def evaluate(model: torch.nn.Module) -> dict[str, float]:
        metrics = _scores(model, loader)
        if sham is not None:
            metrics["val_ce_sham"] = _scores(model, sham)["val_ce"]
            metrics["val_ce_sham_gap"] = metrics["val_ce_sham"] - metrics["val_ce"]
        return metrics

    return evaluate


def _scores(model: torch.nn.Module, loader: DataLoader) -> dict[str, float]:
    """Loss, per-stream CE and top-1 accuracy of the model over a loader's windows (teacher forcing)."""
    device = next(model.parameters()).device
    total_loss, correct, count, windows = 0.0, 0, 0, 0
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        logits_up, logits_down, loss = model(
            batch["up_in"],
            batch["down_in"],
            batch["music"],
            targets=(batch["up_target"], batch["down_target"]),
            genre=batch_genre(model, batch),
        )
        n = len(batch["up_in"])
        total_loss += float(loss) * n
        windows += n
        for logits, target in ((logits_up, batch["up_target"]), (logits_down, batch["down_target"])):
            correct += int((logits.argmax(-1) == target).sum())
            count += target.numel()
    val_loss = total_loss / windows
    return {"val_loss": val_loss, "val_ce": val_loss / 2, "val_accuracy": correct / count}


def train_gpt(
    tokens: Path,
    music_7p5fps: Path,
    config: TrainGPTConfig,
    run_root: Path,
    reports: Path,
    lineage: dict[str, Any] | None = None,
    on_log: OnLog | None = None,
) -> tuple[CrossCondGPT, TrainResult, dict[str, Any]]:
    """Train the GPT; return the best model (eval mode), the loop's result and summary metrics."""
    train_data = token_dataset(tokens, music_7p5fps, config.train_splits)
    eval_data = token_dataset(tokens, music_7p5fps, config.eval_splits)
    check_vocabulary(train_data, config.model, tokens)
    check_music_width(train_data, config.model, music_7p5fps)
    seed_everything(config.train.seed, config.train.deterministic)  # initial weights
    model = build_gpt(config.model)
    if config.model.music_norm:
        model.gpt_base.set_music_statistics(*music_statistics(train_data))
    run_dir = Path(run_root) / config_digest(
        {"config": config, "data": file_digest([tokens, music_7p5fps], "md5"), "code": code_digest(__name__)}
    )
    log.info(
        "GPT (%s stack): %d parameters; %d training windows; run folder %s",
        config.model.stack,
        model.num_parameters(),
        len(train_data),
        run_dir,
    )
    result = train(
        model,
        gpt_loss(config.code_noise, (config.model.vocab_up, config.model.vocab_down), config.genre_dropout),
        train_data,
        replace(config.train, best_metric=BEST_METRIC, best_mode="min"),
        config.optim,
        run_dir,
        gpt_evaluator(eval_data, config.max_eval_windows, config.train.batch_size),
        on_log=on_log,
        lineage=lineage,
        run_config={"model": to_plain_config(config.model)},
        outputs=DvcOutputs(reports / "train.json", reports / "plots"),
    )
    best = best_checkpoint_path(run_dir, BEST_METRIC)
    model.load_state_dict(load_checkpoint(best if best.is_file() else run_dir / "last.pt")["model"])
    uniform = math.log(config.model.vocab_up)
    final = result.final_metrics
    metrics = {
        "parameters": model.num_parameters(),
        "stack": config.model.stack,
        "steps": result.steps,
        "best_val_loss": result.best["value"] if result.best else None,
        "final_val_ce": final.get("val_ce"),
        "final_val_accuracy": final.get("val_accuracy"),
        "final_val_ce_sham": final.get("val_ce_sham"),  # the same windows with another song's music
        "final_val_ce_sham_gap": final.get("val_ce_sham_gap"),  # > 0: the music it hears helps
        "uniform_ce": uniform,
        "val_ce_over_uniform": final["val_ce"] / uniform if "val_ce" in final else None,
    }
    return model.eval(), result, metrics


def check_vocabulary(data: TokenWindows, config: GPTConfig, tokens: Path) -> None:
    """Refuse codes outside the GPT's vocabulary (a VQ-VAE/GPT size mismatch) with a clear message."""
    for name, codes, vocab in (("up", data.up, config.vocab_up), ("down", data.down, config.vocab_down)):
        if int(codes.max()) >= vocab:
            raise ValueError(
                f"{tokens}: {name} codes reach {int(codes.max())} but train_gpt.model.vocab_{name} is {vocab}; "
                "set it to the VQ-VAE codebook size (train_vqvae.model.l_bins)"
            )


def check_music_width(data: TokenWindows, config: GPTConfig, music_7p5fps: Path) -> None:
    """Refuse music features whose width is not the GPT's ``n_music`` (e.g. token rhythm switched)."""
    width = next(iter(data.music.values())).shape[1]
    if width != config.n_music:
        raise ValueError(
            f"{music_7p5fps}: music features have {width} columns but train_gpt.model.n_music is "
            f"{config.n_music} (Bailando's 438; music_features.token_rhythm append: 459, only: 21)"
        )


def export_gpt(path: Path, model: CrossCondGPT, config: GPTConfig, metrics: dict, provenance: dict) -> None:
    """Write the trained GPT (weights + model config + metrics + provenance) for generation."""
    save_export(path, "CrossCondGPT", model, config, metrics, provenance)


def load_gpt(path: Path, map_location: str | torch.device = "cpu") -> CrossCondGPT:
    """The exported GPT in eval mode; a checkpoint of another kind or architecture is refused by name."""
    return load_export(path, "CrossCondGPT", GPTConfig, build_gpt, "GPT", map_location)
