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
from typing import Literal

import yaml

from danceba.data.data_config import DataConfig
from danceba.evaluate_config import EvaluateConfig
from danceba.generation.config import GenerateConfig
from danceba.params_checks import (
    consistency_problems,
    derivation_problems,
    derived_gpt_fields,
    written_derived_fields,
)
from danceba.report_config import ReportConfig
from danceba.strict_dataclass import (
    ConfigError,
    PositiveInt,
    build_dataclass,
    check_annotations,
)
from danceba.strict_yaml import load_strict_yaml
from danceba.tokenize_config import TokenizeConfig
from danceba.trainers.configs import TrainGPTConfig, TrainVQVAEConfig

__all__ = ["ConfigError", "Params", "build_dataclass", "load_params"]

# ----------------------------------------------------------------------------------------------
# Sections
# ----------------------------------------------------------------------------------------------


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
        check_annotations(self, "music_features")
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
        check_annotations(self, "compute")


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
    finite, a value that is derived from others written out, and the cross-section problems of
    :mod:`danceba.params_checks`. The GPT's vocabularies, ``n_music`` and ``block_size`` are derived
    there from the VQ-VAE, the music features and the ``tokenize`` window.
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
    if problems := written_derived_fields(raw) + derivation_problems(params):
        raise ConfigError(problems).prefixed(f"{path}: ")
    params = with_derived_values(params, path)
    if problems := consistency_problems(params):
        raise ConfigError(problems).prefixed(f"{path}: ")
    return params


def with_derived_values(params: Params, path: str | Path = "params.yaml") -> Params:
    """``params`` with the GPT sizes that follow from other sections filled in
    (:data:`danceba.params_checks.DERIVED_GPT_FIELDS`)."""
    gpt = params.train_gpt
    try:
        model = dataclasses.replace(gpt.model, **derived_gpt_fields(params))
    except ValueError as error:
        raise ConfigError(f"{path}: train_gpt.model: {error}") from None
    return dataclasses.replace(params, train_gpt=dataclasses.replace(gpt, model=model))


def _section_names() -> list[str]:
    return [f.name for f in dataclasses.fields(Params)]


def _yaml_problem(error: yaml.YAMLError) -> str:
    """A YAML error on one line: what is wrong and the line it is on."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    return f"{problem} (line {mark.line + 1})" if mark is not None and "line" not in problem else problem
