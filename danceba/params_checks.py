"""Checks across sections of ``params.yaml``: what one section's values imply for another's.

Each section is checked on its own by its dataclass (types, bounds); these are the relations between
them, run by :func:`danceba.config.load_params` after the sections are built, each problem one line
naming the keys:

* the GPT's vocabularies are the VQ-VAE's codebook size;
* the GPT's ``n_music`` is the width ``music_features`` writes (438, 459 with the token rhythm
  appended, 21 with it alone; 35 for EDGE's set);
* the GPT's ``block_size`` is one less than the codes in a ``tokenize`` window, whose length is a
  multiple of the VQ-VAE's frames per code (``stride_t ** down_t``);
* ``data.download_dir`` stays inside the project unless it is absolute;
* the two models fit in this machine's memory: a size typo (``l_bins: 10000000000``) is refused with
  the estimate, before any stage tries to allocate it.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Any

from danceba.features.music import N_BAILANDO_FEATURES
from danceba.features.rhythm import N_RHYTHM_FEATURES

N_EDGE_FEATURES = 35
BYTES_PER_TRAINED_PARAMETER = 16  # fp32 weights, gradients and Adam's two moments


def expected_n_music(kind: str, token_rhythm: str) -> int:
    """The width of the 7.5 fps condition ``music_features`` writes for ``kind`` and ``token_rhythm``."""
    base = N_BAILANDO_FEATURES if kind == "bailando438" else N_EDGE_FEATURES
    return {"none": base, "append": base + N_RHYTHM_FEATURES, "only": N_RHYTHM_FEATURES}[token_rhythm]


def vqvae_parameters(model: Any) -> int:
    """An estimate (within a small factor) of the two-half VQ-VAE's parameters and codebook buffers."""
    convs_per_level = 2 * model.depth + 2
    levels = 2 * model.down_t + 2  # encoder and decoder
    conv = levels * convs_per_level * 3 * model.width * max(1.0, model.m_conv) * model.width
    codebook = 3 * model.l_bins * model.emb_width  # codes, EMA sums and counts
    return int(2 * (conv + codebook))


def gpt_parameters(model: Any) -> int:
    """An estimate (within a small factor) of the GPT's parameters: embeddings, heads and layers."""
    d = model.n_embd
    vocab = model.vocab_up + model.vocab_down
    embeddings = vocab * d + model.n_music * d + 2 * model.block_size * d
    heads = 2 * vocab * d
    attention_layers = 3 * (model.n_layer_base + model.n_layer_head) * 12 * d * d
    mamba = 3 * model.n_layer_head * 3 * model.mamba_expand * d * (d + model.mamba_d_state)
    return int(embeddings + heads + attention_layers + mamba)


def machine_memory_bytes() -> int | None:
    """Physical memory of this machine (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def consistency_problems(params: Any, memory_bytes: int | None = None) -> list[str]:
    """Every cross-section problem of ``params`` (a :class:`danceba.config.Params`), one line each."""
    problems = []
    vq, gpt = params.train_vqvae.model, params.train_gpt.model
    for half in ("up", "down"):
        vocab = getattr(gpt, f"vocab_{half}")
        if vocab != vq.l_bins:
            problems.append(
                f"train_gpt.model.vocab_{half}: {vocab} but train_vqvae.model.l_bins is {vq.l_bins} "
                "(the GPT predicts the VQ-VAE's codes: they must be equal)"
            )
    width = expected_n_music(params.music_features.kind, params.music_features.token_rhythm)
    if gpt.n_music != width:
        problems.append(
            f"train_gpt.model.n_music: {gpt.n_music} but music_features (kind {params.music_features.kind}, "
            f"token_rhythm {params.music_features.token_rhythm}) writes {width} columns"
        )
    hop = vq.hop_length
    window = params.tokenize.window
    if window % hop:
        problems.append(
            f"tokenize.window: {window} frames is not a multiple of the VQ-VAE's {hop} frames per code "
            "(train_vqvae.model.stride_t ** down_t)"
        )
    elif gpt.block_size != window // hop - 1:
        problems.append(
            f"train_gpt.model.block_size: {gpt.block_size} but a tokenize.window of {window} frames holds "
            f"{window // hop} codes: block_size must be {window // hop - 1}"
        )
    download = PurePosixPath(Path(params.data.download_dir).as_posix())
    if not download.is_absolute() and ".." in download.parts:
        problems.append(
            f"data.download_dir: {params.data.download_dir!r} leaves the project; give a path inside it "
            "or an absolute one"
        )
    memory = machine_memory_bytes() if memory_bytes is None else memory_bytes
    if memory:
        for key, count in (
            ("train_vqvae.model", vqvae_parameters(vq)),
            ("train_gpt.model", gpt_parameters(gpt)),
        ):
            needed = count * BYTES_PER_TRAINED_PARAMETER
            if needed > memory:
                problems.append(
                    f"{key}: about {count:.3g} parameters need about {needed / 2**30:,.0f} GiB to train "
                    f"(weights, gradients, Adam), more than this machine's {memory / 2**30:,.0f} GiB"
                )
    return problems
