"""Paths of the project the tests read: the checkout's root, the embedded default's params, and the stage
commands of ``dvc.yaml``.

Tests that build tiny configurations start from ``EMBEDDED_PARAMS`` (``configs/embedded.yaml``), not
from ``params.yaml``, so they pass whichever named configuration ``make config`` last wrote."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
EMBEDDED_PARAMS = ROOT / "configs" / "embedded.yaml"
DVC_YAML = ROOT / "dvc.yaml"


def stage_argv(stage: str, paths: Mapping[str, Path]) -> list[str]:
    """The arguments ``dvc.yaml`` gives ``stage``'s entry point (``python -m pipelines.<stage> ...``), with
    each project path replaced by the test's ``paths[project path]``, so stage tests run the command DVC
    runs. A path argument missing from ``paths`` raises KeyError (a new stage input the test must place)."""
    command = shlex.split(yaml.safe_load(DVC_YAML.read_text(encoding="utf-8"))["stages"][stage]["cmd"])
    entry = command.index("-m") + 1
    if command[entry] != f"pipelines.{stage}":
        raise ValueError(f"dvc.yaml: stage {stage} runs {command[entry]}, not pipelines.{stage}")
    arguments = command[entry + 1 :]
    flags, values = arguments[::2], arguments[1::2]
    if len(flags) != len(values) or not all(flag.startswith("--") for flag in flags):
        raise ValueError(f"dvc.yaml: stage {stage}'s arguments are not --flag value pairs: {arguments}")
    missing = sorted(value for value in values if value not in paths)
    if missing:
        raise KeyError(f"dvc.yaml: stage {stage} needs {missing}: give the test's path for each")
    return [part for flag, value in zip(flags, values, strict=True) for part in (flag, str(paths[value]))]
