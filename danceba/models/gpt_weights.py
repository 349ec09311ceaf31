"""Weights of the cross-conditional GPT: initialisation (default and as released) and official checkpoints.

Kept apart from the model classes so that the quirks of the official release live in one place.
"""

from __future__ import annotations

import torch
from torch import nn

from danceba.models.mamba import Mamba
from danceba.models.pre import PhaseRhythmEmbedding


def _normal_init(module: nn.Module) -> None:
    if isinstance(module, nn.Linear | nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def init_weights(model: nn.Module, faithful: bool = False) -> None:
    """Linear/Embedding weights N(0, 0.02), biases 0, LayerNorm (1, 0), except:

    * ``faithful=False``: the modules inside every ``Mamba`` keep Mamba's own initialisation;
    * ``faithful=True``: as released, the Mamba Linears are re-drawn too (``dt_proj.bias`` zeroed) and
      the PRE Linears keep PyTorch's default initialisation (the release's ``LazyLinear`` escapes it).
    """
    owner = Mamba if not faithful else PhaseRhythmEmbedding
    skipped = {id(m) for top in model.modules() if isinstance(top, owner) for m in top.modules()}
    for module in model.modules():
        if id(module) not in skipped:
            _normal_init(module)


def official_state_dict(
    state_dict: dict[str, torch.Tensor], stack: str = "danceba"
) -> dict[str, torch.Tensor]:
    """Map a state dict of the official ``CrossCondGPT2`` (Danceba or Bailando) onto :class:`CrossCondGPT`.

    Drops the ``module.`` prefix of DataParallel checkpoints, the attention-mask buffers (``attn.mask``),
    and for Danceba the unused ``gpt_head.ln_f`` and PRE ``linear1``/``bn1`` (present in the released
    weight); every other key and shape is the same. Load the result with ``strict=True``.
    """
    mapped = {}
    for key, value in state_dict.items():
        key = key.removeprefix("module.")
        if not _official_only(key, stack):
            mapped[key] = value
    return mapped


def _official_only(key: str, stack: str) -> bool:
    """Keys of the official model that have no counterpart here."""
    if key.endswith(".attn.mask"):
        return True
    pre_unused = key.startswith("gpt_base.pos_emb.") and (".linear1." in key or ".bn1." in key)
    return stack == "danceba" and (key.startswith("gpt_head.ln_f.") or pre_unused)
