"""Activation checkpointing of the PMMM Mamba branches: same loss and gradients, less memory kept."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from danceba.models.gpt import build_gpt
from danceba.models.gpt_config import GPTConfig
from tests.tiny_models import BLOCK, N_MUSIC, TINY_GPT, VOCAB

TINY = dataclasses.replace(TINY_GPT, n_layer_head=2)


def _inputs(batch: int = 3):
    gen = torch.Generator().manual_seed(7)
    up = torch.randint(0, VOCAB, (batch, BLOCK), generator=gen)
    down = torch.randint(0, VOCAB, (batch, BLOCK), generator=gen)
    music = torch.randn(batch, BLOCK, N_MUSIC, generator=gen, dtype=torch.float64)
    targets = (torch.roll(up, -1, dims=1), torch.roll(down, -1, dims=1))
    return up, down, music, targets


def _loss_and_grads(config: GPTConfig) -> tuple[torch.Tensor, dict[str, torch.Tensor], int]:
    """Training-mode loss (dropout on, same seed), gradients, and bytes autograd saves for the backward."""
    torch.manual_seed(0)
    model = build_gpt(config).double().train()
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    torch.manual_seed(1)  # the dropout masks
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model(*_inputs())[2]
    loss.backward()
    return loss.detach(), {n: p.grad for n, p in model.named_parameters()}, sum(saved.values())


@pytest.mark.parametrize("pmmm", ["parallel", "single"])
def test_checkpointing_keeps_loss_and_gradients(pmmm: str) -> None:
    plain = _loss_and_grads(dataclasses.replace(TINY, pmmm=pmmm))
    checkpointed = _loss_and_grads(dataclasses.replace(TINY, pmmm=pmmm, activation_checkpointing=True))
    torch.testing.assert_close(checkpointed[0], plain[0], rtol=0, atol=1e-12)
    assert checkpointed[1].keys() == plain[1].keys()
    for name, grad in plain[1].items():
        assert grad is not None, name
        torch.testing.assert_close(checkpointed[1][name], grad, rtol=1e-10, atol=1e-12, msg=name)
    assert checkpointed[2] < plain[2]  # the Mamba activations are not kept


def test_checkpointing_is_off_in_eval_mode() -> None:
    """Evaluation and generation run the plain forward: same outputs, same (no) graph."""
    torch.manual_seed(0)
    plain = build_gpt(TINY).double().eval()
    torch.manual_seed(0)
    checkpointed = build_gpt(dataclasses.replace(TINY, activation_checkpointing=True)).double().eval()
    up, down, music, _ = _inputs()
    with torch.no_grad():
        expected = plain(up, down, music)[0]
        got = checkpointed(up, down, music)[0]
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert checkpointed.state_dict().keys() == plain.state_dict().keys()
