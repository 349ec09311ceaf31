"""Genre conditioning of the GPT: labels, the model term, exact and cached decoding, training windows."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from danceba.data.windows import TokenWindows
from danceba.generation.config import SamplingConfig
from danceba.generation.sampler import generate_codes, null_music
from danceba.genres import ANY_GENRE, GENRE_CODES, N_GENRE_LABELS, genre_label, sequence_genre
from danceba.models.gpt import build_gpt
from danceba.trainers.gpt import batch_genre, drop_genre, gpt_loss, sham_music_windows
from tests.tiny_models import BLOCK, N_MUSIC, TINY_GPT, VOCAB

CONDITIONED = dataclasses.replace(TINY_GPT, genre_conditioning=True, pre=False)  # causal: cached = exact


def conditioned_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_gpt(CONDITIONED).double().eval()
    with torch.no_grad():
        model.gpt_base.genre_emb.weight.normal_(0.0, 1.0)  # N(0, 0.02) at init: make the genres differ
    return model


def song(batch: int = 3, length: int = BLOCK - 1, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    music = torch.randn(batch, length, N_MUSIC, generator=gen, dtype=torch.float64)
    return music, torch.zeros(batch, 1, dtype=torch.long), torch.ones(batch, 1, dtype=torch.long)


def test_labels_follow_the_aistpp_genre_order() -> None:
    assert GENRE_CODES[:3] == ("gBR", "gPO", "gLO") and len(GENRE_CODES) == 10
    assert genre_label("gBR") == 0 and genre_label("gJB") == 9 and genre_label(None) == ANY_GENRE == 10
    assert N_GENRE_LABELS == 11
    assert sequence_genre("gHO_sBM_cAll_d04_mHO1_ch02") == "gHO"
    assert sequence_genre("gHO_sBM_cAll_d04_mHO1_ch02x1.08") == "gHO"  # tempo-stretched copy
    with pytest.raises(ValueError, match="unknown genre 'gXX'"):
        genre_label("gXX")
    with pytest.raises(ValueError, match="does not start with a genre code"):
        sequence_genre("song_01")


def test_the_genre_changes_the_logits_and_none_means_any() -> None:
    model = conditioned_model()
    music, _, _ = song(length=5)
    codes = torch.randint(0, VOCAB, (3, 5), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        a = model(codes, codes, music, genre=torch.tensor([0, 1, 2]))[0]
        b = model(codes, codes, music, genre=torch.tensor([3, 1, 2]))[0]
        anyone = model(codes, codes, music)[0]
        explicit = model(codes, codes, music, genre=torch.full((3,), ANY_GENRE))[0]
    assert (a[0] - b[0]).abs().max() > 1e-3 and torch.equal(a[1:], b[1:])  # only row 0's genre changed
    assert torch.equal(anyone, explicit)
    with pytest.raises(ValueError, match=r"expected \(3,\) labels"):
        model(codes, codes, music, genre=torch.tensor([0, 1]))


def test_a_model_without_conditioning_refuses_a_genre_and_has_no_embedding() -> None:
    model = build_gpt(TINY_GPT).eval()
    music, _, _ = song(length=4)
    codes = torch.zeros(3, 4, dtype=torch.long)
    assert not hasattr(model.gpt_base, "genre_emb")
    with pytest.raises(ValueError, match="trained without genre conditioning"):
        model(codes, codes, music.float(), genre=torch.zeros(3, dtype=torch.long))


def test_cached_decoding_follows_the_genre_exactly_as_exact_decoding() -> None:
    model = conditioned_model()
    music, up, down = song()
    genres = [torch.tensor([0, 0, 0]), torch.tensor([5, 5, 5])]
    outputs = []
    for genre in genres:
        exact = generate_codes(model, music, up, down, sampling=SamplingConfig(decode="exact"), genre=genre)
        cached = generate_codes(model, music, up, down, sampling=SamplingConfig(decode="cached"), genre=genre)
        assert torch.equal(exact[0], cached[0]) and torch.equal(exact[1], cached[1])
        outputs.append(exact)
    assert not torch.equal(outputs[0][0], outputs[1][0])  # another genre, another dance


def test_genre_dropout_replaces_labels_with_any_at_its_rate() -> None:
    genre = torch.zeros(20_000, dtype=torch.long)
    torch.manual_seed(0)
    dropped = drop_genre(genre, 0.25)
    assert abs(float((dropped == ANY_GENRE).float().mean()) - 0.25) < 0.01
    assert set(dropped.unique().tolist()) == {0, ANY_GENRE}
    state = torch.random.get_rng_state()
    assert drop_genre(genre, 0.0) is genre and torch.equal(torch.random.get_rng_state(), state)  # no draw


def windows_with_genres() -> TokenWindows:
    rng = np.random.default_rng(0)
    music = {f"m{i}": rng.normal(i, 1, (40, N_MUSIC)).astype(np.float32) for i in range(2)}
    up = rng.integers(0, VOCAB, (4, BLOCK + 1))
    return TokenWindows(
        up, up, ["m0", "m1", "m0", "m1"], np.array([0, 3, 10, 20]), music, np.array([0, 5, 0, 5])
    )


def test_windows_carry_their_genre_and_the_loss_reads_it_only_when_conditioned() -> None:
    data = windows_with_genres()
    assert [int(data[i]["genre"]) for i in range(4)] == [0, 5, 0, 5]
    assert torch.equal(sham_music_windows(data).genre, data.genre)  # sham music keeps the genre
    unlabelled = TokenWindows(data.up.numpy(), data.down.numpy(), data.music_id, data.music_start, data.music)
    assert torch.equal(unlabelled.genre, torch.full((4,), ANY_GENRE))
    batch = {k: torch.stack([data[i][k] for i in range(4)]) for k in data[0]}
    plain = build_gpt(dataclasses.replace(TINY_GPT, pre=False))
    assert batch_genre(plain, batch) is None
    conditioned = conditioned_model().float()
    assert torch.equal(batch_genre(conditioned, batch), torch.tensor([0, 5, 0, 5]))
    loss, _ = gpt_loss(0.0, (VOCAB, VOCAB))(conditioned.eval(), batch)
    swapped = {**batch, "genre": torch.tensor([5, 0, 5, 0])}
    other, _ = gpt_loss(0.0, (VOCAB, VOCAB))(conditioned, swapped)
    assert loss.item() != other.item()  # the genre reaches the loss


def guided_by_hand(model, music, up, down, genre, contrasts) -> tuple[torch.Tensor, torch.Tensor]:
    """The guided greedy sampler written out: at each step the official forward with the song's inputs
    and with each contrast's (scale, music, genre[, until step]), top-1 of cond + sum scale * (cond -
    contrast)."""
    up, down = up.clone(), down.clone()
    with torch.no_grad():
        for k in range(music.shape[1]):
            cond = model(up, down, music[:, : k + 1], genre=genre)
            picks = []
            for stream in range(2):
                logits = cond[stream][:, -1]
                for scale, other_music, other_genre, *until in contrasts:
                    if until and k >= until[0]:
                        continue
                    free = model(up, down, other_music[:, : k + 1], genre=other_genre)[stream][:, -1]
                    logits = logits + scale * (cond[stream][:, -1] - free)
                picks.append(logits.argmax(-1, keepdim=True))
            up, down = torch.cat([up, picks[0]], 1), torch.cat([down, picks[1]], 1)
    return up, down


@pytest.mark.parametrize("decode", ["exact", "cached"])
def test_genre_guidance_chooses_from_cond_plus_scale_times_cond_minus_any(decode: str) -> None:
    model = conditioned_model()
    music, up, down = song()
    genre = torch.tensor([0, 5, 3])
    expected = guided_by_hand(model, music, up, down, genre, [(3.0, music, torch.full((3,), ANY_GENRE))])
    guided = generate_codes(
        model, music, up, down, sampling=SamplingConfig(decode=decode, genre_guidance=3.0), genre=genre
    )
    assert torch.equal(guided[0], expected[0]) and torch.equal(guided[1], expected[1])
    plain = generate_codes(model, music, up, down, sampling=SamplingConfig(decode=decode), genre=genre)
    assert not torch.equal(plain[0], guided[0])  # the guidance changed the dance
    assert torch.equal(plain[0], guided_by_hand(model, music, up, down, genre, [])[0])  # 0: no guidance


@pytest.mark.parametrize("decode", ["exact", "cached"])
def test_music_and_genre_guidance_add_up_against_the_mean_music(decode: str) -> None:
    model = conditioned_model()
    music, up, down = song()
    genre = torch.tensor([0, 5, 3])
    anyone = torch.full((3,), ANY_GENRE)
    mean_music = torch.zeros_like(music)  # TINY_GPT has no music_norm
    sampling = SamplingConfig(decode=decode, genre_guidance=1.5, music_guidance=2.0)
    guided = generate_codes(model, music, up, down, sampling=sampling, genre=genre)
    expected = guided_by_hand(model, music, up, down, genre, [(1.5, music, anyone), (2.0, mean_music, genre)])
    assert torch.equal(guided[0], expected[0]) and torch.equal(guided[1], expected[1])
    loud = SamplingConfig(decode=decode, music_guidance=1e7)  # at init the music moves logits by ~1e-6
    music_only = generate_codes(model, music, up, down, sampling=loud)
    by_hand = guided_by_hand(model, music, up, down, None, [(1e7, mean_music, None)])
    assert torch.equal(music_only[0], by_hand[0]) and torch.equal(music_only[1], by_hand[1])
    plain = generate_codes(model, music, up, down, sampling=SamplingConfig(decode=decode))
    assert not torch.equal(music_only[0], plain[0])  # the guidance changed the dance


def test_the_mean_music_of_a_normalising_gpt_is_its_training_mean() -> None:
    model = build_gpt(dataclasses.replace(TINY_GPT, music_norm=True)).eval()
    mean = torch.arange(N_MUSIC, dtype=torch.float32)
    model.gpt_base.set_music_statistics(mean, torch.full((N_MUSIC,), 2.0))
    music = torch.randn(2, 5, N_MUSIC)
    null = null_music(model, music)
    assert null.shape == music.shape and torch.equal(null[1, 3], mean)
    assert torch.equal(model.gpt_base.normalise_music(null), torch.zeros_like(music))


@pytest.mark.parametrize("decode", ["exact", "cached"])
def test_genre_guidance_steps_guide_only_the_opening_codes(decode: str) -> None:
    model = conditioned_model()
    music, up, down = song()
    genre, anyone = torch.tensor([0, 5, 3]), torch.full((3,), ANY_GENRE)
    sampling = SamplingConfig(decode=decode, genre_guidance=3.0, genre_guidance_steps=2)
    opening = generate_codes(model, music, up, down, sampling=sampling, genre=genre)
    expected = guided_by_hand(model, music, up, down, genre, [(3.0, music, anyone, 2)])
    assert torch.equal(opening[0], expected[0]) and torch.equal(opening[1], expected[1])
    always = generate_codes(
        model, music, up, down, sampling=dataclasses.replace(sampling, genre_guidance_steps=0), genre=genre
    )
    assert torch.equal(opening[0][:, :3], always[0][:, :3]) and not torch.equal(opening[0], always[0])


def test_genre_guidance_leaves_any_genre_and_padded_songs_as_they_are() -> None:
    model = conditioned_model()
    music, up, down = song()
    guide = SamplingConfig(genre_guidance=3.0)
    anyone = torch.full((3,), ANY_GENRE)
    assert torch.equal(
        generate_codes(model, music, up, down, sampling=guide, genre=anyone)[0],
        generate_codes(model, music, up, down, genre=anyone)[0],
    )
    assert torch.equal(
        generate_codes(model, music, up, down, sampling=guide)[0], generate_codes(model, music, up, down)[0]
    )  # no genre asked: nothing to guide towards
    genre, lengths = torch.tensor([0, 5, 3]), [4, 7, 2]
    batched = generate_codes(model, music, up, down, lengths, guide, genre=genre)
    for i, n in enumerate(lengths):
        alone = generate_codes(
            model,
            music[i : i + 1, :n],
            up[i : i + 1],
            down[i : i + 1],
            sampling=guide,
            genre=genre[i : i + 1],
        )
        assert torch.equal(batched[0][i, : n + 1], alone[0][0]) and torch.equal(
            batched[1][i, : n + 1], alone[1][0]
        )


@pytest.mark.parametrize("bad", [-1.0, float("nan")])
def test_genre_guidance_must_be_a_finite_number_at_least_zero(bad: float) -> None:
    with pytest.raises(ValueError, match="genre_guidance"):
        SamplingConfig(genre_guidance=bad)
    with pytest.raises(ValueError, match="music_guidance"):
        SamplingConfig(music_guidance=bad)
