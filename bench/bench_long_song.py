"""Benchmark: a whole song, danced as a user would, and whether the dance holds up over its length.

Synthesises a song of ``--minutes`` (the embedded data's drums, bass and chords, at one tempo), runs
``danceba generate`` on it with the trained models (``make run`` first), and reports the seconds of
compute per minute of music and, per 20 s segment (``danceba.long_dance``), the feet's height at contact,
the root's drift, joint speed against the first segment and the largest frame-to-frame joint jump beside
the training motions' 99.9th percentile of the same figure.

    .venv/bin/python -m bench.bench_long_song --minutes 5 --out bench/out/long_song.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

from danceba.atomic import write_text_atomic
from danceba.data.mini_music import synthesize_music
from danceba.data.windows import load_joints, sequences_in_splits
from danceba.long_dance import frame_jump_percentile, segment_stats, segment_table

FPS = 60
SAMPLE_RATE = 30720


def training_motions(joints: Path, sequences: Path) -> list[np.ndarray]:
    """The train split's joints (T, 24, 3) of the project's tables."""
    return list(load_joints(joints, sequences_in_splits(sequences, ["train"])).values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--genre", default="gBR")
    parser.add_argument("--bpm", type=float, default=120.0)
    parser.add_argument("--out", type=Path, default=Path("bench/out/long_song.json"))
    parser.add_argument("--data", type=Path, default=Path("data"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        song = Path(tmp) / "long_song.wav"
        audio = synthesize_music(
            args.genre, args.bpm, 60 * args.minutes, SAMPLE_RATE, np.random.default_rng(0)
        )
        soundfile.write(song, audio, SAMPLE_RATE)
        command = [
            sys.executable,
            "-m",
            "danceba.cli",
            "generate",
            str(song),
            "--out",
            str(Path(tmp) / "out"),
        ]
        command += ["--format", "npz", "--genre", args.genre]  # the decoding of params.yaml, cached
        started = time.perf_counter()
        subprocess.run(command, check=True)
        wall = time.perf_counter() - started
        joints = np.load(Path(tmp) / "out" / "long_song.npz")["joints"]
    segments = segment_stats(joints, FPS)
    ceiling = frame_jump_percentile(
        training_motions(args.data / "joints.parquet", args.data / "sequences.parquet")
    )
    result = {
        "minutes_of_music": args.minutes,
        "dance_seconds": len(joints) / FPS,
        "wall_s": wall,
        "seconds_per_minute_of_music": wall / args.minutes,
        "training_frame_jump_p99_9_m": ceiling,
        "max_frame_jump_m": max(s.max_frame_jump_m for s in segments),
        "segments": segment_table(segments),
    }
    write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "segments"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
