"""Decoding with bfloat16 weights (danceba.models.low_precision, SamplingConfig.precision)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from danceba.generation.config import SamplingConfig
from danceba.generation.sampler import generate_codes, trim_codes
from danceba.models.gpt import build_gpt
from danceba.models.incremental import IncrementalDecoder
from danceba.models.low_precision import KEPT_IN_FLOAT32, BFloat16Linear, bfloat16_weights
from tests.tiny_models import BLOCK, N_MUSIC, VOCAB
from tests.tiny_models import TINY_GPT as TINY


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return build_gpt(TINY).eval()


@pytest.mark.parametrize("rows", [1, 3, 40])  # one row runs without oneDNN, more with it
def test_bfloat16_linear_is_close_to_float32_and_keeps_the_input_dtype(rows: int) -> None:
    torch.manual_seed(0)
    linear = nn.Linear(96, 48)
    linear.requires_grad_(False)
    x = torch.randn(rows, 96)
    onednn_before = torch.backends.mkldnn.is_available() and torch._C._get_mkldnn_enabled()
    got = BFloat16Linear(linear)(x)
    assert got.dtype == torch.float32 and got.shape == (rows, 48)
    expected = linear(x)
    assert not torch.equal(got, expected)  # it does compute in bfloat16
    torch.testing.assert_close(got, expected, rtol=0, atol=0.05 * float(expected.abs().max()))
    assert (torch.backends.mkldnn.is_available() and torch._C._get_mkldnn_enabled()) == onednn_before


def test_bfloat16_weights_replaces_the_linears_and_leaves_the_original_alone() -> None:
    model = tiny_model()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    copy = bfloat16_weights(model)
    linears = {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    assert linears and all(isinstance(m, nn.Linear) for m in linears.values())  # original untouched
    for name, module in linears.items():
        replaced = copy.get_submodule(name)
        if name.rpartition(".")[2] in KEPT_IN_FLOAT32:
            assert isinstance(replaced, nn.Linear) and replaced.weight is module.weight  # shared, float32
        else:
            assert isinstance(replaced, BFloat16Linear) and replaced.weight.dtype == torch.bfloat16
    assert any(name.endswith("dt_proj") for name in linears) and any(n.endswith("cond_emb") for n in linears)
    # Embeddings, norms, Mamba's A and D: the same tensors, not copies.
    shared = dict(copy.named_parameters())
    assert shared["gpt_base.tok_emb_up.weight"] is model.gpt_base.tok_emb_up.weight
    assert all(torch.equal(p, before[name]) for name, p in model.named_parameters())


def test_bfloat16_decoder_logits_are_close_to_float32() -> None:
    model = tiny_model()
    gen = torch.Generator().manual_seed(1)
    music = torch.randn(2, 2 * BLOCK, N_MUSIC, generator=gen)
    codes = torch.randint(0, VOCAB, (2, 2 * BLOCK), generator=gen)
    with torch.inference_mode():
        decoders = [IncrementalDecoder(m, music, BLOCK - 1) for m in (model, bfloat16_weights(model))]
        for k in range(2 * BLOCK):
            (up32, down32), (up16, down16) = (d.step(codes[:, k], codes[:, k]) for d in decoders)
            for got, expected in ((up16, up32), (down16, down32)):
                assert got.dtype == torch.float32
                torch.testing.assert_close(got, expected, rtol=0, atol=0.05 * float(expected.abs().max()))


def test_generate_codes_in_bfloat16_gives_valid_codes_and_keeps_the_model() -> None:
    model = tiny_model()
    gen = torch.Generator().manual_seed(2)
    music = torch.randn(3, 12, N_MUSIC, generator=gen)
    first = torch.randint(0, VOCAB, (3, 1), generator=gen)
    lengths = [11, 7, 4]
    for decode in ("exact", "cached"):
        sampling = SamplingConfig(decode=decode, precision="bfloat16")
        up, down = generate_codes(model, music, first, first.clone(), lengths, sampling)
        assert bool((up[2, lengths[2] + 1 :] == -1).all())  # past the song: padding
        for (u, d), n in zip(trim_codes(up, down, lengths), lengths, strict=True):
            assert len(u) == len(d) == n + 1
            assert all(bool(((c >= 0) & (c < VOCAB)).all()) for c in (u, d))
    assert all(isinstance(m, nn.Linear) for n, m in model.named_modules() if n.endswith("in_proj"))


def test_sampling_config_refuses_an_unknown_precision() -> None:
    with pytest.raises(ValueError, match=r"SamplingConfig\.precision"):
        SamplingConfig(precision="float16")
