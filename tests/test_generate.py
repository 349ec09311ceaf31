"""Code generation: exact (official) vs cached decoding, sampling, batching of songs of different lengths."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from danceba.generation.config import SamplingConfig
from danceba.generation.sampler import (
    PAD_CODE,
    context_window,
    generate_codes,
    penalise_repeat,
    select_codes,
    trim_codes,
)
from danceba.models.gpt import build_gpt
from danceba.models.gpt_config import GPTConfig
from danceba.models.incremental import IncrementalDecoder, new_position_terms
from tests.tiny_models import BLOCK, N_MUSIC, VOCAB
from tests.tiny_models import TINY_GPT as TINY

WINDOW = BLOCK - 1
CAUSAL = {
    "bailando": dataclasses.replace(TINY, stack="bailando"),
    "danceba_no_pre": dataclasses.replace(TINY, pre=False),
    "danceba_no_pre_no_gate_no_pmmm": dataclasses.replace(TINY, pre=False, tgca_gate=False, pmmm="none"),
}
EXACT, CACHED = SamplingConfig(decode="exact"), SamplingConfig(decode="cached")


def make_model(config: GPTConfig, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_gpt(config).double().eval()
    if config.stack == "bailando":  # zeros at init: give the positions something to say
        with torch.no_grad():
            model.gpt_base.pos_emb.normal_(0.0, 0.5)
    elif config.pre:
        with torch.no_grad():
            model.gpt_base.position_scale.fill_(1.0)  # 1e-6 at init would hide PRE
    return model


def make_song(batch: int = 2, length: int = WINDOW, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    music = torch.randn(batch, length, N_MUSIC, generator=gen, dtype=torch.float64)
    first_up = torch.randint(0, VOCAB, (batch, 1), generator=gen)
    first_down = torch.randint(0, VOCAB, (batch, 1), generator=gen)
    return music, first_up, first_down


def official_sample(model, up, down, cond, block_size):
    """The released loop as the facts give it (shift=None): block_size - 1 context, top-1 of softmax."""
    context = block_size - 1
    for k in range(cond.size(1)):
        x_up = up if up.size(1) <= context else up[:, -context:]
        x_down = down if down.size(1) <= context else down[:, -context:]
        cond_input = cond[:, : k + 1] if k < context else cond[:, k - context + 1 : k + 1]
        logits_up, logits_down, _ = model(x_up, x_down, cond_input)
        _, ix_up = torch.topk(F.softmax(logits_up[:, -1], dim=-1), k=1, dim=-1)
        _, ix_down = torch.topk(F.softmax(logits_down[:, -1], dim=-1), k=1, dim=-1)
        up, down = torch.cat((up, ix_up), dim=1), torch.cat((down, ix_down), dim=1)
    return up, down


def forced_logits(model, up, down, music, decode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-step logits (B, L, V) for given codes: the official window forward, or the cached decoder."""
    steps, outputs = music.shape[1], []
    with torch.inference_mode():
        decoder = IncrementalDecoder(model, music, WINDOW)
        for k in range(steps):
            if decode == "cached":
                outputs.append(decoder.step(up[:, k], down[:, k]))
            else:
                s = max(0, k - WINDOW + 1)
                lu, ld, _ = model(up[:, s : k + 1], down[:, s : k + 1], music[:, s : k + 1])
                outputs.append((lu[:, -1], ld[:, -1]))
    return torch.stack([o[0] for o in outputs], 1), torch.stack([o[1] for o in outputs], 1)


def forced_inputs(length: int, seed: int = 3):
    music, _, _ = make_song(length=length, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    return (
        torch.randint(0, VOCAB, (2, length), generator=gen),
        torch.randint(0, VOCAB, (2, length), generator=gen),
        music,
    )


# ---------------------------------------------------------------- exact mode = the official loop


@pytest.mark.parametrize("stack", ["bailando", "danceba"])
def test_exact_mode_is_the_official_loop_beyond_the_window(stack):
    model = make_model(dataclasses.replace(TINY, stack=stack))
    music, first_up, first_down = make_song(length=3 * BLOCK)
    up, down = generate_codes(model, music, first_up, first_down, sampling=EXACT)
    with torch.no_grad():
        ref_up, ref_down = official_sample(model, first_up, first_down, music, BLOCK)
    assert context_window(model) == WINDOW
    assert torch.equal(up, ref_up) and torch.equal(down, ref_down)
    assert up.shape == down.shape == (2, 3 * BLOCK + 1) and up.dtype == torch.long
    assert torch.equal(up[:, :1], first_up) and torch.equal(down[:, :1], first_down)


# ---------------------------------------------------------------- cached vs exact


@pytest.mark.parametrize("name", list(CAUSAL))
def test_cached_equals_exact_inside_the_window_for_causal_models(name):
    model = make_model(CAUSAL[name])
    music, first_up, first_down = make_song(length=WINDOW)
    exact = generate_codes(model, music, first_up, first_down, sampling=EXACT)
    cached = generate_codes(model, music, first_up, first_down, sampling=CACHED)
    assert torch.equal(exact[0], cached[0]) and torch.equal(exact[1], cached[1])
    # the logits themselves, step by step, for the same (forced) codes
    up, down, music = forced_inputs(WINDOW)
    for a, b in zip(
        forced_logits(model, up, down, music, "exact"),
        forced_logits(model, up, down, music, "cached"),
        strict=True,
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", ["bailando", "danceba_no_pre"])
def test_cached_differs_from_exact_only_after_the_window_fills(name):
    """Beyond the window exact recomputes a window-relative forward; cached keeps keys computed earlier
    (and Mamba states from time 0): the first `window` steps agree, later ones do not (documented)."""
    model = make_model(CAUSAL[name])
    up, down, music = forced_inputs(2 * BLOCK)
    exact, cached = (
        forced_logits(model, up, down, music, "exact"),
        forced_logits(model, up, down, music, "cached"),
    )
    for a, b in zip(exact, cached, strict=True):
        torch.testing.assert_close(a[:, :WINDOW], b[:, :WINDOW], rtol=0, atol=1e-10)
        assert (a[:, WINDOW:] - b[:, WINDOW:]).abs().amax(dim=(0, 2)).min() > 1e-8  # every later step differs
    codes = generate_codes(model, *make_song(length=3 * BLOCK), sampling=CACHED)
    assert all(bool(((c >= 0) & (c < VOCAB)).all()) for c in codes)


def test_cached_pre_uses_the_newest_rows_of_the_window_pre():
    """With PRE (not causal) cached equals exact at step 0 only; the new positions get exactly the PRE
    rows the window forward gives its newest time."""
    model = make_model(dataclasses.replace(TINY, pre=True))
    up, down, music = forced_inputs(WINDOW)
    exact, cached = (
        forced_logits(model, up, down, music, "exact"),
        forced_logits(model, up, down, music, "cached"),
    )
    for a, b in zip(exact, cached, strict=True):
        torch.testing.assert_close(a[:, 0], b[:, 0], rtol=0, atol=1e-10)
        assert (a[:, 1:] - b[:, 1:]).abs().max() > 1e-6
    with torch.no_grad():
        window = music[:, 2:6]
        full = model.gpt_base.positional(window)  # (B, 12, D)
        torch.testing.assert_close(new_position_terms(model.gpt_base, window), full[:, [3, 7, 11]])


@pytest.mark.parametrize("faithful", [False, True])
def test_pre_rows_equal_the_rows_of_the_whole_term(faithful: bool):
    """``positional(music, rows)`` embeds only the rows asked for: the same numbers as the whole (B, 3t, D)
    term, also in faithful mode, where a short window's rows come from the crop of the three streams."""
    model = make_model(dataclasses.replace(TINY, pre=True, faithful=faithful))
    music = forced_inputs(BLOCK)[2]
    with torch.no_grad():
        for t in (1, 3, BLOCK):
            full = model.gpt_base.positional(music[:, :t])
            rows = [0, t - 1, t, 2 * t - 1, 3 * t - 1]
            got = model.gpt_base.positional(music[:, :t], rows=rows)
            torch.testing.assert_close(got, full[:, rows], rtol=1e-12, atol=1e-12)


def test_single_branch_pmmm_refuses_cached_decoding():
    model = make_model(dataclasses.replace(TINY, pre=False, pmmm="single"))
    with pytest.raises(ValueError, match="exact"):
        generate_codes(model, *make_song(), sampling=CACHED)
    assert generate_codes(model, *make_song(), sampling=EXACT)[0].shape == (2, WINDOW + 1)


# ---------------------------------------------------------------- greedy and sampling


@pytest.mark.parametrize("decode", ["exact", "cached"])
def test_greedy_is_deterministic_and_top_k_1_sampling_equals_greedy(decode):
    model = make_model(CAUSAL["danceba_no_pre"])
    song = make_song(length=2 * BLOCK)
    greedy = SamplingConfig(decode=decode)
    first, second = (
        generate_codes(model, *song, sampling=greedy),
        generate_codes(model, *song, sampling=greedy),
    )
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    top1 = generate_codes(
        model, *song, sampling=SamplingConfig(mode="sample", top_k=1, temperature=3.0, decode=decode)
    )
    assert torch.equal(first[0], top1[0]) and torch.equal(first[1], top1[1])


def test_seeded_sampling_is_reproducible_and_differs_across_seeds():
    model = make_model(CAUSAL["bailando"])
    song = make_song(length=3 * BLOCK)

    def sample(seed: int):
        return generate_codes(
            model, *song, sampling=SamplingConfig(mode="sample", temperature=5.0, seed=seed)
        )

    a, b, c = sample(7), sample(7), sample(8)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0]) and not torch.equal(a[1], c[1])


def test_top_k_restricts_draws_to_the_k_largest_logits():
    logits = torch.tensor([[0.0, 5.0, 4.0, -1.0, 4.5]]).repeat(400, 1)
    gen = torch.Generator().manual_seed(0)
    draws = select_codes(logits, SamplingConfig(mode="sample", top_k=2, temperature=10.0), gen)
    assert set(draws.tolist()) == {1, 4}
    assert select_codes(logits[:1], SamplingConfig()).tolist() == [1]


def test_repeat_penalty_lowers_only_the_previous_codes_logit():
    logits = torch.tensor([[0.0, 5.0, 4.0], [1.0, 2.0, 3.0]])
    previous = torch.tensor([1, 0])
    penalised = penalise_repeat(logits, previous, SamplingConfig(repeat_penalty=2.0))
    assert penalised.tolist() == [[0.0, 3.0, 4.0], [-1.0, 2.0, 3.0]]
    assert logits.tolist() == [[0.0, 5.0, 4.0], [1.0, 2.0, 3.0]]  # the caller's logits are kept
    assert penalise_repeat(logits, previous, SamplingConfig()) is logits
    assert select_codes(penalised, SamplingConfig()).tolist() == [2, 2]


@pytest.mark.parametrize("decode", ["exact", "cached"])
def test_a_large_repeat_penalty_never_repeats_and_zero_is_the_reference(decode):
    model = make_model(CAUSAL["danceba_no_pre"])
    song = make_song(length=2 * BLOCK)
    reference = generate_codes(model, *song, sampling=SamplingConfig(decode=decode))
    same = generate_codes(model, *song, sampling=SamplingConfig(decode=decode, repeat_penalty=0.0))
    assert torch.equal(reference[0], same[0]) and torch.equal(reference[1], same[1])
    assert any(bool((codes[:, 1:] == codes[:, :-1]).any()) for codes in reference)  # the test means something
    up, down = generate_codes(model, *song, sampling=SamplingConfig(decode=decode, repeat_penalty=1e6))
    for codes in (up, down):
        assert not bool((codes[:, 1:] == codes[:, :-1]).any())


def test_the_generate_stage_passes_its_repeat_penalty_to_the_sampler():
    from danceba.generation.config import GenerateConfig

    assert GenerateConfig(repeat_penalty=1.5).sampling().repeat_penalty == 1.5
    assert GenerateConfig().sampling() == SamplingConfig()  # the dataclass default is the reference sampler


@pytest.mark.parametrize("bad", [-0.5, float("inf"), float("nan"), True])
def test_repeat_penalty_must_be_a_finite_number_at_least_zero(bad):
    with pytest.raises(ValueError, match="repeat_penalty"):
        SamplingConfig(repeat_penalty=bad)


# ---------------------------------------------------------------- batching


@pytest.mark.parametrize("decode", ["exact", "cached"])
def test_batched_songs_of_different_lengths_equal_each_song_alone(decode):
    model = make_model(dataclasses.replace(TINY, pre=True))
    music, first_up, first_down = make_song(batch=3, length=2 * BLOCK)
    lengths = [5, 2 * BLOCK, 11]
    for i, n in enumerate(lengths):
        music[i, n:] = 1e3 * (i + 1)  # padding: must not reach the valid codes
    sampling = SamplingConfig(decode=decode)
    up, down = generate_codes(model, music, first_up, first_down, lengths=lengths, sampling=sampling)
    assert up.shape == (3, 2 * BLOCK + 1)
    for i, (song_up, song_down) in enumerate(trim_codes(up, down, lengths)):
        n = lengths[i]
        alone = generate_codes(
            model, music[i : i + 1, :n], first_up[i : i + 1], first_down[i : i + 1], sampling=sampling
        )
        assert song_up.shape == (n + 1,)
        assert torch.equal(song_up, alone[0][0]) and torch.equal(song_down, alone[1][0])
        assert bool((up[i, n + 1 :] == PAD_CODE).all()) and bool((down[i, n + 1 :] == PAD_CODE).all())


# ---------------------------------------------------------------- inputs


def test_bad_inputs_and_configs_raise():
    model = make_model(TINY)
    music, first_up, first_down = make_song()
    with pytest.raises(ValueError, match="music"):
        generate_codes(model, music[..., :5], first_up, first_down)
    with pytest.raises(ValueError, match="first_up"):
        generate_codes(model, music, first_up[:, 0], first_down)
    with pytest.raises(ValueError, match="first_down"):
        generate_codes(model, music, first_up, first_down + VOCAB)
    with pytest.raises(ValueError, match="lengths"):
        generate_codes(model, music, first_up, first_down, lengths=[1, WINDOW + 1])
    with pytest.raises(ValueError, match="temperature"):
        SamplingConfig(temperature=0.0)
    with pytest.raises(ValueError, match="top_k"):
        SamplingConfig(top_k=0)
    with pytest.raises(ValueError, match="decode"):
        SamplingConfig(decode="fast")


def test_generation_restores_the_training_flag_and_returns_ordinary_tensors():
    model = make_model(CAUSAL["danceba_no_pre"]).train()
    up, _ = generate_codes(model, *make_song(), sampling=CACHED)
    assert model.training and not up.is_inference()
    empty = generate_codes(model, *make_song(), lengths=[0, 0])
    assert empty[0][:, 0].tolist() == make_song()[1][:, 0].tolist() and bool(
        (empty[0][:, 1:] == PAD_CODE).all()
    )


# ---------------------------------------------------------------- GPU


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ["bailando", "danceba_no_pre"])
def test_cached_equals_exact_on_gpu(name):
    """On CUDA (float32; Mamba's full forward may use the mamba_ssm kernels, its step is pure PyTorch)."""
    model = make_model(CAUSAL[name]).float().cuda()
    music, first_up, first_down = make_song(length=WINDOW)
    exact = generate_codes(model, music.float().cuda(), first_up, first_down, sampling=EXACT)
    cached = generate_codes(model, music.float().cuda(), first_up, first_down, sampling=CACHED)
    assert exact[0].is_cuda and cached[0].is_cuda
    assert torch.equal(exact[0], cached[0]) and torch.equal(exact[1], cached[1])
    sampled = generate_codes(
        model, music, first_up, first_down, sampling=SamplingConfig(mode="sample", decode="cached")
    )
    assert sampled[0].is_cuda and bool(((sampled[0] >= 0) & (sampled[0] < VOCAB)).all())
