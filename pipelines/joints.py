"""Stage ``joints``: SMPL poses -> 24 joint positions at 60 fps, plus the sequence index.

Reads every motion in the raw AIST++ layout (the ground-truth reference set of the metrics is all
non-ignored motions, not only the crossmodal splits), runs forward kinematics on the SMPL rest
skeleton with ``transl = smpl_trans / smpl_scaling``, and writes ``joints.parquet`` (one row group
per sequence), ``sequences.parquet`` (name parts, split, ignored flag, length) and a summary JSON
(DVC metrics).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
from tqdm import tqdm

from danceba import tables
from danceba.atomic import write_text_atomic
from danceba.config import JointsConfig, Params
from danceba.data import aistpp
from danceba.motion.skeleton import forward_kinematics
from danceba.nested import number_leaves
from pipelines.stage import exit_with, run_stage, stage_parser, tracked


def sequence_splits(layout: aistpp.AistppLayout) -> dict[str, str]:
    """{sequence: "train" | "val" | "test"} from the three crossmodal split files."""
    return {name: split for split in aistpp.SPLIT_NAMES for name in aistpp.read_split(layout, split)}


def selected_sequences(layout: aistpp.AistppLayout, config: JointsConfig) -> list[str]:
    """Every motion in ``motions/``, minus the ignore list when ``drop_ignored``."""
    names = sorted(path.stem for path in layout.motions_dir.glob("*.pkl"))
    if not names:
        raise ValueError(f"{layout.motions_dir}: no motion .pkl files")
    if config.drop_ignored:
        ignored = aistpp.read_ignore_list(layout)
        names = [name for name in names if name not in ignored]
    return names


def sequence_joints(layout: aistpp.AistppLayout, name: str) -> np.ndarray:
    """(T, 72) float32 joint positions of one sequence (metres, y-up)."""
    motion = aistpp.read_motion_pkl(layout.motion_path(name))
    joints = forward_kinematics(motion.poses, motion.trans_normalised)
    return joints.reshape(len(joints), 72).astype(np.float32)


def write_joints_tables(raw: Path, joints_out: Path, sequences_out: Path, config: JointsConfig) -> dict:
    """Run the stage; return the dataset summary written as metrics."""
    layout = aistpp.AistppLayout(raw)
    names = selected_sequences(layout, config)
    splits = sequence_splits(layout)
    ignored = aistpp.read_ignore_list(layout)
    lengths: dict[str, int] = {}

    def groups() -> Iterator[pa.Table]:
        for name in tqdm(names, desc="joints", unit="seq"):
            joints = sequence_joints(layout, name)
            lengths[name] = len(joints)
            yield tables.frame_table("sequence", name, "joints", joints)

    metadata = {"fps": config.fps, "units": "metres", "up_axis": "y", "layout": "24 SMPL joints x (x, y, z)"}
    tables.write_grouped_table(joints_out, groups(), metadata)
    index = sequence_index(names, splits, ignored, lengths, config.fps)
    tables.write_table(sequences_out, index, {"fps": config.fps})
    return dataset_summary(index)


def sequence_index(
    names: list[str], splits: dict[str, str], ignored: set[str], lengths: dict[str, int], fps: int
) -> pa.Table:
    """The per-sequence index table (see danceba.tables for the schema)."""
    parts = [aistpp.parse_sequence_name(name) for name in names]
    n_frames = np.array([lengths[name] for name in names], dtype=np.int32)
    return pa.table(
        {
            "sequence": names,
            "genre": [p.genre for p in parts],
            "situation": [p.situation for p in parts],
            "camera": [p.camera for p in parts],
            "dancer": [p.dancer for p in parts],
            "music_id": [p.music_id for p in parts],
            "choreography": [p.choreography for p in parts],
            "split": [splits.get(name, "none") for name in names],
            "ignored": [name in ignored for name in names],
            "n_frames": n_frames,
            "seconds": (n_frames / fps).astype(np.float32),
        }
    )


def dataset_summary(index: pa.Table) -> dict:
    """Counts per split, music pieces, genres and total duration."""
    splits = Counter(index.column("split").to_pylist())
    return {
        "sequences": index.num_rows,
        "sequences_per_split": dict(sorted(splits.items())),
        "music_pieces": len(set(index.column("music_id").to_pylist())),
        "genres": len(set(index.column("genre").to_pylist())),
        "hours": round(float(np.sum(index.column("seconds").to_numpy())) / 3600, 4),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = stage_parser(__doc__.splitlines()[0])
    parser.add_argument("--raw", required=True, type=Path)
    parser.add_argument("--joints", required=True, type=Path)
    parser.add_argument("--sequences", required=True, type=Path)
    parser.add_argument("--summary", required=True, type=Path)

    def body(args: argparse.Namespace, params: Params) -> None:
        config = params.joints
        outputs = [args.joints, args.sequences, args.summary]
        with tracked("joints", args, params, config, inputs=[args.raw], outputs=outputs) as run:
            summary = write_joints_tables(args.raw, args.joints, args.sequences, config)
            write_text_atomic(args.summary, json.dumps(summary, indent=2) + "\n")
            run.log_metrics(number_leaves(summary, finite_only=True))

    return run_stage(body, parser, argv)


if __name__ == "__main__":
    exit_with(main())
