"""How dances are generated: the sampler's settings (:class:`SamplingConfig`, used by
:func:`danceba.generation.sampler.generate_codes`) and the ``generate`` section of params.yaml
(:class:`GenerateConfig`, run by :mod:`danceba.generation.dances`). Imports no torch, so the CLI can
offer the choices without loading it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal, get_args

from danceba.strict_dataclass import (
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    SplitName,
    check_annotations,
)

Precision = Literal["float32", "bfloat16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)  # the reference first


@dataclass(frozen=True)
class SamplingConfig:
    """How codes are chosen and decoded. Defaults: the official sampler (greedy top-1, exact decoding).

    mode: ``greedy`` (top-1 of the softmax, as released) or ``sample`` (softmax of logits / temperature,
    restricted to the ``top_k`` largest logits when set, drawn with a ``torch.Generator`` seeded with
    ``seed``; up then down at every step). ``temperature``, ``top_k`` and ``seed`` are unused when greedy.
    repeat_penalty: nats subtracted from the logit of each stream's previous code before choosing (0, the
    reference, keeps the logits). Greedy decoding of the embedded model repeated the previous code at
    71 % of steps against 50 % in the dances it learnt from, and the dancer froze.
    decode: ``exact`` (re-run the window at every step) or ``cached`` (incremental; see module docstring).
    genre_guidance: classifier-free guidance towards the requested genre (a genre-conditioned GPT asked
    for one; see :mod:`danceba.generation.sampler`): the logits are ``cond + w * (cond - any genre)``;
    0 (the default) reads the genre once, without guidance. Ignored for an unconditioned GPT or "any".
    genre_guidance_steps: guide only the first N steps (codes), 0 = every step.
    music_guidance: classifier-free guidance towards the music: ``cond + w * (cond - mean music)`` (the
    training split's mean music, a song without rhythm); 0 (the default, the reference) hears it once.
    precision: ``float32`` (the reference) or ``bfloat16``: the Linear layers compute with bfloat16 weights
    (:mod:`danceba.models.low_precision`; about 2x faster at batch 1 on CPU, and other codes wherever two
    logits were closer than the rounding).
    """

    mode: Literal["greedy", "sample"] = "greedy"
    temperature: PositiveFloat = 1.0
    top_k: PositiveInt | None = None
    seed: int = 0
    decode: Literal["exact", "cached"] = "exact"
    repeat_penalty: NonNegativeFloat = 0.0
    precision: Precision = "float32"
    genre_guidance: NonNegativeFloat = 0.0
    genre_guidance_steps: NonNegativeInt = 0
    music_guidance: NonNegativeFloat = 0.0

    def __post_init__(self) -> None:
        check_annotations(self)


@dataclass(frozen=True)
class GenerateConfig(SamplingConfig):
    """``generate`` in params.yaml: the sampler's settings (the fields of :class:`SamplingConfig`, one
    definition) and the stage's own: the evaluated splits, songs per batch, and how many sample videos."""

    splits: tuple[SplitName, ...] = ("val", "test")
    batch_size: PositiveInt = 16
    sample_videos: NonNegativeInt = 1  # MP4s (skeleton + music) of the first generated dances, for a look

    def sampling(self) -> SamplingConfig:
        """The sampler's part of the section."""
        return SamplingConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(SamplingConfig)})
