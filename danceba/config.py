"""Configuration: frozen dataclasses mirroring the sections of ``params.yaml``.

One loader, :func:`load_params`, turns the YAML into a :class:`Params`. It rejects unknown keys and
values of the wrong type with a message naming the key (``train_gpt.lr: expected float, got 'fast'``),
so a typo in ``params.yaml`` fails loudly instead of silently falling back to a default.
Library code receives these dataclasses (or plain arguments); it never reads ``params.yaml`` itself.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration file or section is malformed; the message names the key."""


# ----------------------------------------------------------------------------------------------
# Sections
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MiniDatasetConfig:
    """The embedded mini dataset (written in the AIST++ layout by ``danceba.data.mini``)."""

    seed: int = 0
    genres: tuple[str, ...] = ("gBR", "gPO", "gLO", "gHO", "gJB")
    music_per_genre: int = 3
    dancers_per_music: int = 2
    choreographies_per_dancer: int = 2
    seconds: float = 12.0
    sample_rate: int = 30720


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

    fps: int = 60
    drop_ignored: bool = True


@dataclass(frozen=True)
class MusicFeaturesConfig:
    """Music features at 60 fps (one per motion frame) and 7.5 fps (one per motion token).

    ``bailando438``: Bailando's 438-d set (the GPT condition; column 53 is the beat one-hot BAS reads).
    ``edge35``: EDGE's 35-d baseline set at the same two rates (hop 512 at 30720 / 3840 Hz).
    """

    kind: Literal["bailando438", "edge35"] = "bailando438"


@dataclass(frozen=True)
class PhaseConfig:
    """STFT phase of the 7.5 fps music features, as Danceba's PRE consumes it."""

    mode: Literal["official", "per_channel"] = "official"
    window: int = 29
    n_fft: int = 512
    hop_length: int = 256
    channel_n_fft: int = 8
    channel_hop_length: int = 1


@dataclass(frozen=True)
class Params:
    """All of ``params.yaml``."""

    data: DataConfig = field(default_factory=DataConfig)
    joints: JointsConfig = field(default_factory=JointsConfig)
    music_features: MusicFeaturesConfig = field(default_factory=MusicFeaturesConfig)
    phase: PhaseConfig = field(default_factory=PhaseConfig)


# ----------------------------------------------------------------------------------------------
# Loader
# ----------------------------------------------------------------------------------------------


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it converted (lists -> tuples)."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return build_dataclass(tp, value, key)
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{key}: expected one of {list(allowed)}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in typing.get_args(tp):
            if option is type(None):
                if value is None:
                    return None
                continue
            try:
                return _coerce(value, option, key)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(f"{key}: {value!r} matches none of {_type_name(tp)}")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f"{key}: expected {len(args)} items, got {len(value)}")
        return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(args, value, strict=True)))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected int, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected float, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported annotation {_type_name(tp)}")


def build_dataclass(cls: type[T], data: Any, where: str = "") -> T:
    """Build the frozen dataclass ``cls`` from a mapping, rejecting unknown keys and wrong types.

    Missing keys take the dataclass defaults. ``where`` is the dotted key prefix for messages.
    """
    prefix = f"{where}." if where else ""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'params'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"unknown key {prefix}{unknown[0]} (known keys of {where or 'params'}: {', '.join(sorted(names))})"
        )
    kwargs = {name: _coerce(value, hints[name], f"{prefix}{name}") for name, value in data.items()}
    return cls(**kwargs)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read ``params.yaml`` into :class:`Params`; raise :class:`ConfigError` naming a bad key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise ConfigError(f"{path}: file not found") from error
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error})") from error
    try:
        return build_dataclass(Params, raw)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from error


def section_as_dict(section: Any) -> dict[str, Any]:
    """A config section as a plain nested dict (tuples become lists), e.g. for logging."""
    return yaml.safe_load(yaml.safe_dump(_to_plain(dataclasses.asdict(section))))


def _to_plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_plain(v) for v in value]
    return value
