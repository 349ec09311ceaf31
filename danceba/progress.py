"""What a person sees while something runs: log lines that never tear progress bars, rank-0 logging.

:func:`configure_logging` installs one handler that writes through ``tqdm.write``, so a log record
emitted while a bar is drawn clears the bar, prints the record on its own line and redraws the bar
below it (a plain ``StreamHandler`` would append the record to the bar's line). Entry points call it
once: the stage scripts (``pipelines.stage.run_stage``) and the ``danceba`` command line.

Under ``torchrun`` every process runs the same entry point; only rank 0 logs (and draws bars, see
``danceba.train.loop``). The other ranks keep errors only, prefixed with their rank, so a failure on
rank 1 is still seen but its copy of rank 0's messages (and of metrics only rank 0 computes) is not.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from tqdm import tqdm

STAGE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_HANDLER_NAME = "danceba-tqdm"


class TqdmHandler(logging.Handler):
    """A logging handler that writes each record with ``tqdm.write`` to the current ``sys.stderr``."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # as logging.StreamHandler does: never let logging break the program
            self.handleError(record)


def process_rank() -> int:
    """This process's global rank under ``torchrun`` (``RANK``), 0 otherwise."""
    try:
        return int(os.environ.get("RANK", "0") or 0)
    except ValueError:
        return 0


def configure_logging(
    level: int = logging.INFO, fmt: str = STAGE_FORMAT, logger: str = "", rank: int | None = None
) -> logging.Logger:
    """Route ``logger`` (default: the root logger) through :class:`TqdmHandler` at ``level`` on rank 0,
    at ``ERROR`` (with a ``[rank N]`` prefix) on the other ranks. Idempotent: a second call replaces
    the handler it installed."""
    rank = process_rank() if rank is None else rank
    target = logging.getLogger(logger)
    for handler in list(target.handlers):
        if handler.get_name() == _HANDLER_NAME or (
            not logger and type(handler) is logging.StreamHandler  # basicConfig's, which tears bars
        ):
            target.removeHandler(handler)
    handler = TqdmHandler()
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(logging.Formatter(fmt if rank == 0 else f"[rank {rank}] {fmt}"))
    target.addHandler(handler)
    target.setLevel(level if rank == 0 else logging.ERROR)
    return target


def progress_bar(*args: Any, **kwargs: Any) -> tqdm:
    """A ``tqdm`` bar on stderr, drawn on rank 0 only (pass ``disable=True`` to hide it elsewhere too)."""
    kwargs.setdefault("file", sys.stderr)
    kwargs["disable"] = kwargs.get("disable", False) or process_rank() != 0
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(*args, **kwargs)
