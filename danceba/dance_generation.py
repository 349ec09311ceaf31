"""From music to joints: GPT codes (``danceba.generate``) decoded by the VQ-VAE into 60 fps joints.

Evaluation mode follows the reference: greedy top-1, the first up/down code taken from the
ground-truth dance (the tokens of the window starting at frame 0), the song's 7.5 fps features without
frame 0 as the condition. User mode (no ground truth) starts from the most frequent first code of
the training dances of a genre and may sample (temperature, top-k, seed). With L music frames the
dance has L codes per stream, i.e. 8·L frames at 60 fps: its length follows the music.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from danceba.generate import SamplingConfig, generate_codes, trim_codes
from danceba.models.bailando_layout import joints_from_bailando_layout
from danceba.models.gpt import CrossCondGPT
from danceba.models.vqvae import SepVQVAER
from danceba.motion_tokens import token_arrays


@dataclass(frozen=True)
class GenerateConfig:
    """``generate`` in params.yaml. ``top_k: 0`` means no top-k restriction."""

    splits: tuple[str, ...] = ("val", "test")
    mode: Literal["greedy", "sample"] = "greedy"
    temperature: float = 1.0
    top_k: int = 0
    seed: int = 0
    decode: Literal["exact", "cached"] = "exact"
    batch_size: int = 16
    sample_videos: int = 1  # MP4s (skeleton + music) of the first generated dances, for a look

    def sampling(self) -> SamplingConfig:
        return SamplingConfig(self.mode, self.temperature, self.top_k or None, self.seed, self.decode)


@dataclass(frozen=True)
class Song:
    """One piece to dance to: 7.5 fps music features (T, n_music) and the first up/down codes."""

    name: str
    music_7p5fps: np.ndarray
    first_up: int
    first_down: int


def ground_truth_first_codes(tokens: Path) -> dict[str, tuple[int, int]]:
    """{sequence: (up, down)} first codes of each sequence's window that starts at frame 0."""
    table = pq.read_table(tokens)
    table = table.filter(pa.compute.equal(table.column("start_frame"), 0))
    up, down = token_arrays(table, "up"), token_arrays(table, "down")
    return {
        name: (int(u[0]), int(d[0]))
        for name, u, d in zip(table.column("sequence").to_pylist(), up, down, strict=True)
    }


def genre_first_codes(tokens: Path) -> dict[str, tuple[int, int]]:
    """{genre code: (up, down)}: the most frequent first codes of the genre's training dances."""
    firsts: dict[str, Counter] = {}
    table = pq.read_table(tokens)
    table = table.filter(pa.compute.equal(table.column("split"), "train"))
    for name, u, d in zip(
        table.column("sequence").to_pylist(),
        token_arrays(table, "up"),
        token_arrays(table, "down"),
        strict=True,
    ):
        firsts.setdefault(name[:3], Counter())[(int(u[0]), int(d[0]))] += 1
    return {genre: counts.most_common(1)[0][0] for genre, counts in firsts.items()}


@torch.inference_mode()
def codes_to_joints(vqvae: SepVQVAER, up: torch.Tensor, down: torch.Tensor) -> np.ndarray:
    """(N,) up and down codes -> (8·N, 24, 3) float32 joints, root integrated from its decoded velocity."""
    device = next(vqvae.parameters()).device
    x72 = vqvae.decode(up.to(device)[None], down.to(device)[None])[0]
    return joints_from_bailando_layout(x72, root_is_velocity=True).float().cpu().numpy()


def generate_dances(
    gpt: CrossCondGPT, vqvae: SepVQVAER, songs: Sequence[Song], sampling: SamplingConfig, batch_size: int = 16
) -> dict[str, np.ndarray]:
    """{song name: (T, 24, 3) joints} for every song, generated in batches of ``batch_size`` songs."""
    device = next(gpt.parameters()).device
    dances = {}
    for start in range(0, len(songs), batch_size):
        batch = songs[start : start + batch_size]
        conditions = [torch.as_tensor(s.music_7p5fps[1:], dtype=torch.float32) for s in batch]
        lengths = [len(c) for c in conditions]
        if min(lengths) < 1:
            raise ValueError(
                f"{batch[lengths.index(min(lengths))].name}: music too short (needs 2 frames at 7.5 fps)"
            )
        music = torch.nn.utils.rnn.pad_sequence(conditions, batch_first=True).to(device)
        first_up = torch.tensor([[s.first_up] for s in batch], device=device)
        first_down = torch.tensor([[s.first_down] for s in batch], device=device)
        up, down = generate_codes(gpt, music, first_up, first_down, lengths, sampling)
        for song, (u, d) in zip(batch, trim_codes(up, down, lengths), strict=True):
            dances[song.name] = codes_to_joints(vqvae, u, d)
    return dances


def random_code_dances(vqvae: SepVQVAER, lengths: dict[str, int], seed: int) -> dict[str, np.ndarray]:
    """The 'random codes' baseline: uniform random codes of the given lengths decoded by the VQ-VAE."""
    generator = torch.Generator().manual_seed(seed)
    bins = vqvae.config.l_bins
    out = {}
    for name, n in sorted(lengths.items()):
        up = torch.randint(0, bins, (n,), generator=generator)
        down = torch.randint(0, bins, (n,), generator=generator)
        out[name] = codes_to_joints(vqvae, up, down)
    return out
