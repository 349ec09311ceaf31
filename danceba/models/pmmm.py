"""Danceba's Parallel Mamba Motion Modeling (PMMM) block (official ``Block_Head``).

Each branch is two pre-RMSNorm residuals over one sequence ``s``::

    s = s + Mamba(RMSNorm(s))
    s = s + GatedMLP(RMSNorm(s))

* ``parallel`` (the paper): three independent branches over the music, up and down thirds of the
  ``[music | up | down]`` sequence. The streams do not interact here (only in the attention blocks),
  and each branch is causal in time.
* ``single`` (the paper's "Danceba-Single" ablation): one branch over the concatenated ``3t`` sequence.
  A Mamba scan over ``[music | up | down]`` is causal in *sequence* order, not in time: the up tokens
  see the whole music window, and the down token at time ``i`` sees the up tokens at times ``> i``,
  including ``up[i + 1]``, which is the up target of time ``i``. That is future information the
  autoregressive sampler never has, a plausible cause of the ablation's poor FID_k (82.5).

``activation_checkpointing=True``: in training (module in train mode, gradients enabled) each branch's
``Mamba(RMSNorm(s))`` runs under ``torch.utils.checkpoint.checkpoint(..., use_reentrant=False)``: autograd
keeps only ``s`` and recomputes the Mamba forward in the backward (same values and gradients; dropout-free,
so no RNG to replay). Evaluation and generation are unaffected.

Names (``ln1..ln6``, ``mamba_1..3``, ``gate_mlp_1..3``) follow the release so its weights load key for key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from danceba.models.attention import RMSNorm

if TYPE_CHECKING:
    from danceba.models.mamba import MambaState

PMMMMode = Literal["parallel", "single"]


class GatedMLP(nn.Module):
    """x (..., D) -> (..., D): ``fc2(y * silu(gate))`` with ``y, gate = fc1(x).chunk(2)``, no biases.

    The release builds it with ``hidden_features=768`` rounded up to a multiple of 128, i.e. 768 = D at
    the paper size; here the hidden width is ``hidden`` (default D) without rounding.
    """

    def __init__(self, n_embd: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = n_embd if hidden is None else hidden
        self.fc1 = nn.Linear(n_embd, 2 * hidden, bias=False)
        self.fc2 = nn.Linear(hidden, n_embd, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, gate = self.fc1(x).chunk(2, dim=-1)
        return self.fc2(y * F.silu(gate))


class PMMMBlock(nn.Module):
    """PMMM: three parallel branches (music, up, down) or one single branch over the whole sequence.

    ``make_mamba`` builds one Mamba layer mapping (B, L, D) -> (B, L, D). ``activation_checkpointing``
    recomputes each ``Mamba(RMSNorm(s))`` in the backward instead of keeping its activations.
    """

    def __init__(
        self,
        n_embd: int,
        make_mamba: Callable[[], nn.Module],
        mode: PMMMMode = "parallel",
        activation_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        if mode not in ("parallel", "single"):
            raise ValueError(f"pmmm: expected 'parallel' or 'single', got {mode!r}")
        self.mode = mode
        self.activation_checkpointing = activation_checkpointing
        self.n_branches = 3 if mode == "parallel" else 1
        for branch in range(1, self.n_branches + 1):  # the release's flat names, e.g. ln3, mamba_2
            self.add_module(f"ln{2 * branch - 1}", RMSNorm(n_embd))
            self.add_module(f"ln{2 * branch}", RMSNorm(n_embd))
            self.add_module(f"mamba_{branch}", make_mamba())
            self.add_module(f"gate_mlp_{branch}", GatedMLP(n_embd))

    def branch(self, index: int, s: torch.Tensor, state: MambaState | None = None) -> torch.Tensor:
        """Run branch ``index`` (1-based) over s (B, L, D) -> (B, L, D); or, with its Mamba's ``state``,
        one decoding step s (B, D) -> (B, D) that advances the state in place."""
        norm_mamba, norm_mlp = self.get_submodule(f"ln{2 * index - 1}"), self.get_submodule(f"ln{2 * index}")
        mamba = self.get_submodule(f"mamba_{index}")
        if state is not None:
            s = s + mamba.step(norm_mamba(s), state)[0]
        elif self.activation_checkpointing and self.training and torch.is_grad_enabled():
            s = s + checkpoint(_mamba_of_norm, norm_mamba, mamba, s, use_reentrant=False)
        else:
            s = s + mamba(norm_mamba(s))
        return s + self.get_submodule(f"gate_mlp_{index}")(norm_mlp(s))

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, cache: list[MambaState] | None = None
    ) -> torch.Tensor:
        """x (B, 3t, D) -> (B, 3t, D). ``mask`` is ignored (same call as the attention blocks). Decoding:
        ``cache`` holds the three branches' Mamba states (:meth:`init_cache`) and x (B, 3, D) is the next
        time step of music, up and down; the states advance in place."""
        if cache is not None:
            if self.mode != "parallel":
                raise ValueError("PMMMBlock: step-by-step decoding needs pmmm='parallel'")
            return torch.stack([self.branch(k + 1, x[:, k], state) for k, state in enumerate(cache)], dim=1)
        if self.mode == "single":
            return self.branch(1, x)
        t = x.shape[1] // 3
        streams = x.split(t, dim=1)  # music, up, down
        return torch.cat([self.branch(k + 1, s) for k, s in enumerate(streams)], dim=1)

    def init_cache(self, batch: int) -> list[MambaState]:
        """Zero Mamba states of the branches, for decoding ``batch`` songs from time 0."""
        return [self.get_submodule(f"mamba_{k}").init_state(batch) for k in range(1, self.n_branches + 1)]


def _mamba_of_norm(norm: nn.Module, mamba: nn.Module, s: torch.Tensor) -> torch.Tensor:
    """``mamba(norm(s))``: the part of a branch that activation checkpointing recomputes."""
    return mamba(norm(s))
