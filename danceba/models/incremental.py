"""Incremental (cached) decoding of :class:`~danceba.models.gpt.CrossCondGPT`: one time step at a time.

At time ``k`` the model receives three new positions, one per stream: music frame ``k``, up code ``k``,
down code ``k``. Under the cross-conditional mask each of them attends to times ``<= k`` of all three
streams, and no earlier position attends to them, so a step needs only:

* per attention layer (Bailando blocks, TGCA), the keys and values of the earlier positions: a
  :class:`~danceba.models.attention.KVCache` ring buffer holding the last ``window`` time steps (3
  positions each). The three new queries attend to every cached key without a mask (all cached times
  are ``<= k``);
* per PMMM layer, the recurrent state of each stream's Mamba (:meth:`Mamba.step`): conv inputs and
  SSM state, which carry every earlier step, not only the window;

Each block runs its own ``forward`` with that cache (``block(x, None, cache)``): training and decoding
share one path per block, and this module only feeds it one time step at a time.
* the music embeddings ``cond_emb(music)``, computed once for the whole song.

Position term of the new positions (:func:`new_position_terms`): the rows that the full forward over the
current window ``[max(0, k - window + 1), k]`` gives its *newest* time, one per stream. Bailando: the
learned embedding of slot ``min(k, window - 1)``. Danceba with PRE: the last row of each stream of PRE
over the current music window. Older positions keep the term they received when they were new.

Where this equals the full forward: for causal models (Bailando stack; Danceba with ``pre=False`` and
``pmmm`` ``parallel`` or ``none``) and ``k < window``, :meth:`IncrementalDecoder.step` returns the logits of
the last position of the forward over times ``0..k`` (up to floating-point summation order). It differs
(by design) when PRE is on (PRE is not causal: the forward recomputes every row from the whole window)
and once ``k >= window`` (see ``danceba.generation.sampler``). ``pmmm="single"`` scans ``[music | up | down]`` in
sequence order, so a new time step cannot be appended to it: not supported here.
"""

from __future__ import annotations

import torch
from torch import Tensor

from danceba.models.attention import KVCache
from danceba.models.gpt import CrossCondGPT, GPTBase
from danceba.models.mamba import MambaState
from danceba.models.pmmm import PMMMBlock


def new_position_terms(base: GPTBase, music_window: Tensor) -> Tensor | None:
    """Position term of the newest time of a window, per stream: music_window (B, w, C) -> (B or 1, 3, D)
    (rows ``w-1, 2w-1, 3w-1`` of ``base.positional``), or None without a position term."""
    w = music_window.shape[1]
    return base.positional(music_window, rows=[w - 1, 2 * w - 1, 3 * w - 1])


class IncrementalDecoder:
    """Cached step-by-step decoding of one batch of songs (eval mode; call under ``torch.inference_mode``).

    ``IncrementalDecoder(model, music (B, L, n_music), window, genre (B,) or None)``, then for k = 0, 1, ...:
    ``step(up_k (B,), down_k (B,)) -> logits_up (B, vocab_up), logits_down (B, vocab_down)``, the
    prediction of time k + 1 from codes and music up to time k. ``window`` (the sampler's context,
    ``block_size - 1``) bounds the attention span and the PRE/positional window.
    """

    def __init__(self, model: CrossCondGPT, music: Tensor, window: int, genre: Tensor | None = None) -> None:
        config = model.config
        if model.training:
            raise ValueError(
                "IncrementalDecoder: the model must be in eval mode (dropout would differ per step)"
            )
        if config.stack == "danceba" and config.pmmm == "single":
            raise ValueError(
                "IncrementalDecoder: pmmm='single' scans [music | up | down] in sequence order and cannot be "
                "extended one time step at a time; decode it with decode='exact'"
            )
        if not 1 <= window <= config.block_size:
            raise ValueError(f"IncrementalDecoder: window must be in [1, {config.block_size}], got {window}")
        self.model = model
        self.window = window
        self.music = model.gpt_base.normalise_music(music)
        self.music_tokens = model.gpt_base.cond_emb(self.music)  # (B, L, D)
        self.genre_term = model.gpt_base.genre_term(genre, music.shape[0])  # (B, 1, D) or None
        self.time = 0
        self.blocks = [*model.gpt_base.blocks, *model.gpt_head.blocks]
        if hasattr(model.gpt_head, "block_base"):
            self.blocks.append(model.gpt_head.block_base)
        batch = music.shape[0]
        self.caches: list[KVCache | list[MambaState]] = [
            block.init_cache(batch) if isinstance(block, PMMMBlock) else KVCache(window)
            for block in self.blocks
        ]

    def step(self, up: Tensor, down: Tensor) -> tuple[Tensor, Tensor]:
        """up, down (B,) codes of time k -> logits_up (B, vocab_up), logits_down (B, vocab_down)."""
        k, base, head = self.time, self.model.gpt_base, self.model.gpt_head
        if k >= self.music.shape[1]:
            raise IndexError(
                f"IncrementalDecoder.step: time {k} is past the music ({self.music.shape[1]} frames)"
            )
        x = torch.stack([self.music_tokens[:, k], base.tok_emb_up(up), base.tok_emb_down(down)], dim=1)
        position = new_position_terms(base, self.music[:, max(0, k - self.window + 1) : k + 1])
        if position is not None:
            x = x + position
        if self.genre_term is not None:
            x = x + self.genre_term
        x = base.drop(x)  # (B, 3, D)
        for block, cache in zip(self.blocks, self.caches, strict=True):
            x = block(x, None, cache)
        x = head.RMS_f(x) if hasattr(head, "RMS_f") else head.ln_f(x)
        self.time += 1
        return head.head_up(x[:, 1]), head.head_down(x[:, 2])
