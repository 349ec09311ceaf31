"""Stage ``evaluate``: FIDk, FIDg, Divk, Divg, BAS for ground truth, the model and two baselines.

For every protocol in ``evaluate.protocols`` (default: ``bailando`` and ``corrected`` side by side),
the same code scores four rows: the ground-truth dances of the test pieces, the model's dances, random
VQ-VAE codes, and ground-truth dances of other music. Writes ``reports/metrics.json`` (DVC metrics), a
Markdown table shaped like the paper's, and plots (beats over time, metric bars beside the paper's).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import pyarrow.parquet as pq

from danceba.atomic import write_text_atomic
from danceba.config import load_params
from danceba.data.windows import load_joints, sequences_in_splits
from danceba.evaluation import (
    Dance,
    EvaluateConfig,
    evaluation_report,
    markdown_table,
    mismatched_dances,
    music_beat_onehots,
    read_dance_folder,
)
from danceba.report_plots import plot_beats, plot_metric_bars
from pipelines.stage import exit_with, log, numeric_leaves, run_stage, stage_parser, tracked


def ground_truth_dances(joints: Path, sequences: Path, names: list[str]) -> list[Dance]:
    """The ground-truth dances of the given test pieces."""
    index = pq.read_table(sequences, columns=["sequence", "music_id"]).to_pandas().set_index("sequence")
    motions = load_joints(joints, names)
    return [Dance(name, motions[name], index.loc[name, "music_id"]) for name in names]


def evaluate_generated(args: argparse.Namespace, config: EvaluateConfig) -> dict:
    """Score ground truth, the model and the baselines; write the report, the table and the plots."""
    names = sequences_in_splits(args.sequences, config.splits)
    ground_truth = ground_truth_dances(args.joints, args.sequences, names)
    rows = {
        "ground_truth": ground_truth,
        "model": read_dance_folder(args.generated / "model"),
        "random_codes": read_dance_folder(args.generated / "random_codes"),
        "mismatched_gt": mismatched_dances(ground_truth, config.baseline_seed),
    }
    report = evaluation_report(rows, args.gt_features, args.music_60fps, config.protocols)
    out = args.out_dir
    write_text_atomic(out / "metrics.json", json.dumps(report, indent=2) + "\n")
    write_text_atomic(out / "metrics.md", markdown_table(report))
    for protocol, protocol_rows in report.items():
        plot_metric_bars(out / "plots" / f"metrics_{protocol}.png", protocol_rows, protocol)
    beats = music_beat_onehots(args.music_60fps, [d.music_id for d in rows["model"]])
    for dance in rows["model"][: config.plot_pieces]:
        plot_beats(out / "plots" / f"beats_{dance.name}.png", dance, beats[dance.music_id])
    log.info("\n%s", markdown_table(report))
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = stage_parser(__doc__.splitlines()[0])
    for name in ("--joints", "--sequences", "--gt-features", "--music-60fps", "--generated", "--out-dir"):
        parser.add_argument(name, required=True, type=Path)

    def body(args: argparse.Namespace) -> None:
        config = load_params(args.params).evaluate
        inputs = [args.joints, args.sequences, args.gt_features, args.music_60fps, args.generated]
        outputs = [args.out_dir / "metrics.json", args.out_dir / "metrics.md", args.out_dir / "plots"]
        with tracked("evaluate", args, config, inputs=inputs, outputs=outputs) as run:
            report = evaluate_generated(args, config)
            run.log_metrics(dict(numeric_leaves(report)))
            for output in outputs:
                run.log_artifact(output)
            for video in sorted(args.generated.glob("*.mp4")):
                run.log_artifact(video, "videos")

    return run_stage(body, parser, argv)


if __name__ == "__main__":
    exit_with(main())
