"""Cross-conditional causal self-attention and the blocks built on it (Bailando's GPT block, Danceba's TGCA).

The GPT reads one sequence of ``3t`` tokens, ``[music(t) | up(t) | down(t)]``. Bailando's
*cross-conditional* mask lets a token at time ``i`` of any stream attend to times ``<= i`` of all three
streams: each of the nine ``t x t`` sub-blocks of the ``3t x 3t`` mask is lower-triangular.

Attention runs through ``F.scaled_dot_product_attention`` with a boolean mask (the fused path: the same
maths as the reference's explicit ``softmax(q k^T / sqrt(d) + mask) v``). Module and parameter names
follow the reference code (``key``/``query``/``value``/``proj``, ``norm1``/``in_proj``/``act_proj``/
``out_proj``, ``mlp.0``/``mlp.2``) so that released checkpoints map onto these modules key for key.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

GateActivation = Literal["silu", "sigmoid"]


class RMSNorm(nn.RMSNorm):
    """``torch.nn.RMSNorm`` (eps 1e-6) that always normalises in float32, as Danceba's RMSNorm does.

    x (..., D) -> (..., D) in x's dtype: ``weight * (x / sqrt(mean(x^2) + eps))``, the normalisation
    computed in float32 and cast back before the weight is applied (also under autocast).
    """

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__(dim, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            normed = F.rms_norm(x.float(), self.normalized_shape, None, self.eps)
        return normed.to(x.dtype) * self.weight


def cross_conditional_mask(t: int, device: torch.device | str | None = None) -> torch.Tensor:
    """The (3t, 3t) boolean attention mask (True = may attend) over ``[music | up | down]``.

    Position ``p`` holds time ``p % t``; query ``p`` may attend key ``q`` iff ``time(q) <= time(p)``,
    i.e. ``tril(ones(t, t)).repeat(3, 3)``.
    """
    if t < 1:
        raise ValueError(f"t: expected a positive number of time steps, got {t}")
    time = torch.arange(3 * t, device=device) % t
    return time[None, :] <= time[:, None]


def feed_forward(n_embd: int, resid_pdrop: float) -> nn.Sequential:
    """The 4x GELU MLP of both stacks: Linear(D, 4D) -> GELU -> Linear(4D, D) -> Dropout."""
    return nn.Sequential(
        nn.Linear(n_embd, 4 * n_embd),
        nn.GELU(),
        nn.Linear(4 * n_embd, n_embd),
        nn.Dropout(resid_pdrop),
    )


class KVCache:
    """Keys and values of one attention layer for the last ``window`` time steps (a ring buffer), for
    decoding one time step (three positions: music, up, down) at a time.

    Storage: key, value (B, H, window, 3, head_dim), allocated at the first :meth:`append`; time ``k``
    (the k-th append) lives in slot ``k % window``. The order of the slots does not matter: the new
    queries attend to all of them.
    """

    def __init__(self, window: int) -> None:
        if window < 1:
            raise ValueError(f"KVCache: window must be >= 1, got {window}")
        self.window = window
        self.time = 0
        self.key: torch.Tensor | None = None
        self.value: torch.Tensor | None = None

    def append(self, key: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store the next time's key, value (B, H, 3, head_dim); return the cached keys and values
        (B, H, 3n, head_dim) of the last n = min(time + 1, window) time steps."""
        if self.key is None or self.value is None:
            b, h, _, d = key.shape
            self.key = key.new_empty(b, h, self.window, 3, d)
            self.value = value.new_empty(b, h, self.window, 3, d)
        slot = self.time % self.window
        self.key[:, :, slot] = key
        self.value[:, :, slot] = value
        self.time += 1
        n = min(self.time, self.window)
        return self.key[:, :, :n].flatten(2, 3), self.value[:, :, :n].flatten(2, 3)


class CrossConditionalSelfAttention(nn.Module):
    """Multi-head self-attention under the cross-conditional mask, with an output projection.

    x (B, 3t, D), mask (3t, 3t) bool -> (B, 3t, D). Dropout ``attn_pdrop`` on the attention weights
    (training only) and ``resid_pdrop`` after ``proj``. Decoding: ``cache`` (a :class:`KVCache`) and x
    (B, 3, D), the three positions of the next time step, which attend to every cached time (all are
    earlier or the same), so no mask.
    """

    def __init__(self, n_embd: int, n_head: int, attn_pdrop: float, resid_pdrop: float) -> None:
        super().__init__()
        if n_embd % n_head != 0:
            raise ValueError(f"n_embd ({n_embd}) must be divisible by n_head ({n_head})")
        self.n_head = n_head
        self.attn_pdrop = attn_pdrop
        self.key = nn.Linear(n_embd, n_embd)
        self.query = nn.Linear(n_embd, n_embd)
        self.value = nn.Linear(n_embd, n_embd)
        self.proj = nn.Linear(n_embd, n_embd)
        self.resid_drop = nn.Dropout(resid_pdrop)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None, cache: KVCache | None = None
    ) -> torch.Tensor:
        q, k, v = (
            rearrange(layer(x), "b n (h d) -> b h n d", h=self.n_head)
            for layer in (self.query, self.key, self.value)
        )
        if cache is not None:
            k, v = cache.append(k, v)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.attn_pdrop if self.training else 0.0
        )  # (B, H, 3t, D/H)
        return self.resid_drop(self.proj(rearrange(y, "b h n d -> b n (h d)")))


class PreNormBlock(nn.Module):
    """A plain pre-norm transformer block: ``x += attn(norm1(x)); x += mlp(norm2(x))``.

    With ``norm="layer"`` it is Bailando's GPT block (LayerNorm); with ``norm="rms"`` it is Danceba's
    TGCA position without the temporal gate (the ``tgca_gate=False`` ablation).
    x (B, 3t, D), mask (3t, 3t) -> (B, 3t, D); or one decoding step with ``cache`` (see
    :class:`CrossConditionalSelfAttention`).
    """

    def __init__(
        self,
        n_embd: int,
        n_head: int,
        attn_pdrop: float,
        resid_pdrop: float,
        norm: Literal["layer", "rms"] = "layer",
    ) -> None:
        super().__init__()
        if norm not in ("layer", "rms"):
            raise ValueError(f"norm: expected 'layer' or 'rms', got {norm!r}")
        make_norm = nn.LayerNorm if norm == "layer" else RMSNorm
        self.ln1 = make_norm(n_embd)
        self.ln2 = make_norm(n_embd)
        self.attn = CrossConditionalSelfAttention(n_embd, n_head, attn_pdrop, resid_pdrop)
        self.mlp = feed_forward(n_embd, resid_pdrop)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None, cache: KVCache | None = None
    ) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), mask, cache)
        return x + self.mlp(self.ln2(x))


class TGCABlock(nn.Module):
    """Danceba's Temporal-Gated Causal Attention block (official ``Block_Base``).

    x (B, 3t, D), mask (3t, 3t) -> (B, 3t, D), or one decoding step with ``cache``::

        h = RMSNorm1(x)
        gate = act(act_proj(h))                  # act = SiLU (paper) or sigmoid (ablation)
        a = attn(SiLU(in_proj(h)))               # attention including its own proj
        x = x + out_proj(a * gate)               # two output projections in series, as released
        x = x + mlp(RMSNorm2(x))
    """

    def __init__(
        self,
        n_embd: int,
        n_head: int,
        attn_pdrop: float,
        resid_pdrop: float,
        gate_activation: GateActivation = "silu",
    ) -> None:
        super().__init__()
        if gate_activation not in ("silu", "sigmoid"):
            raise ValueError(f"gate_activation: expected 'silu' or 'sigmoid', got {gate_activation!r}")
        self.gate_activation = gate_activation
        self.norm1 = RMSNorm(n_embd)
        self.norm2 = RMSNorm(n_embd)
        self.in_proj = nn.Linear(n_embd, n_embd)
        self.act_proj = nn.Linear(n_embd, n_embd)
        self.out_proj = nn.Linear(n_embd, n_embd)
        self.attn = CrossConditionalSelfAttention(n_embd, n_head, attn_pdrop, resid_pdrop)
        self.mlp = feed_forward(n_embd, resid_pdrop)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None, cache: KVCache | None = None
    ) -> torch.Tensor:
        h = self.norm1(x)
        gate_input = self.act_proj(h)
        gate = F.silu(gate_input) if self.gate_activation == "silu" else torch.sigmoid(gate_input)
        attended = self.attn(F.silu(self.in_proj(h)), mask, cache)
        x = x + self.out_proj(attended * gate)
        return x + self.mlp(self.norm2(x))
