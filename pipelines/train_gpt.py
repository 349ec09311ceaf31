"""Stage ``train_gpt``: the cross-conditional GPT (Danceba or Bailando stack) on motion tokens.

Runs under plain ``python`` or ``torchrun`` (DDP; only rank 0 writes); re-running after a kill resumes
from the run folder under ``--runs`` (keyed by the config's hash).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from danceba.atomic import write_text_atomic
from danceba.config import Params
from danceba.nested import number_leaves
from danceba.tracking_models import gpt_signature
from danceba.trainers.gpt import export_gpt, train_gpt
from pipelines.stage import (
    exit_with,
    export_provenance,
    is_main_process,
    log,
    run_stage,
    stage_parser,
    tracked,
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = stage_parser(__doc__.splitlines()[0])
    parser.add_argument("--tokens", required=True, type=Path)
    parser.add_argument("--music", required=True, type=Path, help="token_music.parquet (tokenize)")
    parser.add_argument("--runs", required=True, type=Path, help="resumable run folders (checkpoints)")
    parser.add_argument("--model-out", required=True, type=Path)
    parser.add_argument("--reports", required=True, type=Path)

    def body(args: argparse.Namespace, params: Params) -> None:
        config = params.train_gpt
        inputs, seed = [args.tokens, args.music], config.train.seed
        with tracked(
            "train_gpt", args, params, config, inputs=inputs, outputs=[args.model_out], seed=seed
        ) as run:
            model, _, metrics = train_gpt(
                args.tokens, args.music, config, args.runs, args.reports, run.lineage, run.on_log
            )
            log.info("GPT: val CE %.3f nats (uniform %.3f)", metrics["final_val_ce"], metrics["uniform_ce"])
            if is_main_process():
                export_gpt(
                    args.model_out,
                    model,
                    config.model,
                    metrics,
                    export_provenance(args, inputs, "pipelines.train_gpt"),
                )
                write_text_atomic(args.reports / "metrics.json", json.dumps(metrics, indent=2) + "\n")
                run.log_metrics(number_leaves(metrics, finite_only=True))
                run.log_artifact(args.reports)
                run.register_model(args.model_out, "danceba-gpt")
                run.log_model(model, "gpt", gpt_signature(config.model))

    return run_stage(body, parser, argv)


if __name__ == "__main__":
    exit_with(main())
