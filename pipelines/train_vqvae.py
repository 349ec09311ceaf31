"""Stage ``train_vqvae``: the pose VQ-VAE (SepVQVAE, then its root-velocity decoder).

Runs under plain ``python`` or ``torchrun`` (DDP; only rank 0 writes). Re-running after a kill resumes
from the run folder under ``--runs`` (keyed by the config's hash, outside DVC's outputs so a resume
survives ``dvc repro`` removing the outputs).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from danceba.atomic import write_text_atomic
from danceba.config import Params
from danceba.nested import number_leaves
from danceba.tracking_models import vqvae_signature
from danceba.trainers.vqvae import export_vqvae, train_vqvae
from pipelines.stage import (
    exit_with,
    export_provenance,
    is_main_process,
    run_stage,
    stage_parser,
    tracked,
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = stage_parser(__doc__.splitlines()[0])
    parser.add_argument("--joints", required=True, type=Path)
    parser.add_argument("--sequences", required=True, type=Path)
    parser.add_argument("--runs", required=True, type=Path, help="resumable run folders (checkpoints)")
    parser.add_argument("--model-out", required=True, type=Path, help="the trained VQ-VAE for later stages")
    parser.add_argument("--reports", required=True, type=Path, help="folder for metrics and plots")

    def body(args: argparse.Namespace, params: Params) -> None:
        config = params.train_vqvae
        inputs = [args.joints, args.sequences]
        seed = config.stage1.train.seed
        with tracked(
            "train_vqvae", args, params, config, inputs=inputs, outputs=[args.model_out], seed=seed
        ) as run:
            result = train_vqvae(
                args.joints, args.sequences, config, args.runs, args.reports, run.lineage, run.on_log
            )
            if is_main_process():
                export_vqvae(
                    args.model_out,
                    result.model,
                    config.model,
                    result.metrics,
                    export_provenance(args, inputs, "pipelines.train_vqvae"),
                )
                write_text_atomic(args.reports / "metrics.json", json.dumps(result.metrics, indent=2) + "\n")
                run.log_metrics(number_leaves(result.metrics, finite_only=True))
                run.log_artifact(args.reports)
                run.register_model(args.model_out, "danceba-vqvae")
                run.log_model(result.model, "vqvae", vqvae_signature(config.model))

    return run_stage(body, parser, argv)


if __name__ == "__main__":
    exit_with(main())
