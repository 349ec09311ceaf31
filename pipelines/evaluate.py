"""Stage ``evaluate``: can the evaluation tell whether the model's dances follow the music?

For every protocol in ``evaluate.protocols`` (default: ``bailando`` and ``corrected`` side by side),
the same code scores every row: the ground-truth dances of the test pieces, the model's dances, and
control rows: from the generate stage (read when their folder exists) the model fed another song's
music (``model_sham_music``) and the VQ-VAE reconstruction of the ground truth (``reconstruction``),
and random VQ-VAE codes; built here from the ground truth, its dances against other music
(``mismatched_gt``), half a beat late (``gt_half_beat_late``), white-noise ``jitter`` and a ``still``
pose. Writes ``reports/metrics.json`` (DVC metrics, with the protocol card under ``"protocol"``),
``reports/metrics.md`` (verdict, rhythm and FID tables with bootstrap intervals) and plots (beats over
time, metric bars beside the paper's, BAS excess per row).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import pyarrow.parquet as pq

from danceba.atomic import write_text_atomic
from danceba.config import Params
from danceba.control_rows import half_beat_late_dances, jitter_dances, mismatched_dances, still_dances
from danceba.data.windows import load_joints, sequences_in_splits
from danceba.evaluate_config import EvaluateConfig
from danceba.evaluation import (
    PROTOCOL_CARD_KEY,
    Dance,
    evaluation_report,
    gt_feature_sequences,
    music_beat_onehots,
    read_dance_folder,
)
from danceba.metrics_markdown import markdown_table, music_verdict
from danceba.nested import number_leaves
from danceba.protocol_card import protocol_card
from danceba.report_plots import plot_bas_excess, plot_beats, plot_metric_bars
from pipelines.stage import exit_with, log, run_stage, stage_parser, tracked

GENERATED_CONTROLS = ("model_sham_music", "reconstruction")  # optional folders of the generate stage


def ground_truth_dances(joints: Path, sequences: Path, names: list[str]) -> list[Dance]:
    """The ground-truth dances of the given test pieces."""
    index = pq.read_table(sequences, columns=["sequence", "music_id"]).to_pandas().set_index("sequence")
    motions = load_joints(joints, names)
    return [Dance(name, motions[name], index.loc[name, "music_id"]) for name in names]


def evaluation_rows(
    generated: Path, ground_truth: list[Dance], beats: dict, config: EvaluateConfig
) -> dict[str, list[Dance]]:
    """Every row, in report order: ground truth, model, the generated controls present, random codes,
    then the controls built from the ground truth."""
    rows = {"ground_truth": ground_truth, "model": read_dance_folder(generated / "model")}
    for row in GENERATED_CONTROLS:
        if (generated / row).is_dir():
            rows[row] = read_dance_folder(generated / row)
        else:
            log.warning("no %s folder under %s: that control row is left out", row, generated)
    rows["random_codes"] = read_dance_folder(generated / "random_codes")
    rows["mismatched_gt"] = mismatched_dances(ground_truth, config.baseline_seed)
    rows["gt_half_beat_late"] = half_beat_late_dances(ground_truth, beats)
    rows["jitter"] = jitter_dances(ground_truth, config.jitter_noise_m, config.baseline_seed)
    rows["still"] = still_dances(ground_truth, config.still_noise_m, config.baseline_seed)
    return rows


def evaluate_generated(args: argparse.Namespace, config: EvaluateConfig) -> dict:
    """Score every row; write the report (with its protocol card), the tables and the plots."""
    names = sequences_in_splits(args.sequences, config.splits)
    ground_truth = ground_truth_dances(args.joints, args.sequences, names)
    beats = music_beat_onehots(args.music_60fps, [d.music_id for d in ground_truth])
    rows = evaluation_rows(args.generated, ground_truth, beats, config)
    report = evaluation_report(rows, args.gt_features, args.music_60fps, config, test_sequences=names)
    with_features = gt_feature_sequences(args.gt_features)
    sizes = {"": len(with_features), "_testref": len(with_features & set(names))}
    card = protocol_card(config, rows, sizes)
    out = args.out_dir
    write_text_atomic(out / "metrics.json", json.dumps({**report, PROTOCOL_CARD_KEY: card}, indent=2) + "\n")
    write_text_atomic(out / "metrics.md", markdown_table(report, card))
    for protocol, protocol_rows in report.items():
        plot_metric_bars(out / "plots" / f"metrics_{protocol}.png", protocol_rows, protocol)
        plot_bas_excess(out / "plots" / f"bas_excess_{protocol}.png", protocol_rows, protocol)
    model_beats = music_beat_onehots(args.music_60fps, [d.music_id for d in rows["model"]])
    for dance in rows["model"][: config.plot_pieces]:
        plot_beats(out / "plots" / f"beats_{dance.name}.png", dance, model_beats[dance.music_id])
    for protocol, protocol_rows in report.items():
        log.info("%s: %s", protocol, music_verdict(protocol_rows))
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = stage_parser(__doc__.splitlines()[0])
    for name in ("--joints", "--sequences", "--gt-features", "--music-60fps", "--generated", "--out-dir"):
        parser.add_argument(name, required=True, type=Path)

    def body(args: argparse.Namespace, params: Params) -> None:
        config = params.evaluate
        inputs = [args.joints, args.sequences, args.gt_features, args.music_60fps, args.generated]
        outputs = [args.out_dir / "metrics.json", args.out_dir / "metrics.md", args.out_dir / "plots"]
        with tracked("evaluate", args, params, config, inputs=inputs, outputs=outputs) as run:
            report = evaluate_generated(args, config)
            run.log_metrics(number_leaves(report, finite_only=True))
            for output in outputs:
                run.log_artifact(output)
            for video in sorted(args.generated.glob("*.mp4")):
                run.log_artifact(video, "videos")

    return run_stage(body, parser, argv)


if __name__ == "__main__":
    exit_with(main())
