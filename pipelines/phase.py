"""Stage ``phase``: STFT phase of the 7.5 fps music features, as Danceba's PRE consumes it.

The model computes PRE's phase itself from each music window (the official computation); this
stage writes the same phase per music id to ``phase.parquet`` for inspection and plots, and for the
per-channel (STFT over time) variant. Schema in ``danceba.tables``.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
from tqdm import tqdm

from danceba import tables
from danceba.config import PhaseConfig, load_params
from danceba.features.phase import phase_table
from pipelines.stage import exit_with, run_stage, stage_parser, tracked


def phase_rows(music_id: str, music_7p5fps: np.ndarray, config: PhaseConfig) -> pa.Table:
    """One music id's phase table, one row per phase frame."""
    phase = phase_table(
        music_7p5fps,
        mode=config.mode,
        window=config.window,
        n_fft=config.n_fft,
        hop_length=config.hop_length,
        channel_n_fft=config.channel_n_fft,
        channel_hop_length=config.channel_hop_length,
    )
    if phase.ndim == 3:  # official: (n_windows, F, bins)
        n_windows, rows, bins = phase.shape
        window = np.repeat(np.arange(n_windows, dtype=np.int32), rows)
        row = np.tile(np.arange(rows, dtype=np.int32), n_windows)
        phase = phase.reshape(n_windows * rows, bins)
    else:  # per_channel: (T, C * bins)
        window = np.arange(len(phase), dtype=np.int32)
        row = np.zeros(len(phase), dtype=np.int32)
    return tables.frame_table("music_id", music_id, "phase", phase, window=window, row=row)


def write_phase_table(music_path: Path, out: Path, config: PhaseConfig) -> None:
    """Compute the phase of every music id in ``music_path`` and write ``out``."""

    def groups() -> Iterator[pa.Table]:
        keys = tables.group_keys(music_path)
        for music_id, features in tqdm(
            tables.iter_groups(music_path, "features"), total=len(keys), desc="phase", unit="music"
        ):
            yield phase_rows(music_id, features, config)

    metadata = {
        "mode": config.mode,
        "window": config.window,
        "n_fft": config.n_fft,
        "hop_length": config.hop_length,
        "units": "radians",
    }
    tables.write_grouped_table(out, groups(), metadata)


def main(argv: Sequence[str] | None = None) -> int:
    parser = stage_parser(__doc__.splitlines()[0])
    parser.add_argument("--music", required=True, type=Path, help="music_features_7p5fps.parquet")
    parser.add_argument("--out", required=True, type=Path)

    def body(args: argparse.Namespace) -> None:
        config = load_params(args.params).phase
        with tracked("phase", args, config, inputs=[args.music], outputs=[args.out]):
            write_phase_table(args.music, args.out, config)

    return run_stage(body, parser, argv)


if __name__ == "__main__":
    exit_with(main())
