"""The cross-conditional GPT over ``[music | up | down]`` tokens: Bailando's stack and Danceba's stack.

* ``stack="bailando"``: token + music embeddings + a learned positional embedding (sliced per stream),
  ``n_layer_base + n_layer_head`` pre-LayerNorm attention blocks, LayerNorm, heads.
* ``stack="danceba"`` (the paper): token + music embeddings + PRE (scaled by a learned scalar),
  ``n_layer_base`` TGCA blocks, ``n_layer_head`` PMMM blocks, one more TGCA block, RMSNorm, heads.

``music_norm=True`` (not in the published models, which feed raw features to ``cond_emb``, where the MFCCs
carry >99 % of the input energy): the music is z-scored per column, before ``cond_emb`` and PRE, with
training-split statistics kept as buffers (``gpt_base.music_mean`` / ``music_std``) so they travel with
the weights.

Both predict the next up and down codes at every time step from the logits on the up and down thirds;
the loss is ``CE(up) + CE(down)``. Module names follow the reference code (``gpt_base``/``gpt_head``,
``tok_emb_up``, ``cond_emb``, ``blocks``, ``block_base``, ``RMS_f``/``ln_f``, ``head_up``/``head_down``).

Ablation flags (Danceba stack only; the Bailando stack ignores them): ``pre`` (False: no position term at
all, the masks and Mamba carry order), ``pre_mode``, ``tgca_gate`` (False: plain pre-RMSNorm attention
blocks), ``gate_activation``, ``pmmm`` (``single``: one branch over the 3t sequence, which leaks future up
tokens into down logits, see ``danceba.models.pmmm``; ``none``: the head's layers are attention blocks like
the base's). PRE and the ``single`` branch make the model non-causal; every other setting is causal in time.

``genre_conditioning=True`` (not in the paper, whose limitations list genre control as future work): an
embedding of the dance genre (:mod:`danceba.genres`: AIST++'s 10 genres and an "any genre" label) is added
to every position of ``[music | up | down]``, a per-sequence style bias; ``forward(..., genre=(B,))``, and
``genre=None`` reads "any genre".

``activation_checkpointing=True`` (a memory saver, same maths): in training, each PMMM branch's
``Mamba(RMSNorm(s))`` keeps only its input for the backward and is recomputed there (see
``danceba.models.pmmm``). At the paper size with the pure-PyTorch scan that drops ~290 MiB per Mamba call
at batch 2 (18 calls) for one extra Mamba forward per call.

Initialisation and the mapping of official checkpoints are in ``danceba.models.gpt_weights``.

``faithful=True`` reproduces two quirks of the official release:

1. Initialisation (a defect): the release's ``_init_weights`` runs over the Mamba layers too, re-drawing
   their Linears from N(0, 0.02) and zeroing ``dt_proj.bias`` (so softplus gives dt ~ 0.69 for every
   channel instead of Mamba's log-uniform dt in [0.001, 0.1]); its PRE ``LazyLinear`` layers escape that
   init and keep PyTorch's default. Default (``faithful=False``): every Mamba keeps its own init and
   every other Linear/Embedding, PRE included, gets N(0, 0.02) with zero biases.
2. PRE alignment at inference (a defect; see ``danceba.models.pre``): for windows shorter than
   ``block_size`` the release concatenates un-cropped phase frames and crops to ``3t``, mis-aligning the
   up and down rows. Default: each stream is cropped to its own ``t`` frames. Same result at
   ``t == block_size``.

Cached decoding runs the same blocks one time step at a time (their ``cache`` argument: a
:class:`~danceba.models.attention.KVCache` per attention block, the Mamba states per PMMM block; the loop
is :mod:`danceba.models.incremental`). The official PRE looks at the whole window, so exact replay of the
official sampler re-runs the window at each step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from danceba.genres import ANY_GENRE, N_GENRE_LABELS
from danceba.models.attention import PreNormBlock, RMSNorm, TGCABlock, cross_conditional_mask
from danceba.models.gpt_config import GPTConfig
from danceba.models.gpt_weights import init_weights
from danceba.models.mamba import Mamba
from danceba.models.pmmm import PMMMBlock
from danceba.models.pre import PhaseRhythmEmbedding

# ----------------------------------------------------------------------------------------------
# Stacks
# ----------------------------------------------------------------------------------------------


def _attention_block(config: GPTConfig) -> nn.Module:
    """One block of the attention kind the stack uses (Bailando: LayerNorm; Danceba: TGCA or RMS plain)."""
    sizes = (config.n_embd, config.n_head, config.attn_pdrop, config.resid_pdrop)
    if config.stack == "bailando":
        return PreNormBlock(*sizes, norm="layer")
    if config.tgca_gate:
        return TGCABlock(*sizes, gate_activation=config.gate_activation)
    return PreNormBlock(*sizes, norm="rms")


def _head_block(config: GPTConfig) -> nn.Module:
    if config.stack == "bailando" or config.pmmm == "none":
        return _attention_block(config)

    def make_mamba() -> nn.Module:
        return Mamba(
            config.n_embd,
            d_state=config.mamba_d_state,
            d_conv=config.mamba_d_conv,
            expand=config.mamba_expand,
            backend=config.mamba_backend,
        )

    return PMMMBlock(
        config.n_embd, make_mamba, mode=config.pmmm, activation_checkpointing=config.activation_checkpointing
    )


class GPTBase(nn.Module):
    """Embeddings + the base blocks: (up (B,t), down (B,t), music (B,t,C), mask) -> (B, 3t, D)."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.tok_emb_up = nn.Embedding(config.vocab_up, config.n_embd)
        self.tok_emb_down = nn.Embedding(config.vocab_down, config.n_embd)
        self.cond_emb = nn.Linear(config.n_music, config.n_embd)
        if config.stack == "bailando":
            self.pos_emb = nn.Parameter(torch.zeros(1, 3 * config.block_size, config.n_embd))
        elif config.pre:
            self.pos_emb = PhaseRhythmEmbedding(
                config.n_music,
                config.n_embd,
                config.block_size,
                mode=config.pre_mode,
                n_fft=config.pre_n_fft,
                hop_length=config.pre_hop_length,
                channel_n_fft=config.pre_channel_n_fft,
                faithful=config.faithful,
            )
            self.position_scale = nn.Parameter(torch.tensor(config.position_scale_init))
        if config.music_norm:  # set from the training split by set_music_statistics; saved with the weights
            self.register_buffer("music_mean", torch.zeros(config.n_music))
            self.register_buffer("music_std", torch.ones(config.n_music))
        if config.genre_conditioning:
            self.genre_emb = nn.Embedding(N_GENRE_LABELS, config.n_embd)
        self.drop = nn.Dropout(config.embd_pdrop)
        self.blocks = nn.ModuleList(_attention_block(config) for _ in range(config.n_layer_base))

    def set_music_statistics(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Store per-column music statistics (n_music,); columns with std 0 are divided by 1."""
        if not self.config.music_norm:
            raise ValueError("set_music_statistics: the model was built with music_norm=False")
        self.music_mean.copy_(mean)
        self.music_std.copy_(torch.where(std > 0, std, torch.ones_like(std)))

    def normalise_music(self, music: torch.Tensor) -> torch.Tensor:
        """music (B, t, n_music) -> the same, z-scored when ``music_norm`` (else unchanged)."""
        if not self.config.music_norm:
            return music
        return (music - self.music_mean) / self.music_std

    def positional(self, music: torch.Tensor, rows: list[int] | None = None) -> torch.Tensor | None:
        """The additive position term (B or 1, 3t, D) of music (B, t, C), or only its rows ``rows``
        (B or 1, len(rows), D), or None (Danceba without PRE)."""
        t, size = music.shape[1], self.config.block_size
        if self.config.stack == "bailando":
            position = torch.cat([self.pos_emb[:, k * size : k * size + t] for k in range(3)], dim=1)
            return position if rows is None else position[:, rows]
        if self.config.pre:
            return self.position_scale * self.pos_emb(music, rows)
        return None

    def genre_term(self, genre: torch.Tensor | None, batch: int) -> torch.Tensor | None:
        """The additive genre term (B, 1, D) of labels ``genre`` (B,) (None: "any genre" for every row), or
        None for a model without ``genre_conditioning`` (which refuses a ``genre``)."""
        if not self.config.genre_conditioning:
            if genre is not None:
                raise ValueError(
                    "genre: this GPT was trained without genre conditioning (train_gpt.model.genre_conditioning)"
                )
            return None
        if genre is None:
            genre = torch.full((batch,), ANY_GENRE, dtype=torch.long, device=self.genre_emb.weight.device)
        if genre.shape != (batch,):
            raise ValueError(f"genre: expected ({batch},) labels, got shape {tuple(genre.shape)}")
        return self.genre_emb(genre)[:, None, :]

    def forward(
        self,
        up_idx: torch.Tensor,
        down_idx: torch.Tensor,
        music: torch.Tensor,
        mask: torch.Tensor,
        genre: torch.Tensor | None = None,
    ) -> torch.Tensor:
        music = self.normalise_music(music)
        x = torch.cat([self.cond_emb(music), self.tok_emb_up(up_idx), self.tok_emb_down(down_idx)], dim=1)
        position = self.positional(music)
        if position is not None:
            x = x + position
        genre_term = self.genre_term(genre, x.shape[0])
        if genre_term is not None:
            x = x + genre_term
        x = self.drop(x)
        for block in self.blocks:
            x = block(x, mask)
        return x


class GPTHead(nn.Module):
    """Head blocks + final norm + heads: (x (B, 3t, D), mask) -> logits_up (B,t,Vu), logits_down (B,t,Vd)."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(_head_block(config) for _ in range(config.n_layer_head))
        if config.stack == "bailando":
            self.ln_f = nn.LayerNorm(config.n_embd)
        else:
            self.block_base = _attention_block(config)
            self.RMS_f = RMSNorm(config.n_embd)
        self.head_up = nn.Linear(config.n_embd, config.vocab_up, bias=False)
        self.head_down = nn.Linear(config.n_embd, config.vocab_down, bias=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for block in self.blocks:
            x = block(x, mask)
        if hasattr(self, "block_base"):
            x = self.RMS_f(self.block_base(x, mask))
        else:
            x = self.ln_f(x)
        t = x.shape[1] // 3
        return self.head_up(x[:, t : 2 * t]), self.head_down(x[:, 2 * t :])


class CrossCondGPT(nn.Module):
    """The whole GPT. ``forward(up_idx, down_idx, music, targets) -> (logits_up, logits_down, loss)``."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.gpt_base = GPTBase(config)
        self.gpt_head = GPTHead(config)
        self._masks: dict[tuple[int, torch.device], torch.Tensor] = {}
        init_weights(self, faithful=config.faithful)

    def mask(self, t: int, device: torch.device) -> torch.Tensor:
        """The (3t, 3t) cross-conditional mask, built once per (t, device)."""
        key = (t, device)
        if key not in self._masks:
            self._masks[key] = cross_conditional_mask(t, device)
        return self._masks[key]

    def forward(
        self,
        up_idx: torch.Tensor,
        down_idx: torch.Tensor,
        music: torch.Tensor,
        targets: tuple[torch.Tensor, torch.Tensor] | None = None,
        genre: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """up_idx, down_idx (B, t) int64, music (B, t, n_music), targets ((B, t), (B, t)) or None, genre
        (B,) labels of :mod:`danceba.genres` or None (genre-conditioned models only) -> logits_up
        (B, t, vocab_up), logits_down (B, t, vocab_down), loss = CE(up) + CE(down) or None."""
        t = _check_inputs(self.config, up_idx, down_idx, music)
        mask = self.mask(t, up_idx.device)
        logits_up, logits_down = self.gpt_head(self.gpt_base(up_idx, down_idx, music, mask, genre), mask)
        if targets is None:
            return logits_up, logits_down, None
        targets_up, targets_down = targets
        loss = F.cross_entropy(logits_up.flatten(0, 1), targets_up.reshape(-1)) + F.cross_entropy(
            logits_down.flatten(0, 1), targets_down.reshape(-1)
        )
        return logits_up, logits_down, loss

    def num_parameters(self) -> int:
        """Number of parameters (buffers such as BatchNorm statistics excluded)."""
        return sum(p.numel() for p in self.parameters())


def _check_inputs(
    config: GPTConfig, up_idx: torch.Tensor, down_idx: torch.Tensor, music: torch.Tensor
) -> int:
    if up_idx.dim() != 2 or up_idx.shape != down_idx.shape:
        raise ValueError(
            "up_idx/down_idx: expected two (B, t) tensors of the same shape, "
            f"got {tuple(up_idx.shape)} and {tuple(down_idx.shape)}"
        )
    batch, t = up_idx.shape
    if music.shape != (batch, t, config.n_music):
        raise ValueError(f"music: expected shape {(batch, t, config.n_music)}, got {tuple(music.shape)}")
    if t > config.block_size:
        raise ValueError(f"t = {t} time steps exceeds block_size = {config.block_size}")
    return t


# ----------------------------------------------------------------------------------------------
# Building and sizes
# ----------------------------------------------------------------------------------------------


def build_gpt(config: GPTConfig, device: torch.device | str | None = None) -> CrossCondGPT:
    """Build the GPT for ``config`` (on ``device``; ``"meta"`` allocates nothing)."""
    with torch.device(device if device is not None else "cpu"):
        return CrossCondGPT(config)


def parameter_counts(config: GPTConfig) -> dict[str, int]:
    """Parameter counts of ``config`` built on the meta device: total and per top-level part.

    Keys: ``total``, ``gpt_base``, ``gpt_head`` and ``gpt_base.<child>`` / ``gpt_head.<child>``.
    """
    model = build_gpt(config, device="meta")
    counts = {"total": model.num_parameters()}
    for part_name in ("gpt_base", "gpt_head"):
        part = model.get_submodule(part_name)
        counts[part_name] = sum(p.numel() for p in part.parameters())
        for name, p in part.named_parameters(recurse=False):
            counts[f"{part_name}.{name}"] = p.numel()
        for name, child in part.named_children():
            if any(True for _ in child.parameters()):
                counts[f"{part_name}.{name}"] = sum(p.numel() for p in child.parameters())
    return counts
