"""What every stage entry point shares: argument parsing, logging, and a clean failure message."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

log = logging.getLogger("danceba")


def stage_parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the ``--params`` option every stage takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--params", default="params.yaml", help="the params.yaml to read (default: %(default)s)"
    )
    return parser


def run_stage(
    body: Callable[[argparse.Namespace], None],
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None = None,
) -> int:
    """Parse arguments, run ``body``, turn expected errors into one clear line and exit code 1."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parser.parse_args(argv)
    try:
        body(args)
    except (ValueError, OSError, KeyError) as error:
        log.error("%s failed: %s", parser.prog, error)
        return 1
    return 0


def is_main_process() -> bool:
    """False on the non-zero ranks of a ``torchrun`` launch (only rank 0 writes stage outputs)."""
    return int(os.environ.get("RANK", "0")) == 0


def exit_with(code: int) -> None:
    """``sys.exit`` with the stage's return code."""
    sys.exit(code)
