"""From music to joints: GPT codes (``danceba.generation.sampler``) decoded by the VQ-VAE into 60 fps joints.

Evaluation mode follows the reference: greedy top-1, the first up/down code taken from the
ground-truth dance (the tokens of the window starting at frame 0), the song's 7.5 fps features without
frame 0 as the condition. User mode (no ground truth) starts from the most frequent first code of
the training dances of a genre and may sample (temperature, top-k, seed). With L music frames the
dance has L codes per stream, i.e. 8·L frames at 60 fps: its length follows the music.

Two controls of the evaluation come from here too: :func:`reconstruct_joints` (the ground truth through
the VQ-VAE's encoder and decoder: the best the token route can do) and :func:`sham_music_songs` (each
piece with the music of another song: does the model listen?).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from danceba.data.aistpp import FPS, music_tempo_bpm
from danceba.floor import place_on_floor
from danceba.generation.config import SamplingConfig
from danceba.generation.sampler import generate_codes, trim_codes
from danceba.genres import genre_label
from danceba.models.gpt import CrossCondGPT
from danceba.models.vqvae import SepVQVAER
from danceba.motion.bailando_layout import joints_from_bailando_layout, to_bailando_layout
from danceba.motion_tokens import token_arrays
from danceba.progress import progress_bar

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Song:
    """One piece to dance to: 7.5 fps music features (T, n_music), the first up/down codes, and the genre
    to dance (a code of :mod:`danceba.genres`; None: any). Only a genre-conditioned GPT reads the genre."""

    name: str
    music_7p5fps: np.ndarray
    first_up: int
    first_down: int
    genre: str | None = None


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
    """(N,) up and down codes -> (8·N, 24, 3) float32 joints at 60 fps: the root integrated from its
    decoded velocity, then the height kept on the floor (``danceba.floor``)."""
    device = next(vqvae.parameters()).device
    x72 = vqvae.decode(up.to(device)[None], down.to(device)[None])[0]
    return place_on_floor(joints_from_bailando_layout(x72, root_is_velocity=True).float().cpu().numpy(), FPS)


def generate_dances(
    gpt: CrossCondGPT, vqvae: SepVQVAER, songs: Sequence[Song], sampling: SamplingConfig, batch_size: int = 16
) -> dict[str, np.ndarray]:
    """{song name: (T, 24, 3) joints} for every song, generated in batches of ``batch_size`` songs.

    Progress on stderr: one bar over every batch's decoding steps, named after the batch being
    generated, and a log line per finished song (``danceba.progress``: lines never tear the bar)."""
    device = next(gpt.parameters()).device
    batches = [songs[start : start + batch_size] for start in range(0, len(songs), batch_size)]
    steps = sum(max((len(s.music_7p5fps) - 1 for s in batch), default=0) for batch in batches)
    dances: dict[str, np.ndarray] = {}
    with progress_bar(total=steps, desc="generate", unit="code") as bar:
        for number, batch in enumerate(batches, start=1):
            bar.set_description(f"generate {_batch_label(batch)} ({number}/{len(batches)})")
            dances.update(_generate_batch(gpt, vqvae, batch, sampling, device, bar))
    return dances


def _batch_label(batch: Sequence[Song]) -> str:
    return batch[0].name if len(batch) == 1 else f"{batch[0].name} +{len(batch) - 1}"


def _generate_batch(
    gpt: CrossCondGPT,
    vqvae: SepVQVAER,
    batch: Sequence[Song],
    sampling: SamplingConfig,
    device: torch.device,
    bar: Any,
) -> dict[str, np.ndarray]:
    """One batch of songs through the GPT (``bar`` advanced by one per decoding step) and the VQ-VAE."""
    up, down, lengths = batch_codes(gpt, batch, sampling, device, progress=lambda _done: bar.update(1))
    dances = {}
    for song, (u, d) in zip(batch, trim_codes(up, down, lengths), strict=True):
        dances[song.name] = codes_to_joints(vqvae, u, d)
        log.info("%s: %.1f s of dance (%d codes)", song.name, len(dances[song.name]) / FPS, len(u))
    return dances


def batch_codes(
    gpt: CrossCondGPT,
    batch: Sequence[Song],
    sampling: SamplingConfig,
    device: torch.device | str,
    progress: Callable[[int], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """The GPT's codes for a batch of songs: up, down (B, L + 1) (``PAD_CODE`` past each song) and the
    songs' lengths L_i (one code per 7.5 fps music frame after the first)."""
    conditions = [torch.as_tensor(s.music_7p5fps[1:], dtype=torch.float32) for s in batch]
    lengths = [len(c) for c in conditions]
    if min(lengths) < 1:
        raise ValueError(
            f"{batch[lengths.index(min(lengths))].name}: music too short (needs 2 frames at 7.5 fps)"
        )
    music = torch.nn.utils.rnn.pad_sequence(conditions, batch_first=True).to(device)
    first_up = torch.tensor([[s.first_up] for s in batch], device=device)
    first_down = torch.tensor([[s.first_down] for s in batch], device=device)
    genre = None
    if gpt.config.genre_conditioning:
        genre = torch.tensor([genre_label(s.genre) for s in batch], device=device)
    up, down = generate_codes(
        gpt, music, first_up, first_down, lengths, sampling, progress=progress, genre=genre
    )
    return up, down, lengths


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


@torch.inference_mode()
def reconstruct_joints(vqvae: SepVQVAER, joints: np.ndarray) -> np.ndarray:
    """Ground truth (T, 24, 3) -> its VQ-VAE reconstruction (hop·⌊T/hop⌋, 24, 3) float32.

    The whole sequence (cut to a multiple of the VQ-VAE's hop, 8) is encoded at once, as ``tokenize``
    encodes its windows (Bailando layout, root channels zeroed by the encoder), then decoded by
    :func:`codes_to_joints` (root integrated from the decoded velocity, height on the floor)."""
    joints = np.asarray(joints, dtype=np.float32)
    if joints.ndim != 3 or joints.shape[1:] != (24, 3):
        raise ValueError(f"reconstruction: joints must be (T, 24, 3), got {joints.shape}")
    hop = vqvae.config.hop_length
    usable = len(joints) // hop * hop
    if usable == 0:
        raise ValueError(f"reconstruction: needs at least {hop} frames, got {len(joints)}")
    device = next(vqvae.parameters()).device
    x72 = torch.from_numpy(np.ascontiguousarray(to_bailando_layout(joints[:usable])))[None].to(device)
    up, down = vqvae.encode(x72)
    return codes_to_joints(vqvae, up[0], down[0])


def reconstruction_dances(vqvae: SepVQVAER, motions: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """{name: reconstruction} of every ground-truth motion (T, 24, 3) in ``motions``."""
    return {name: reconstruct_joints(vqvae, joints) for name, joints in sorted(motions.items())}


def _tempo_or_none(music_id: str) -> float | None:
    try:
        return music_tempo_bpm(music_id)
    except ValueError:
        return None


def music_derangement(
    music_ids: Sequence[str],
    seed: int,
    tempo: Callable[[str], float | None] = _tempo_or_none,
    tries: int = 1000,
) -> dict[str, str]:
    """{music id: another music id}: a seeded permutation of the distinct ids without fixed points.

    Among up to ``tries`` random derangements the first with the fewest pairs of equal tempo (``tempo``:
    from the AIST id by default; None = unknown, never equal) is kept, so that where the ids allow a
    song is replaced by one on another beat grid."""
    ids = sorted(set(music_ids))
    if len(ids) < 2:
        raise ValueError(f"sham music: needs at least 2 distinct music ids, got {ids}")
    tempos = [tempo(i) for i in ids]
    rng = np.random.default_rng(seed)
    best, best_clashes = None, len(ids) + 1
    for _ in range(tries):
        order = rng.permutation(len(ids))
        if np.any(order == np.arange(len(ids))):
            continue
        clashes = sum(tempos[i] is not None and tempos[i] == tempos[j] for i, j in enumerate(order))
        if clashes < best_clashes:
            best, best_clashes = order, clashes
            if clashes == 0:
                break
    if best is None:  # only possible for tiny tries; a cyclic shift is always a derangement
        best = np.roll(np.arange(len(ids)), 1)
    return {ids[i]: ids[j] for i, j in enumerate(best)}


def fit_length(features: np.ndarray, length: int) -> np.ndarray:
    """Music features (T', D) cropped or tiled (repeated from the start) along time to (length, D)."""
    features = np.asarray(features)
    if features.ndim != 2 or len(features) == 0:
        raise ValueError(f"fit_length: expected non-empty (T, D) features, got {features.shape}")
    if length < 1:
        raise ValueError(f"fit_length: length must be positive, got {length}")
    return features[np.arange(length) % len(features)]


def sham_music_songs(
    songs: Sequence[Song], music_of: Mapping[str, str], seed: int
) -> tuple[list[Song], dict[str, str]]:
    """Each song with the music of another music id (:func:`music_derangement` over the songs' music ids;
    that song's features fitted to this one's length), its own first codes and genre kept.

    ``music_of``: {song name: music id}; every music id's features are taken from a song that has it.
    Returns the sham songs and {song name: the music id it is fed}."""
    features = {music_of[s.name]: s.music_7p5fps for s in songs}
    other = music_derangement(list(features), seed)
    shams, fed = [], {}
    for song in songs:
        fed[song.name] = other[music_of[song.name]]
        music = fit_length(features[fed[song.name]], len(song.music_7p5fps))
        shams.append(replace(song, music_7p5fps=music))
    return shams, fed
