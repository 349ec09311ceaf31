"""The ``data`` section of params.yaml: where the raw dataset comes from (:class:`DataConfig`, run by
``pipelines/fetch.py``) and the embedded mini dataset's shape (:class:`MiniDatasetConfig`, written by
:mod:`danceba.data.mini`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

from danceba.strict_dataclass import Bounds, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt


@dataclass(frozen=True)
class MiniDatasetConfig:
    """The embedded mini dataset (written in the AIST++ layout by ``danceba.data.mini``).

    The grid: ``genres`` x ``music_per_genre`` x ``dancers_per_music`` x ``choreographies_per_dancer``
    sequences, the first ``basic_choreographies`` of each dancer basic (``sBM``), the rest advanced
    (``sFM``). Lengths: ``seconds`` (basic) and ``advanced_seconds`` (advanced; 0 = ``seconds``), each
    dance's drawn from U(1 - ``seconds_spread``, 1 + ``seconds_spread``) times its mean (0 = fixed).
    ``sequences`` / ``train_sequences`` (0 = all) keep that many of the grid in all / in the training
    split, evenly spread over it (val and test are always kept). ``ignored_train`` / ``ignored_other``:
    entries of the ignore list drawn from the training split / from the sequences in no split. The
    defaults are the embedded dataset; ``configs/scale.yaml`` sets AIST++'s shape.
    """

    seed: NonNegativeInt = 0
    genres: tuple[str, ...] = ("gBR", "gPO", "gLO", "gHO", "gJB")
    music_per_genre: PositiveInt = 3
    dancers_per_music: PositiveInt = 2
    choreographies_per_dancer: PositiveInt = 2
    basic_choreographies: PositiveInt = 2
    sequences: NonNegativeInt = 0
    train_sequences: NonNegativeInt = 0
    ignored_train: NonNegativeInt = 2
    ignored_other: NonNegativeInt = 0
    seconds: PositiveFloat = 12.0
    advanced_seconds: NonNegativeFloat = 0.0
    seconds_spread: Annotated[float, Bounds(low=0, high=1, open_high=True)] = 0.0
    sample_rate: PositiveInt = 30720


@dataclass(frozen=True)
class DataConfig:
    """Where the raw dataset comes from. ``source: mini`` needs no network."""

    source: Literal["mini", "aistpp"] = "mini"
    download_dir: str = "downloads"
    annotations_url: str = "https://github.com/google/aistplusplus_dataset/releases/download/v1.0/motions.zip"
    annotations_sha256: str = ""
    music_url: str = "https://aistdancedb.ongaaccel.jp/v1.0.0/audio/wav.zip"
    music_sha256: str = ""
    mini: MiniDatasetConfig = field(default_factory=MiniDatasetConfig)
