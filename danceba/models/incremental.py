"""Incremental (cached) decoding of :class:`~danceba.models.gpt.CrossCondGPT`: one time step at a time.

At time ``k`` the model receives three new positions, one per stream: music frame ``k``, up code ``k``,
down code ``k``. Under the cross-conditional mask each of them attends to times ``<= k`` of all three
streams, and no earlier position attends to them, so a step needs only:

* per attention layer (Bailando blocks, TGCA), the keys and values of the earlier positions: a
  :class:`KVCache` ring buffer holding the last ``window`` time steps (3 positions each). The three
  new queries attend to every cached key without a mask (all cached times are ``<= k``);
* per PMMM layer, the recurrent state of each stream's Mamba (:meth:`Mamba.step`): conv inputs and
  SSM state, which carry every earlier step, not only the window;
* the music embeddings ``cond_emb(music)``, computed once for the whole song.

Position term of the new positions (:func:`new_position_terms`): the rows that the full forward over the
current window ``[max(0, k - window + 1), k]`` gives its *newest* time, one per stream. Bailando: the
learned embedding of slot ``min(k, window - 1)``. Danceba with PRE: the last row of each stream of PRE
over the current music window. Older positions keep the term they received when they were new.

Where this equals the full forward: for causal models (Bailando stack; Danceba with ``pre=False`` and
``pmmm`` ``parallel`` or ``none``) and ``k < window``, :meth:`IncrementalDecoder.step` returns the logits of
the last position of the forward over times ``0..k`` (up to floating-point summation order). It differs
(by design) when PRE is on (PRE is not causal: the forward recomputes every row from the whole window)
and once ``k >= window`` (see ``danceba.generate``). ``pmmm="single"`` scans ``[music | up | down]`` in
sequence order, so a new time step cannot be appended to it: not supported here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from danceba.models.attention import CrossConditionalSelfAttention, PreNormBlock, TGCABlock
from danceba.models.gpt import CrossCondGPT, GPTBase
from danceba.models.mamba import MambaState
from danceba.models.pmmm import PMMMBlock


class KVCache:
    """Keys and values of one attention layer for the last ``window`` time steps (a ring buffer).

    Storage: key, value (B, H, window, 3, head_dim), allocated at the first :meth:`append`; time ``k``
    lives in slot ``k % window``. The order of the slots does not matter: the new queries attend to all.
    """

    def __init__(self, window: int) -> None:
        if window < 1:
            raise ValueError(f"KVCache: window must be >= 1, got {window}")
        self.window = window
        self.key: Tensor | None = None
        self.value: Tensor | None = None

    def append(self, key: Tensor, value: Tensor, time: int) -> tuple[Tensor, Tensor]:
        """Store time ``time``'s key, value (B, H, 3, head_dim); return the cached keys and values
        (B, H, 3n, head_dim) of the last n = min(time + 1, window) time steps."""
        if self.key is None or self.value is None:
            b, h, _, d = key.shape
            self.key = key.new_empty(b, h, self.window, 3, d)
            self.value = value.new_empty(b, h, self.window, 3, d)
        slot = time % self.window
        self.key[:, :, slot] = key
        self.value[:, :, slot] = value
        n = min(time + 1, self.window)
        return self.key[:, :, :n].flatten(2, 3), self.value[:, :, :n].flatten(2, 3)


def attention_step(attn: CrossConditionalSelfAttention, x: Tensor, cache: KVCache, time: int) -> Tensor:
    """The three new positions of time ``time`` through one attention layer: x (B, 3, D) -> (B, 3, D)."""
    q, k, v = (
        rearrange(layer(x), "b s (h d) -> b h s d", h=attn.n_head)
        for layer in (attn.query, attn.key, attn.value)
    )
    keys, values = cache.append(k, v, time)
    y = F.scaled_dot_product_attention(q, keys, values)  # (B, H, 3, D/H); every cached time is <= time
    return attn.resid_drop(attn.proj(rearrange(y, "b h s d -> b s (h d)")))


def attention_block_step(block: nn.Module, x: Tensor, cache: KVCache, time: int) -> Tensor:
    """One step of a :class:`PreNormBlock` or :class:`TGCABlock`: x (B, 3, D) -> (B, 3, D)."""
    if isinstance(block, PreNormBlock):
        x = x + attention_step(block.attn, block.ln1(x), cache, time)
        return x + block.mlp(block.ln2(x))
    if isinstance(block, TGCABlock):
        h = block.norm1(x)
        gate_input = block.act_proj(h)
        gate = F.silu(gate_input) if block.gate_activation == "silu" else torch.sigmoid(gate_input)
        attended = attention_step(block.attn, F.silu(block.in_proj(h)), cache, time)
        x = x + block.out_proj(attended * gate)
        return x + block.mlp(block.norm2(x))
    raise TypeError(f"attention_block_step: unsupported block {type(block).__name__}")


def pmmm_step(block: PMMMBlock, x: Tensor, states: list[MambaState]) -> tuple[Tensor, list[MambaState]]:
    """One step of a parallel PMMM block: x (B, 3, D) (music, up, down) -> (B, 3, D), next states."""
    outputs, next_states = [], []
    for index, state in enumerate(states, start=1):
        s = x[:, index - 1]  # (B, D)
        norm_mamba, norm_mlp = (
            block.get_submodule(f"ln{2 * index - 1}"),
            block.get_submodule(f"ln{2 * index}"),
        )
        y, state = block.get_submodule(f"mamba_{index}").step(norm_mamba(s), state)
        s = s + y
        outputs.append(s + block.get_submodule(f"gate_mlp_{index}")(norm_mlp(s)))
        next_states.append(state)
    return torch.stack(outputs, dim=1), next_states


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
        self.states: list[KVCache | list[MambaState]] = [
            [block.get_submodule(f"mamba_{i}").init_state(batch) for i in (1, 2, 3)]
            if isinstance(block, PMMMBlock)
            else KVCache(window)
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
        for i, (block, state) in enumerate(zip(self.blocks, self.states, strict=True)):
            if isinstance(block, PMMMBlock):
                x, self.states[i] = pmmm_step(block, x, state)
            else:
                x = attention_block_step(block, x, state, k)
        x = head.RMS_f(x) if hasattr(head, "RMS_f") else head.ln_f(x)
        self.time += 1
        return head.head_up(x[:, 1]), head.head_down(x[:, 2])
