"""Autoregressive generation of up/down dance codes from music with the cross-conditional GPT.

The official sampler (Bailando's and Danceba's ``CrossCondGPT2.sample``): starting from the first up and
down codes of the ground-truth dance, for ``k = 0 .. L-1`` run the model on the last ``window`` time
steps ``[max(0, k - window + 1), k]`` (``window = block_size - 1`` = 28 at the paper size) of codes and
music, take the last position's logits and choose code ``k + 1`` for up and down independently: greedy
top-1 of the softmax. With L music frames the output has ``L + 1`` codes per stream. The music it is given
is the song's 7.5 fps features without frame 0 (the reference passes ``music_seq[:, 1:]``), so music frame
``j + 1`` of the song sits beside code ``j``.

Two decoders (``SamplingConfig.decode``):

* ``"exact"``: re-runs ``model.forward`` over the current window at every step: the official sampler
  (this is the reference). Cost per step grows with the window, and Danceba's forward is heavy.
* ``"cached"``: :class:`danceba.models.incremental.IncrementalDecoder`, one new time step per layer per
  step (attention key/value cache, Mamba recurrent state, music embeddings computed once).

Where ``cached`` differs from ``exact`` (both documented and tested in ``tests/test_generate.py``):

1. **PRE** (Danceba stack, ``pre=True``). PRE is not causal: every row of the official PRE depends on
   the whole music window, so ``exact`` recomputes the position term of every position at every step.
   ``cached`` gives each new position (music, up, down of time k) the newest rows of PRE over the current
   window, i.e. the same term ``exact`` gives the newest position at that step, and keeps the terms of
   older positions as they were when those were new. Equal at step 0, different afterwards.
2. **Beyond the window** (``k >= window``). ``exact`` drops the oldest time step and recomputes the window
   from scratch: positions are window-relative, every Mamba starts from a zero state at the window start,
   attention sees only the window. ``cached`` keeps a sliding key/value window of the same span (the last
   ``window`` time steps), but each kept key/value was computed when it was new, from the context it had
   then (which reached further back); each Mamba carries its recurrent state from time 0 on; and the new
   position's position term is that of the newest window slot (Bailando: learned slot ``window - 1`` for
   every ``k >= window - 1``; Danceba: newest PRE rows), as in point 1.

Hence ``cached == exact`` (up to floating-point summation order) exactly when the model is causal
(Bailando stack, or Danceba with ``pre=False``) and ``L <= window``. ``pmmm="single"`` supports only
``exact``.

Batches of songs of different lengths: pad the music to the longest and pass ``lengths``; each song only
ever sees its own frames ``<= k`` at step k, so its valid codes are those it would get alone. Codes past
``lengths[i] + 1`` are set to :data:`PAD_CODE`; :func:`trim_codes` cuts them off.

Guidance (classifier-free; both 0 by default, the reference): every song also runs as contrast rows of
the same batch, on the same code history, and each step chooses from
``cond + sum_i w_i * (cond - contrast_i)`` (logits), so the evidence of what the contrast lacks counts
``1 + w_i`` times:

* ``genre_guidance``: the contrast reads "any genre" (the label learnt from ``train_gpt.genre_dropout``);
  a genre-conditioned GPT asked for a genre only; on the first ``genre_guidance_steps`` steps only when
  that is > 0 (the style is set by the opening codes, the rest of the dance then follows the music).
* ``music_guidance``: the contrast hears the training split's mean music (:func:`null_music`: zeros after
  the model's normalisation; zeros for a model without ``music_norm``), a song without rhythm or timbre.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from danceba.generation.config import SamplingConfig
from danceba.genres import ANY_GENRE
from danceba.models.gpt import CrossCondGPT
from danceba.models.incremental import IncrementalDecoder
from danceba.models.low_precision import bfloat16_weights

PAD_CODE = -1  # code of the positions past a song's length in a batched output


LogitsAt = Callable[[int], tuple[Tensor, Tensor]]  # step k -> logits_up (B, Vu), logits_down (B, Vd)


def context_window(model: CrossCondGPT) -> int:
    """Time steps the sampler feeds the model: ``block_size - 1`` (28 at the paper size)."""
    return model.config.block_size - 1


def generate_codes(
    model: CrossCondGPT,
    music: Tensor,
    first_up: Tensor,
    first_down: Tensor,
    lengths: Tensor | Sequence[int] | None = None,
    sampling: SamplingConfig = SamplingConfig(),  # frozen, so a shared default is safe
    progress: Callable[[int], None] | None = None,
    genre: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Generate up/down codes for a batch of songs.

    music (B, L, n_music) (frames 1.. of each song's 7.5 fps features, padded to the longest song);
    first_up, first_down (B, 1) int64 (the first ground-truth codes); lengths (B,) music frames per song
    (default: all L). Returns up, down (B, L + 1) int64 on the model's device: column 0 is the first code,
    column k + 1 is predicted at step k; columns past ``lengths[i] + 1`` hold :data:`PAD_CODE`.
    The model runs in eval mode under ``torch.inference_mode`` (its training flag is restored after).
    ``progress(steps_done)`` is called after every step (e.g. a progress bar, or per-step timing).
    ``genre`` (B,) labels of :mod:`danceba.genres` (a genre-conditioned model only; None: "any genre").
    """
    music, first_up, first_down, lengths = _checked_inputs(model, music, first_up, first_down, lengths)
    if genre is not None:
        genre = torch.as_tensor(genre, dtype=torch.long, device=music.device)
    steps = int(lengths.max()) if lengths.numel() else 0
    was_training = model.training
    model.eval()
    decoder_model = bfloat16_weights(model) if sampling.precision == "bfloat16" else model
    try:
        with torch.inference_mode():
            up, down = _decode(decoder_model, music, first_up, first_down, steps, sampling, progress, genre)
            past_end = torch.arange(up.shape[1], device=up.device) > lengths[:, None]
            up.masked_fill_(past_end, PAD_CODE)
            down.masked_fill_(past_end, PAD_CODE)
    finally:
        model.train(was_training)
    return up.clone(), down.clone()  # ordinary tensors, not inference tensors


def trim_codes(up: Tensor, down: Tensor, lengths: Tensor | Sequence[int]) -> list[tuple[Tensor, Tensor]]:
    """Cut a batched output to each song: up, down (B, L + 1), lengths (B,) -> [(up_i, down_i)] of
    ``lengths[i] + 1`` codes each."""
    return [(up[i, : int(n) + 1], down[i, : int(n) + 1]) for i, n in enumerate(lengths)]


def _decode(
    model: CrossCondGPT,
    music: Tensor,
    first_up: Tensor,
    first_down: Tensor,
    steps: int,
    sampling: SamplingConfig,
    progress: Callable[[int], None] | None,
    genre: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    batch, length = music.shape[:2]
    music, first_up, first_down, genre, contrasts = _with_contrast_rows(
        model, music, first_up, first_down, genre, sampling
    )
    copies = music.shape[0] // batch  # the songs, then one block of contrast rows per contrast
    up = first_up.new_zeros(music.shape[0], length + 1)
    down = first_down.new_zeros(music.shape[0], length + 1)
    up[:, :1], down[:, :1] = first_up, first_down
    window = context_window(model)
    if sampling.decode == "exact":
        logits_at = _exact_logits(model, music, up, down, window, genre)
    else:
        logits_at = _cached_logits(IncrementalDecoder(model, music, window, genre), up, down)
    generator = None
    if sampling.mode == "sample":
        generator = torch.Generator(device=music.device).manual_seed(sampling.seed)
    for k in range(steps):
        logits_up, logits_down = logits_at(k)
        if contrasts:
            scales = [guidance_scale(sampling, kind, k) for kind in contrasts]
            logits_up, logits_down = guided_logits(logits_up, scales), guided_logits(logits_down, scales)
        up_k = select_codes(penalise_repeat(logits_up, up[:batch, k], sampling), sampling, generator)
        down_k = select_codes(penalise_repeat(logits_down, down[:batch, k], sampling), sampling, generator)
        up[:, k + 1], down[:, k + 1] = up_k.repeat(copies), down_k.repeat(copies)
        if progress is not None:
            progress(k + 1)
    return up[:batch], down[:batch]


def guided_logits(logits: Tensor, scales: Sequence[float]) -> Tensor:
    """logits ((1 + n) B, V): the conditioned rows, then one block of B contrast rows per scale (n of them)
    -> (B, V) ``cond + sum_i scales[i] * (cond - contrast_i)``."""
    conditioned, *contrasts = logits.chunk(len(scales) + 1)
    guided = conditioned
    for scale, contrast in zip(scales, contrasts, strict=True):
        guided = guided + scale * (conditioned - contrast)
    return guided


def guidance_scale(sampling: SamplingConfig, kind: str, step: int) -> float:
    """The scale of a ``"genre"`` or ``"music"`` contrast at step ``step``: genre guidance acts on the first
    ``genre_guidance_steps`` steps only (0: on every step)."""
    if kind == "music":
        return sampling.music_guidance
    limit = sampling.genre_guidance_steps
    return sampling.genre_guidance if limit == 0 or step < limit else 0.0


def null_music(model: CrossCondGPT, music: Tensor) -> Tensor:
    """The music-guidance contrast of music (B, L, n_music): the training split's mean music repeated,
    i.e. zeros once the model normalises it (zeros when the model has no ``music_norm``)."""
    if not model.config.music_norm:
        return torch.zeros_like(music)
    return model.gpt_base.music_mean.to(music.dtype).expand_as(music).clone()


def _with_contrast_rows(
    model: CrossCondGPT,
    music: Tensor,
    first_up: Tensor,
    first_down: Tensor,
    genre: Tensor | None,
    sampling: SamplingConfig,
) -> tuple[Tensor, Tensor, Tensor, Tensor | None, list[str]]:
    """The batch with the guidance's contrast rows appended (module docstring) and their kinds
    (``"genre"``, ``"music"``), in the order of the appended blocks."""
    blocks, kinds = [(music, genre)], []
    if sampling.genre_guidance > 0 and genre is not None:
        blocks.append((music, torch.full_like(genre, ANY_GENRE)))
        kinds.append("genre")
    if sampling.music_guidance > 0:
        blocks.append((null_music(model, music), genre))
        kinds.append("music")
    if not kinds:
        return music, first_up, first_down, genre, kinds
    copies = len(blocks)
    music = torch.cat([m for m, _ in blocks])
    genre = None if genre is None else torch.cat([g for _, g in blocks])
    return music, first_up.repeat(copies, 1), first_down.repeat(copies, 1), genre, kinds


def _exact_logits(
    model: CrossCondGPT, music: Tensor, up: Tensor, down: Tensor, window: int, genre: Tensor | None = None
) -> LogitsAt:
    """The official step: the full forward over the window ending at time k, last position's logits."""

    def logits_at(k: int) -> tuple[Tensor, Tensor]:
        start = max(0, k - window + 1)
        logits_up, logits_down, _ = model(
            up[:, start : k + 1], down[:, start : k + 1], music[:, start : k + 1], genre=genre
        )
        return logits_up[:, -1], logits_down[:, -1]

    return logits_at


def _cached_logits(decoder: IncrementalDecoder, up: Tensor, down: Tensor) -> LogitsAt:
    def logits_at(k: int) -> tuple[Tensor, Tensor]:
        if decoder.time != k:
            raise RuntimeError(
                f"cached decoding must run steps in order: expected step {decoder.time}, got {k}"
            )
        return decoder.step(up[:, k], down[:, k])

    return logits_at


def penalise_repeat(logits: Tensor, previous: Tensor, sampling: SamplingConfig) -> Tensor:
    """logits (B, V) with ``sampling.repeat_penalty`` subtracted at each row's ``previous`` code (B,)."""
    if sampling.repeat_penalty == 0:
        return logits
    rows = torch.arange(logits.shape[0], device=logits.device)
    penalised = logits.clone()
    penalised[rows, previous] -= sampling.repeat_penalty
    return penalised


def select_codes(
    logits: Tensor, sampling: SamplingConfig, generator: torch.Generator | None = None
) -> Tensor:
    """Choose one code per row: logits (B, V) -> (B,) int64.

    Greedy: ``topk(softmax(logits), 1)``, as the official sampler does. Sample: softmax of
    ``logits / temperature`` over the ``top_k`` largest logits (all when None; ties at the k-th value are
    kept), one draw per row from ``generator``.
    """
    if sampling.mode == "greedy":
        return torch.topk(F.softmax(logits, dim=-1), k=1, dim=-1).indices[:, 0]
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32)) / sampling.temperature
    if sampling.top_k is not None and sampling.top_k < logits.shape[-1]:
        kth_largest = torch.topk(logits, sampling.top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth_largest, float("-inf"))
    return torch.multinomial(F.softmax(logits, dim=-1), 1, generator=generator)[:, 0]


def _checked_inputs(
    model: CrossCondGPT,
    music: Tensor,
    first_up: Tensor,
    first_down: Tensor,
    lengths: Tensor | Sequence[int] | None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Validate shapes and ranges; move everything to the model's device (music to its dtype)."""
    config = model.config
    if config.block_size < 2:
        raise ValueError(f"generate_codes: the model's block_size must be >= 2, got {config.block_size}")
    if not isinstance(music, Tensor) or music.dim() != 3 or music.shape[2] != config.n_music:
        got = tuple(music.shape) if isinstance(music, Tensor) else type(music).__name__
        raise ValueError(f"music: expected a (B, L, n_music={config.n_music}) tensor, got {got}")
    batch, length = music.shape[:2]
    weight = model.gpt_base.cond_emb.weight
    checked = []
    for name, codes, vocab in (
        ("first_up", first_up, config.vocab_up),
        ("first_down", first_down, config.vocab_down),
    ):
        if not isinstance(codes, Tensor) or codes.shape != (batch, 1) or codes.is_floating_point():
            got = (tuple(codes.shape), codes.dtype) if isinstance(codes, Tensor) else type(codes).__name__
            raise ValueError(f"{name}: expected a ({batch}, 1) integer tensor, got {got}")
        if codes.numel() and not bool(((codes >= 0) & (codes < vocab)).all()):
            raise ValueError(
                f"{name}: codes must be in [0, {vocab}), got min {codes.min()}, max {codes.max()}"
            )
        checked.append(codes.to(device=weight.device, dtype=torch.long))
    if lengths is None:
        lengths = torch.full((batch,), length, dtype=torch.long)
    lengths = torch.as_tensor(lengths)
    if lengths.shape != (batch,) or lengths.is_floating_point():
        raise ValueError(
            f"lengths: expected ({batch},) integers, got shape {tuple(lengths.shape)}, {lengths.dtype}"
        )
    if lengths.numel() and not bool(((lengths >= 0) & (lengths <= length)).all()):
        raise ValueError(
            f"lengths: every length must be in [0, {length}] (music frames), got {lengths.tolist()}"
        )
    music = music.to(device=weight.device, dtype=weight.dtype)
    return music, checked[0], checked[1], lengths.to(device=weight.device, dtype=torch.long)
