"""Configuration: frozen dataclasses mirroring the sections of ``params.yaml``.

One loader, :func:`load_params`, turns the YAML into a :class:`Params`. It rejects unknown keys and
values of the wrong type with a message naming the key (``train_gpt.lr: expected float, got 'fast'``),
so a typo in ``params.yaml`` fails loudly instead of silently falling back to a default.
Library code receives these dataclasses (or plain arguments); it never reads ``params.yaml`` itself.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml

from danceba.dance_generation import GenerateConfig
from danceba.evaluation import EvaluateConfig
from danceba.html_report import ReportConfig
from danceba.motion_tokens import TokenizeConfig
from danceba.params_checks import consistency_problems
from danceba.strict_dataclass import (
    Bounds,
    ConfigError,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    build_dataclass,
)
from danceba.strict_yaml import load_strict_yaml
from danceba.train.gpt_training import TrainGPTConfig
from danceba.train.vqvae_training import TrainVQVAEConfig

__all__ = ["ConfigError", "Params", "build_dataclass", "load_params", "section_as_dict"]

# ----------------------------------------------------------------------------------------------
# Sections
# ----------------------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class JointsConfig:
    """SMPL forward kinematics: poses + translation -> 24 joints at 60 fps."""

    fps: PositiveInt = 60
    drop_ignored: bool = True


@dataclass(frozen=True)
class MusicFeaturesConfig:
    """Music features at 60 fps (one per motion frame) and 7.5 fps (one per motion token).

    ``bailando438``: Bailando's 438-d set (the GPT condition; column 53 is the beat one-hot BAS reads).
    ``edge35``: EDGE's 35-d baseline set at the same two rates (hop 512 at 30720 / 3840 Hz).
    ``token_rhythm`` (the 7.5 fps table only; the 60 fps table BAS reads is unchanged): ``none`` (the
    published features), ``append`` (the 21 columns of ``danceba.features.rhythm`` after the 438: beat
    position inside each token, beat phase, period and onsets from the 60 fps beats; GPT ``n_music`` 459)
    or ``only`` (the 21 rhythm columns alone; ``n_music`` 21, and PRE needs ``pre_mode: per_channel``).
    ``none`` in the paper configuration (not in the published model).
    """

    kind: Literal["bailando438", "edge35"] = "bailando438"
    token_rhythm: Literal["none", "append", "only"] = "none"

    def __post_init__(self) -> None:
        if self.token_rhythm not in ("none", "append", "only"):
            raise ValueError(
                f"music_features.token_rhythm: expected none, append or only, got {self.token_rhythm!r}"
            )
        if self.token_rhythm != "none" and self.kind != "bailando438":
            raise ValueError(
                "music_features.token_rhythm needs kind bailando438 (it reads the 60 fps beat column)"
            )


@dataclass(frozen=True)
class ComputeConfig:
    """How every stage computes. ``threads``: torch intra-op and BLAS/OpenMP threads of each stage.

    On CPU the results are bit-identical for a given thread count and differ between counts (a
    reduction split over more threads adds in another order), so the count is a parameter, not the
    machine's core count.
    """

    threads: PositiveInt = 2

    def __post_init__(self) -> None:
        if isinstance(self.threads, bool) or self.threads < 1:
            raise ConfigError(f"compute.threads: expected a positive int, got {self.threads!r}")


@dataclass(frozen=True)
class Params:
    """All of ``params.yaml``."""

    compute: ComputeConfig = field(default_factory=ComputeConfig)
    data: DataConfig = field(default_factory=DataConfig)
    joints: JointsConfig = field(default_factory=JointsConfig)
    music_features: MusicFeaturesConfig = field(default_factory=MusicFeaturesConfig)
    train_vqvae: TrainVQVAEConfig = field(default_factory=TrainVQVAEConfig)
    tokenize: TokenizeConfig = field(default_factory=TokenizeConfig)
    train_gpt: TrainGPTConfig = field(default_factory=TrainGPTConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    report: ReportConfig = field(default_factory=ReportConfig)


# ----------------------------------------------------------------------------------------------
# Loader
# ----------------------------------------------------------------------------------------------


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read ``params.yaml`` into :class:`Params`, or raise :class:`ConfigError` listing every problem.

    Each line of the error names the file and the key: YAML that does not parse, a duplicate key,
    an unknown key, a missing or empty section, a value of the wrong type, outside its bounds or not
    finite, and the cross-section problems of :func:`danceba.params_checks.consistency_problems`.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise ConfigError(f"{path}: file not found") from error
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read it ({error})") from error
    try:
        raw = load_strict_yaml(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {_yaml_problem(error)}") from None
    if raw is None:
        raise ConfigError(f"{path}: the file is empty (it needs the sections {', '.join(_section_names())})")
    try:
        params = build_dataclass(Params, raw)
    except ConfigError as error:
        raise error.prefixed(f"{path}: ") from None
    if problems := consistency_problems(params):
        raise ConfigError(problems).prefixed(f"{path}: ")
    return params


def _section_names() -> list[str]:
    return [f.name for f in dataclasses.fields(Params)]


def _yaml_problem(error: yaml.YAMLError) -> str:
    """A YAML error on one line: what is wrong and the line it is on."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    return f"{problem} (line {mark.line + 1})" if mark is not None and "line" not in problem else problem


def section_as_dict(section: Any) -> dict[str, Any]:
    """A config section as a plain nested dict (tuples become lists), e.g. for logging."""
    return yaml.safe_load(yaml.safe_dump(_to_plain(dataclasses.asdict(section))))


def _to_plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_plain(v) for v in value]
    return value
