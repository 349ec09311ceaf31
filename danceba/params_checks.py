"""Relations between sections of ``params.yaml``: the values one section derives from others, and the
checks across sections.

Each section is checked on its own by its dataclass (types, bounds). :func:`danceba.config.load_params`
then fills in the GPT's sizes that follow from other sections (:data:`DERIVED_GPT_FIELDS`; written in
``params.yaml`` they are refused, so each has one source):

* ``vocab_up`` / ``vocab_down``: the VQ-VAE's codebook size (``train_vqvae.model.l_bins``);
* ``n_music``: the width ``music_features`` writes (438, 459 with the token rhythm appended, 21 with it
  alone; 35 for EDGE's set);
* ``block_size``: one less than the codes in a ``tokenize`` window.

and reports, each problem one line naming the keys:

* a VQ-VAE whose frames per code (``stride_t ** down_t``) is not the music's token rate (60 / 7.5 = 8
  frames: the GPT reads one 7.5 fps music frame beside each code);
* a ``tokenize`` window that is not a whole number of codes;
* ``data.download_dir`` leaving the project unless it is absolute;
* models that do not fit in this machine's memory: a size typo (``l_bins: 10000000000``) is refused
  with the estimate, before any stage tries to allocate it.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Any

from danceba.features.columns import FRAMES_PER_TOKEN, N_BAILANDO_FEATURES, N_EDGE_FEATURES, N_RHYTHM_FEATURES

BYTES_PER_TRAINED_PARAMETER = 16  # fp32 weights, gradients and Adam's two moments

# train_gpt.model fields the loader derives, and what each follows (the message when one is written).
DERIVED_GPT_FIELDS = {
    "vocab_up": "train_vqvae.model.l_bins",
    "vocab_down": "train_vqvae.model.l_bins",
    "n_music": "music_features.kind and token_rhythm",
    "block_size": "tokenize.window (codes per window - 1)",
}


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


def written_derived_fields(raw: Any) -> list[str]:
    """One line per derived GPT field that the raw ``params.yaml`` mapping spells out (refused)."""
    model = raw.get("train_gpt", {}).get("model", {}) if isinstance(raw, dict) else {}
    if not isinstance(model, dict):
        return []
    return [
        f"train_gpt.model.{name}: derived from {source}; remove it from the file"
        for name, source in DERIVED_GPT_FIELDS.items()
        if name in model
    ]


def derived_gpt_fields(params: Any) -> dict[str, int]:
    """The values of :data:`DERIVED_GPT_FIELDS` for ``params`` (a :class:`danceba.config.Params`)."""
    vq = params.train_vqvae.model
    features = params.music_features
    return {
        "vocab_up": vq.l_bins,
        "vocab_down": vq.l_bins,
        "n_music": expected_n_music(features.kind, features.token_rhythm),
        "block_size": params.tokenize.window // vq.hop_length - 1,
    }


def derivation_problems(params: Any) -> list[str]:
    """The problems that leave the derived GPT sizes undefined (checked before deriving them)."""
    hop, window = params.train_vqvae.model.hop_length, params.tokenize.window
    if hop != FRAMES_PER_TOKEN:
        return [
            f"train_vqvae.model: stride_t ** down_t is {hop} frames per code, but the GPT reads one 7.5 fps "
            f"music frame beside each code: it must be {FRAMES_PER_TOKEN}"
        ]
    if window % hop or window // hop < 2:
        return [
            f"tokenize.window: {window} frames is not a multiple of the VQ-VAE's {hop} frames per code "
            f"(train_vqvae.model.stride_t ** down_t) of at least 2 codes"
        ]
    return []


def consistency_problems(params: Any, memory_bytes: int | None = None) -> list[str]:
    """Every cross-section problem of ``params`` (a :class:`danceba.config.Params` with its derived
    values), one line each."""
    problems = []
    vq, gpt = params.train_vqvae.model, params.train_gpt.model
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
