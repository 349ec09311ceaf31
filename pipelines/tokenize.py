"""Stage ``tokenize``: the frozen VQ-VAE encodes every window once into ``tokens.parquet``; the GPT's music
(with the tempo-stretched training songs) goes to ``token_music.parquet``."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from danceba.atomic import write_text_atomic
from danceba.config import Params
from danceba.motion_tokens import write_tokens
from danceba.trainers.vqvae import load_vqvae
from pipelines.stage import exit_with, log, run_stage, stage_parser, tracked


def main(argv: Sequence[str] | None = None) -> int:
    parser = stage_parser(__doc__.splitlines()[0])
    parser.add_argument("--vqvae", required=True, type=Path)
    parser.add_argument("--joints", required=True, type=Path)
    parser.add_argument("--sequences", required=True, type=Path)
    parser.add_argument("--music-60fps", required=True, type=Path, help="music_features_60fps.parquet")
    parser.add_argument("--music", required=True, type=Path, help="music_features_7p5fps.parquet")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument(
        "--token-music", required=True, type=Path, help="the GPT's music: token_music.parquet"
    )
    parser.add_argument("--summary", required=True, type=Path)

    def body(args: argparse.Namespace, params: Params) -> None:
        config = params.tokenize
        inputs = [args.vqvae, args.joints, args.sequences, args.music_60fps, args.music]
        outputs = [args.out, args.token_music]
        with tracked("tokenize", args, params, config, inputs=inputs, outputs=outputs) as run:
            vqvae = load_vqvae(args.vqvae)
            counts = write_tokens(
                vqvae,
                args.joints,
                args.sequences,
                args.music_60fps,
                args.music,
                args.out,
                args.token_music,
                config,
            )
            log.info("token windows per split: %s", counts)
            write_text_atomic(args.summary, json.dumps({"windows": counts}, indent=2) + "\n")
            run.log_metrics({f"windows.{split}": n for split, n in counts.items()})

    return run_stage(body, parser, argv)


if __name__ == "__main__":
    exit_with(main())
