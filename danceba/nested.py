"""Nested values made plain or flat, and files made into digests: the one dataclass-to-plain-data
converter, the one dotted-key flattener and the one file hasher the package uses (params sections,
metrics, checkpoint configs, MLflow values; run identities, downloads). Standard library only."""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any


def to_plain_config(value: Any, where: str = "config") -> Any:
    """A dataclass / mapping / sequence as nested dicts and lists of str, int, float, bool, None.

    Anything else raises ``TypeError`` naming where it sits (``where`` is the root's name)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_plain_config(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain_config(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, str | int | float | bool | type(None)):
        return value
    raise TypeError(
        f"{where}: {type(value).__name__} is not a plain config value (str, int, float, bool, None)"
    )


def flatten(value: Mapping[str, Any] | Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings (and dataclass instances) -> ``{"a.b.c": leaf}`` in insertion order; lists and
    every other value are leaves. An empty mapping contributes no key."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if not isinstance(value, Mapping):
        return {prefix.removesuffix("."): value}
    flat: dict[str, Any] = {}
    for key, item in value.items():
        flat.update(flatten(item, f"{prefix}{key}."))
    return flat


def number_leaves(value: Mapping[str, Any], finite_only: bool = False) -> dict[str, float]:
    """The numeric leaves of :func:`flatten` (bools and text left out) as floats; ``finite_only`` also
    leaves out NaN and infinities (MLflow refuses them)."""
    return {
        key: float(leaf)
        for key, leaf in flatten(value).items()
        if isinstance(leaf, int | float) and not isinstance(leaf, bool)
        if not finite_only or math.isfinite(leaf)
    }


def file_digest(paths: Iterable[str | Path], algorithm: str = "sha256") -> str:
    """Hex digest of the contents of ``paths`` read one after another (1 MiB at a time)."""
    digest = hashlib.new(algorithm)
    for path in paths:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
