"""What every stage entry point shares: argument parsing, logging, and a clean failure message."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from danceba.config import Params, load_params
from danceba.nested import to_plain_config
from danceba.progress import configure_logging

log = logging.getLogger("danceba")


def stage_parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the ``--params`` option every stage takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--params", default="params.yaml", help="the params.yaml to read (default: %(default)s)"
    )
    return parser


def run_stage(
    body: Callable[[argparse.Namespace, Params], None],
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None = None,
) -> int:
    """Parse arguments, load ``--params`` once, run ``body(args, params)`` with ``compute.threads``
    threads, turn expected errors into one clear line and exit code 1.

    Logging goes through ``tqdm.write`` (lines never land on a progress bar's line) and, under
    ``torchrun``, from rank 0 only (``danceba.progress.configure_logging``)."""
    configure_logging()
    args = parser.parse_args(argv)
    log.info("stage %s: started", Path(parser.prog).stem)  # read by danceba.run_progress (sweep lines)
    try:
        params = load_params(args.params)
        with stage_threads(params.compute.threads):
            body(args, params)
    except (ValueError, OSError, KeyError) as error:
        log.error("%s failed: %s", parser.prog, error)
        return 1
    return 0


@contextlib.contextmanager
def stage_threads(threads: int) -> Iterator[int]:
    """Run with ``threads`` (``compute.threads``) torch and BLAS/OpenMP threads (results depend on the
    count)."""
    import torch
    from threadpoolctl import threadpool_limits

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield threads
    finally:
        torch.set_num_threads(previous)


def is_main_process() -> bool:
    """False on the non-zero ranks of a ``torchrun`` launch (only rank 0 writes stage outputs)."""
    return int(os.environ.get("RANK", "0")) == 0


def tracked(
    stage: str,
    args: argparse.Namespace,
    params: Params,
    section: Any,
    *,
    inputs: Sequence[Path],
    outputs: Sequence[Path],
    seed: int | None = None,
) -> contextlib.AbstractContextManager:
    """The stage's MLflow run (``danceba.tracking.stage_run``), on rank 0 only; a no-op run elsewhere.

    The project root (store location, dvc.lock) is the folder of ``--params``.
    """
    from danceba.tracking import NullStageRun, stage_run

    if not is_main_process():
        return contextlib.nullcontext(NullStageRun())
    params_path = Path(args.params).resolve()
    return stage_run(
        stage,
        to_plain_config(section, stage),
        inputs=list(inputs),
        outputs=list(outputs),
        seed=seed,
        data_source=params.data.source,
        project_root=params_path.parent,
    )


def export_provenance(args: argparse.Namespace, inputs: Sequence[Path], stage_module: str) -> dict[str, Any]:
    """What a model export records about its origin, all determined by its inputs: the DVC hash of
    every input (keyed as in dvc.yaml) and the digest of the code ``stage_module`` can run. Run ids, times and git state stay in MLflow,
    so re-running an unchanged stage writes the same bytes."""
    from danceba.provenance import code_digest
    from danceba.tracking import dvc_hash, path_key

    root = Path(args.params).resolve().parent
    return {
        "inputs": {path_key(path, root): dvc_hash(Path(path)) for path in inputs},
        "code": code_digest(stage_module),
    }


def exit_with(code: int) -> None:
    """``sys.exit`` with the stage's return code."""
    sys.exit(code)
