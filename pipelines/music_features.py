"""Stage ``music_features``: per-frame music features at 60 fps and 7.5 fps, once per music id.

The reference recomputes the features for every sequence; AIST++ has 60 music pieces for 1,408
sequences, so this stage computes each music id once (decoding the file once for both rates) and
writes two Parquet tables keyed by music id (schema in ``danceba.tables``).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from danceba import tables
from danceba.config import MusicFeaturesConfig, Params
from danceba.data import aistpp
from danceba.features import music
from danceba.features.rhythm import token_condition
from pipelines.stage import exit_with, run_stage, stage_parser, tracked

MOTION_FPS = music.SAMPLE_RATE_60FPS / music.HOP_LENGTH
TOKEN_FPS = music.SAMPLE_RATE_7P5FPS / music.HOP_LENGTH


def music_ids(sequences: Path) -> list[str]:
    """The distinct music ids used by the sequences in the index."""
    return sorted(set(pq.read_table(sequences, columns=["music_id"]).column("music_id").to_pylist()))


def features_at_both_rates(
    path: Path, kind: str, music_id: str, token_rhythm: str = "none"
) -> tuple[np.ndarray, np.ndarray]:
    """(T60, D) and (T7.5, D; D + 21 with ``token_rhythm: append``; 21 with ``only``) float32 features."""
    if kind == "bailando438":
        both = music.music_features_for_motion(path)
        return both.at_60fps, token_condition(both.at_7p5fps, both.at_60fps, token_rhythm)
    audio, rate = music.read_audio(path)
    bpm = aistpp.music_tempo_bpm(music_id)
    return tuple(
        music.edge_features(music.resample(audio, rate, sample_rate), sample_rate, fps, bpm_hint=bpm)
        for sample_rate, fps in ((music.SAMPLE_RATE_60FPS, MOTION_FPS), (music.SAMPLE_RATE_7P5FPS, TOKEN_FPS))
    )


def write_music_features(
    raw: Path, sequences: Path, out_motion: Path, out_token: Path, config: MusicFeaturesConfig
) -> None:
    """Compute the features of every music id and write both tables."""
    layout = aistpp.AistppLayout(raw)
    ids = music_ids(sequences)
    token_rows: list[pa.Table] = []

    def motion_rate_groups() -> Iterator[pa.Table]:
        for music_id in tqdm(ids, desc="music features", unit="music"):
            at_motion, at_token = features_at_both_rates(
                layout.wav_path(music_id), config.kind, music_id, config.token_rhythm
            )
            token_rows.append(tables.frame_table("music_id", music_id, "features", at_token))
            yield tables.frame_table("music_id", music_id, "features", at_motion)

    columns = "MFCC 0-19, dMFCC 20-39, chroma 40-51, onset envelope 52, beat one-hot 53, tempogram 54-437"
    if config.kind == "edge35":
        columns = "onset envelope 0, MFCC 1-20, chroma CENS 21-32, onset peak 33, beat one-hot 34"
    metadata = {"kind": config.kind, "columns": columns, "hop_length": music.HOP_LENGTH}
    tables.write_grouped_table(out_motion, motion_rate_groups(), {**metadata, "fps": MOTION_FPS})
    if config.token_rhythm != "none":
        first = 0 if config.token_rhythm == "only" else 438
        rhythm = f"token rhythm {first}-{first + 20} (danceba.features.rhythm)"
        columns = rhythm if config.token_rhythm == "only" else f"{columns}, {rhythm}"
    token_metadata = {**metadata, "columns": columns, "fps": TOKEN_FPS, "token_rhythm": config.token_rhythm}
    tables.write_grouped_table(out_token, iter(token_rows), token_metadata)


def main(argv: Sequence[str] | None = None) -> int:
    parser = stage_parser(__doc__.splitlines()[0])
    parser.add_argument("--raw", required=True, type=Path)
    parser.add_argument("--sequences", required=True, type=Path)
    parser.add_argument("--out-motion-fps", required=True, type=Path)
    parser.add_argument("--out-token-fps", required=True, type=Path)

    def body(args: argparse.Namespace, params: Params) -> None:
        config = params.music_features
        outputs = [args.out_motion_fps, args.out_token_fps]
        with tracked(
            "music_features", args, params, config, inputs=[args.raw, args.sequences], outputs=outputs
        ):
            write_music_features(args.raw, args.sequences, args.out_motion_fps, args.out_token_fps, config)

    return run_stage(body, parser, argv)


if __name__ == "__main__":
    exit_with(main())
