"""Cross-conditional GPT (Bailando and Danceba stacks): mask, causality, PRE, ablation flags, init, sizes."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from danceba.models.attention import (
    CrossConditionalSelfAttention,
    PreNormBlock,
    RMSNorm,
    TGCABlock,
    cross_conditional_mask,
)
from danceba.models.gpt import build_gpt, parameter_counts
from danceba.models.gpt_config import GPTConfig
from danceba.models.gpt_weights import official_state_dict
from danceba.models.mamba import Mamba
from danceba.models.pmmm import PMMMBlock
from tests.tiny_models import BLOCK, N_MUSIC, VOCAB
from tests.tiny_models import TINY_GPT as TINY


def tiny(**changes) -> GPTConfig:
    return dataclasses.replace(TINY, **changes)


def make_model(config: GPTConfig, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_gpt(config).double().eval()


def make_inputs(batch: int = 2, t: int = BLOCK, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    up = torch.randint(0, VOCAB, (batch, t), generator=gen)
    down = torch.randint(0, VOCAB, (batch, t), generator=gen)
    music = torch.randn(batch, t, N_MUSIC, generator=gen, dtype=torch.float64)
    return up, down, music


def perturbed(up, down, music, stream: str, times: slice):
    up, down, music = up.clone(), down.clone(), music.clone()
    if stream == "music":
        music[:, times] += 1.0
    elif stream == "up":
        up[:, times] = (up[:, times] + 1) % VOCAB
    else:
        down[:, times] = (down[:, times] + 1) % VOCAB
    return up, down, music


# ---------------------------------------------------------------- mask and attention


def test_mask_is_a_3x3_grid_of_lower_triangles():
    for t in (1, 3, 8):
        expected = torch.tril(torch.ones(t, t, dtype=torch.bool)).repeat(3, 3)
        assert torch.equal(cross_conditional_mask(t), expected)


def test_fused_attention_equals_explicit_masked_softmax():
    torch.manual_seed(0)
    attn = CrossConditionalSelfAttention(16, 4, attn_pdrop=0.1, resid_pdrop=0.1).eval()
    x, t = torch.randn(2, 15, 16), 5
    q, k, v = (layer(x).view(2, 15, 4, 4).transpose(1, 2) for layer in (attn.query, attn.key, attn.value))
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(4)
    scores = scores.masked_fill(torch.tril(torch.ones(t, t)).repeat(3, 3) == 0, float("-inf"))
    expected = attn.proj((F.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(2, 15, 16))
    torch.testing.assert_close(attn(x, cross_conditional_mask(t)), expected, rtol=1e-5, atol=1e-6)


def test_rms_norm_matches_the_official_float32_formula():
    norm = RMSNorm(8)
    with torch.no_grad():
        norm.weight.copy_(torch.linspace(0.5, 2.0, 8))
    x = torch.randn(3, 8).to(torch.bfloat16)
    xf = x.float()
    expected = (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-6)).to(torch.bfloat16) * norm.weight
    torch.testing.assert_close(norm(x), expected)
    assert norm.eps == 1e-6


# ---------------------------------------------------------------- causality


CAUSAL_CONFIGS = {
    "bailando": tiny(stack="bailando"),
    "danceba_no_pre": tiny(pre=False),
    "danceba_no_pre_no_gate_no_pmmm": tiny(pre=False, tgca_gate=False, pmmm="none"),
}


@pytest.mark.parametrize("name", list(CAUSAL_CONFIGS))
def test_future_inputs_never_change_past_logits_and_present_inputs_do(name):
    model = make_model(CAUSAL_CONFIGS[name])
    up, down, music = make_inputs()
    with torch.no_grad():
        base_up, base_down, _ = model(up, down, music)
        for i in (0, 3, BLOCK - 2):
            for stream in ("music", "up", "down"):
                new_up, new_down, _ = model(*perturbed(up, down, music, stream, slice(i + 1, None)))
                torch.testing.assert_close(new_up[:, : i + 1], base_up[:, : i + 1], rtol=0, atol=1e-10)
                torch.testing.assert_close(new_down[:, : i + 1], base_down[:, : i + 1], rtol=0, atol=1e-10)
                now_up, now_down, _ = model(*perturbed(up, down, music, stream, slice(i, i + 1)))
                assert (now_up[:, i] - base_up[:, i]).abs().max() > 1e-6, (stream, i)
                assert (now_down[:, i] - base_down[:, i]).abs().max() > 1e-6, (stream, i)


def test_official_pre_makes_early_logits_depend_on_later_music():
    """By design of the official PRE (STFT over the flattened window, centre crop) the position term of
    time 0 is computed from samples of later music frames: with PRE the model is not causal in music.
    (Tiny config: 13 phase frames, rows 2..9 kept, row 0 centred on sample 16 = music frame 1. Paper
    size: 50 frames, rows 10..38 kept, row 0 centred on sample 2560 = music frame 5.)"""
    model = make_model(tiny(pre=True))
    with torch.no_grad():
        model.gpt_base.position_scale.fill_(1.0)  # 1e-6 at init: makes the effect large enough to see
    up, down, music = make_inputs()
    with torch.no_grad():
        base_up, base_down, _ = model(up, down, music)
        new_up, new_down, _ = model(*perturbed(up, down, music, "music", slice(1, None)))
        assert (new_up[:, 0] - base_up[:, 0]).abs().max() > 1e-6
        assert (new_down[:, 0] - base_down[:, 0]).abs().max() > 1e-6
        # The token streams stay causal: future up/down tokens do not reach past logits.
        new_up, _, _ = model(*perturbed(up, down, music, "up", slice(BLOCK - 1, None)))
        torch.testing.assert_close(new_up[:, :-1], base_up[:, :-1], rtol=0, atol=1e-10)


def test_single_mamba_branch_leaks_future_up_tokens_into_down_logits():
    """pmmm='single' scans [music | up | down] in sequence order: down at time i sees up at times > i."""
    model = make_model(tiny(pre=False, pmmm="single"))
    up, down, music = make_inputs()
    with torch.no_grad():
        _, base_down, _ = model(up, down, music)
        _, new_down, _ = model(*perturbed(up, down, music, "up", slice(BLOCK - 1, None)))
    assert (new_down[:, 0] - base_down[:, 0]).abs().max() > 1e-6


# ---------------------------------------------------------------- shapes


@pytest.mark.parametrize("stack", ["bailando", "danceba"])
@pytest.mark.parametrize("t", [1, 3, BLOCK])
def test_shapes_for_short_and_full_windows(stack, t):
    model = make_model(tiny(stack=stack, pre_mode="per_channel" if t == 1 else "official"))
    up, down, music = make_inputs(t=t)
    logits_up, logits_down, loss = model(up, down, music, targets=(up, down))
    assert logits_up.shape == (2, t, VOCAB) and logits_down.shape == (2, t, VOCAB)
    assert loss.shape == () and torch.isfinite(loss)
    assert model(up, down, music)[2] is None


def test_too_long_and_mismatched_inputs_raise():
    model = make_model(tiny())
    up, down, music = make_inputs(t=BLOCK + 1)
    with pytest.raises(ValueError, match="block_size"):
        model(up, down, music)
    up, down, music = make_inputs(t=4)
    with pytest.raises(ValueError, match="music"):
        model(up, down, music[:, :3])


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="stack"):
        tiny(stack="gpt2")
    with pytest.raises(ValueError, match="divisible"):
        tiny(n_head=3)
    with pytest.raises(ValueError, match="pre_hop_length"):
        tiny(pre_hop_length=64)
    with pytest.raises(ValueError, match="n_layer_base"):
        tiny(n_layer_base=0)


# ---------------------------------------------------------------- ablation flags


def _names(model) -> list[str]:
    return [name for name, _ in model.named_parameters()]


def test_pre_false_has_no_phase_embedding_parameters():
    with_pre, without = build_gpt(tiny(pre=True)), build_gpt(tiny(pre=False))
    assert any(".pos_emb." in n for n in _names(with_pre)) and "gpt_base.position_scale" in _names(with_pre)
    assert not any("pos_emb" in n or "position_scale" in n for n in _names(without))
    assert with_pre.gpt_base.position_scale.item() == pytest.approx(1e-6)


def test_tgca_gate_false_uses_plain_rms_blocks_without_gate():
    gated, plain = build_gpt(tiny()), build_gpt(tiny(tgca_gate=False))
    assert sum(n.endswith("act_proj.weight") for n in _names(gated)) == 2  # 1 base + 1 final TGCA
    assert not any("act_proj" in n or ("out_proj" in n and "mamba" not in n) for n in _names(plain))
    assert not any(isinstance(m, TGCABlock) for m in plain.modules())
    assert isinstance(plain.gpt_head.block_base, PreNormBlock)
    assert isinstance(plain.gpt_head.block_base.ln1, RMSNorm)


def test_gate_activation_changes_outputs_with_the_same_weights():
    silu = make_model(tiny(pre=False, gate_activation="silu"))
    sigmoid = make_model(tiny(pre=False, gate_activation="sigmoid"), seed=5)
    sigmoid.load_state_dict(silu.state_dict())
    inputs = make_inputs()
    with torch.no_grad():
        assert (silu(*inputs)[0] - sigmoid(*inputs)[0]).abs().max() > 1e-4


@pytest.mark.parametrize(("mode", "mambas"), [("parallel", 3), ("single", 1), ("none", 0)])
def test_pmmm_mode_sets_the_number_of_mamba_branches(mode, mambas):
    model = build_gpt(tiny(pmmm=mode, n_layer_head=2))
    for block in model.gpt_head.blocks:
        assert sum(isinstance(m, Mamba) for m in block.modules()) == mambas
        assert isinstance(block, PMMMBlock if mambas else TGCABlock)


@pytest.mark.parametrize("stack", ["bailando", "danceba"])
def test_layer_counts_follow_the_config(stack):
    model = build_gpt(tiny(stack=stack, n_layer_base=2, n_layer_head=3))
    assert len(model.gpt_base.blocks) == 2 and len(model.gpt_head.blocks) == 3
    assert hasattr(model.gpt_head, "block_base") == (stack == "danceba")


def test_faithful_init_zeroes_dt_bias_and_keeps_default_pre_init():
    faithful, default = build_gpt(tiny(faithful=True)), build_gpt(tiny(faithful=False))
    for model, zeroed in ((faithful, True), (default, False)):
        for module in model.modules():
            if isinstance(module, Mamba):
                bias = module.dt_proj.bias
                assert bool((bias == 0).all()) == zeroed
                dt = F.softplus(bias)
                assert zeroed or bool(((dt > 0.9e-4) & (dt < 0.11)).all())  # Mamba's dt in [1e-3, 0.1]
                assert (module.in_proj.weight.std().item() < 0.03) == zeroed
    # PRE Linears: PyTorch default (std ~ 1/sqrt(3 * 9) ~ 0.19) when faithful, N(0, 0.02) otherwise.
    assert faithful.gpt_base.pos_emb.pos_emb_1.linear2.weight.std() > 0.1
    assert default.gpt_base.pos_emb.pos_emb_1.linear2.weight.std() < 0.03


def test_faithful_pre_crop_equals_default_at_block_size_and_misaligns_below():
    default = make_model(tiny(faithful=False))
    faithful = make_model(tiny(faithful=True))
    faithful.load_state_dict(default.state_dict())
    for t, same in ((BLOCK, True), (4, False)):
        music = make_inputs(t=t)[2]
        with torch.no_grad():
            a, b = default.gpt_base.pos_emb(music), faithful.gpt_base.pos_emb(music)
        assert a.shape == b.shape == (2, 3 * t, 32)
        assert torch.allclose(a, b) == same


# ---------------------------------------------------------------- training and sizes


@pytest.mark.parametrize("stack", ["bailando", "danceba"])
def test_loss_drops_when_memorising_a_fixed_batch(stack):
    torch.manual_seed(0)
    model = build_gpt(tiny(stack=stack)).train()
    up, down, music = (x.float() if x.is_floating_point() else x for x in make_inputs(batch=4))
    targets = (torch.roll(up, -1, dims=1), torch.roll(down, -1, dims=1))
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = model(up, down, music, targets)[2]
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(2 * math.log(VOCAB), rel=0.1)
    assert losses[-1] < 0.3 * losses[0]


def test_paper_size_parameter_counts():
    danceba = parameter_counts(GPTConfig(stack="danceba"))
    bailando = parameter_counts(GPTConfig(stack="bailando"))
    # Hand counts: TGCA block 8,858,112; Mamba(768, 128, 4, 4) 8,573,952; PMMM block 31,034,880.
    assert danceba["gpt_base.blocks"] == 6 * 8_858_112
    assert danceba["gpt_head.blocks"] == 6 * 31_034_880
    assert danceba["gpt_base.pos_emb"] == 3 * (257 * 768 + 768 + 2 * 768)
    assert danceba["gpt_base"] == 54_871_297 and danceba["gpt_head"] == 195_854_592
    assert danceba["total"] == 250_725_889  # the release also holds an unused LayerNorm (1,536)
    assert bailando["total"] == 87_032_832


def test_official_state_dict_keys_load_strictly():
    """Released checkpoints carry DataParallel prefixes, mask buffers and unused modules; the rest matches."""
    model = build_gpt(tiny())
    official = {f"module.{k}": v.clone() for k, v in model.state_dict().items()}
    official["module.gpt_base.blocks.0.attn.mask"] = torch.ones(1, 1, BLOCK, BLOCK)
    official["module.gpt_head.ln_f.weight"] = torch.ones(32)
    official["module.gpt_base.pos_emb.pos_emb_2.linear1.weight"] = torch.ones(32, 9)
    official["module.gpt_base.pos_emb.pos_emb_2.bn1.running_mean"] = torch.zeros(32)
    with torch.no_grad():
        official["module.gpt_head.head_up.weight"] += 1.0
    build_gpt(tiny()).load_state_dict(official_state_dict(official), strict=True)
    model.load_state_dict(official_state_dict(official), strict=True)
    assert torch.equal(model.gpt_head.head_up.weight, official["module.gpt_head.head_up.weight"])
