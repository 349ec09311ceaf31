"""Build frozen dataclasses from plain mappings (YAML), strictly.

Unknown keys, values of the wrong type, non-finite floats, values outside a field's bounds, missing
sections and the failed checks of a ``__post_init__`` are all collected and raised together as one
:class:`ConfigError`, one line per problem naming the dotted key
(``train_gpt.optim.lr: expected a finite number, got inf``). A field's bounds are written once, in its
annotation: ``fps: PositiveInt = 60`` (see :class:`Bounds`). Used for ``params.yaml`` and for model
configs stored inside checkpoints.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import types
import typing
from collections.abc import Sequence
from typing import Annotated, Any, Literal, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration file or section is malformed: ``problems`` holds one line per problem, each
    naming its key; ``str()`` is those lines."""

    def __init__(self, problems: str | Sequence[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))

    def prefixed(self, prefix: str) -> ConfigError:
        """The same problems with ``prefix`` (e.g. the file) in front of each line."""
        return ConfigError([f"{prefix}{problem}" for problem in self.problems])


@dataclasses.dataclass(frozen=True)
class Bounds:
    """The range a numeric field accepts: ``low <= value <= high`` (``<`` where ``open_low``)."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False

    def problem(self, value: float) -> str | None:
        """Why ``value`` is out of range, or None."""
        below = self.low is not None and (value <= self.low if self.open_low else value < self.low)
        above = self.high is not None and (value >= self.high if self.open_high else value > self.high)
        if not (below or above):
            return None
        low = "" if self.low is None else f"{'>' if self.open_low else '>='} {self.low:g}"
        high = "" if self.high is None else f"{'<' if self.open_high else '<='} {self.high:g}"
        return f"expected a value {' and '.join(t for t in (low, high) if t)}, got {value!r}"


PositiveInt = Annotated[int, Bounds(low=1)]
NonNegativeInt = Annotated[int, Bounds(low=0)]
PositiveFloat = Annotated[float, Bounds(low=0, open_low=True)]
NonNegativeFloat = Annotated[float, Bounds(low=0)]
Fraction = Annotated[float, Bounds(low=0, high=1)]
Probability = Annotated[float, Bounds(low=0, high=1, open_high=True)]  # e.g. dropout: 1 would drop all
SplitName = Literal["train", "val", "test"]


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it converted (lists -> tuples)."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if value is None:
            raise ConfigError(f"{key}: the section is empty (null); give its keys")
        return build_dataclass(tp, value, key)
    if origin is Annotated:
        base, *extras = typing.get_args(tp)
        coerced = _coerce(value, base, key)
        for bounds in (extra for extra in extras if isinstance(extra, Bounds)):
            if (problem := bounds.problem(coerced)) is not None:
                raise ConfigError(f"{key}: {problem}")
        return coerced
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
        if len(errors) == 1:  # ``X | None``: why the value is not an X
            raise ConfigError(errors[0])
        raise ConfigError(f"{key}: {value!r} matches none of {_type_name(tp)}")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f"{key}: expected {len(args)} items, got {len(value)}")
        return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):  # numpy integers too
            raise ConfigError(f"{key}: expected int, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ConfigError(f"{key}: expected float, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported annotation {_type_name(tp)}")


def annotation_problems(instance: Any, section: str | None = None) -> list[str]:
    """The fields of a dataclass built directly (not by :func:`build_dataclass`) whose value breaks the
    rules its annotation writes: the same checks :func:`build_dataclass` makes of YAML (choices, bounds,
    types, finite floats, tuple elements), so each rule is written once, in the field; a
    ``__post_init__`` calls this and adds only the checks that relate several fields. Nested sections
    check themselves. Messages name ``section.field`` (the class name when ``section`` is None).
    """
    hints = typing.get_type_hints(type(instance), include_extras=True)
    problems = []
    for f in dataclasses.fields(instance):
        if dataclasses.is_dataclass(hints[f.name]):
            continue
        try:
            _coerce(
                getattr(instance, f.name), hints[f.name], f"{section or type(instance).__name__}.{f.name}"
            )
        except ConfigError as error:
            problems += error.problems
    return problems


def check_annotations(instance: Any, section: str | None = None) -> None:
    """Raise :class:`ConfigError` (a ``ValueError``), one line per :func:`annotation_problems`, for a
    ``__post_init__``."""
    if problems := annotation_problems(instance, section):
        raise ConfigError(problems)


def build_dataclass(cls: type[T], data: Any, where: str = "") -> T:
    """Build the frozen dataclass ``cls`` from a mapping, rejecting unknown keys and wrong types.

    Missing leaf keys take the dataclass defaults; a missing nested section is a problem (a section
    left out would silently take defaults written for another size). ``where`` is the dotted key
    prefix for messages. Every problem found, here and in nested sections, is raised at once.
    """
    prefix = f"{where}." if where else ""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'params'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = dataclasses.fields(cls)
    names = {f.name for f in fields}
    problems = [
        f"unknown key {prefix}{key} (known keys of {where or 'params'}: {', '.join(sorted(names))})"
        for key in sorted(set(map(str, data)) - names)
    ]
    problems += [
        f"{prefix}{f.name}: missing section"
        for f in fields
        if f.name not in data and dataclasses.is_dataclass(hints[f.name])
    ]
    kwargs = {}
    for name, value in data.items():
        if name not in names:
            continue
        try:
            kwargs[name] = _coerce(value, hints[name], f"{prefix}{name}")
        except ConfigError as error:
            problems += error.problems
    if problems:
        raise ConfigError(problems)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (ValueError, TypeError) as error:
        message = str(error)
        raise ConfigError(
            message if not where or message.startswith(where) else f"{where}: {message}"
        ) from None
