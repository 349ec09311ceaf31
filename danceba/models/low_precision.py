"""Decoding with bfloat16 matrix weights: a copy of a model whose Linear layers compute in bfloat16.

At batch 1 a decoding step multiplies one to three rows by every weight matrix of the GPT: the time goes
into reading the weights (1 GB per step in float32 at the paper size), so halving their bytes halves
most of the step. :func:`bfloat16_weights` returns a copy of the model in which every ``nn.Linear``
(except those in :data:`KEPT_IN_FLOAT32`) is a :class:`BFloat16Linear`; everything else (embeddings,
norms, attention scores, the Mamba conv, scan and state, PRE's STFT, the logits' dtype) stays float32.
The copy shares the original's other parameters and buffers (no copy of them is made), so it is for
inference only.

This changes the numbers: matrix products see inputs and weights rounded to 8 significant bits (with
float32 accumulation), so a greedy decoder may pick another code where two logits are close, and every
later step then differs. ``bench/bench_generate.py --precisions`` measures the speed and
``bench/bench_decode_agreement.py`` how often the trained model's codes stay the same.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Linear layers whose weight is read directly rather than called: Mamba's dt_proj (its weight is applied
# without its bias) and the GPT's music embedding (its weight gives the device and dtype of the music).
KEPT_IN_FLOAT32 = ("dt_proj", "cond_emb")
# Up to this many rows, a bfloat16 matrix product runs faster without oneDNN (torch 2.13, 2 AVX-512 cores,
# 189 M parameters read cold: 19.6 ms against 31.5 ms with oneDNN for one row; 42 against 35 for three).
ROWS_WITHOUT_ONEDNN = 1


@contextmanager
def _onednn_disabled() -> Iterator[None]:
    """oneDNN off for the block (``torch.backends.mkldnn.flags`` would also set its TF32 switch, which
    warns on every CPU-only build)."""
    enabled = torch.backends.mkldnn.set_flags(False, None, None, None)[0]
    try:
        yield
    finally:
        torch.backends.mkldnn.set_flags(enabled, None, None, None)


class BFloat16Linear(nn.Module):
    """``nn.Linear`` with bfloat16 weight and bias: x (..., in) -> (..., out) in x's dtype."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight = nn.Parameter(linear.weight.detach().to(torch.bfloat16), requires_grad=False)
        bias = None if linear.bias is None else linear.bias.detach().to(torch.bfloat16)
        self.bias = None if bias is None else nn.Parameter(bias, requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:
        few_rows = x.numel() // self.in_features <= ROWS_WITHOUT_ONEDNN and x.device.type == "cpu"
        with _onednn_disabled() if few_rows else contextlib.nullcontext():
            return F.linear(x.to(torch.bfloat16), self.weight, self.bias).to(x.dtype)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
        )


def bfloat16_weights(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (for inference) with its Linear layers in bfloat16 (see the module docstring)."""
    shared = {id(t): t for t in (*model.parameters(), *model.buffers())}
    clone = copy.deepcopy(model, memo=shared)
    for name, module in list(clone.named_modules()):
        if not isinstance(module, nn.Linear) or name.rpartition(".")[2] in KEPT_IN_FLOAT32:
            continue
        parent_name, _, attribute = name.rpartition(".")
        setattr(clone.get_submodule(parent_name), attribute, BFloat16Linear(module))
    return clone.eval()
