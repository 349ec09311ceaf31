"""Genre control, measured: genre-conditioned GPTs against unconditioned ones (``danceba.genre_control``).

    python -m pipelines.genre_control --conditioned runs/genre/s0/gpt.pt ... --unconditioned data/models/gpt.pt ...

Writes ``<out>/genre_control.json`` and ``.md``: the classifier's held-out accuracy on ground truth, chance,
and per group (conditioned / unconditioned) every measure of ``danceba.genre_control`` per model and as
mean ± std [95 % Student-t interval over models (seeds)]. Data paths default to the DVC outputs; generation
follows ``generate.*`` of ``--params`` (the ``generate`` stage's decoding), evaluation ``evaluate.*``.
A genre-conditioned GPT is one trained with ``train_gpt.model.genre_conditioning: true`` (README, "Genre").
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from danceba.ablation_markdown import interval_cell, markdown_table
from danceba.ablation_report import describe_over_seeds
from danceba.atomic import write_text_atomic
from danceba.config import Params
from danceba.data.windows import load_joints, read_sequence_index
from danceba.evaluation import music_beat_onehots
from danceba.generation.dances import genre_first_codes
from danceba.genre_classifier import accuracy, fit_genre_classifier
from danceba.genre_control import genre_requests, measure_genre_control
from danceba.genres import sequence_genre
from danceba.nested import to_plain_config
from danceba.trainers.gpt import load_gpt
from danceba.trainers.vqvae import load_vqvae
from pipelines.generate import test_songs
from pipelines.stage import exit_with, log, run_stage, stage_parser

# (group, which GPTs, whose first codes): the genre's most frequent ones, or the piece's own
GROUPS = (
    ("conditioned", "conditioned", "genre"),
    ("unconditioned", "unconditioned", "genre"),
    ("conditioned, piece's first codes", "conditioned", "piece"),
    ("unconditioned, piece's first codes", "unconditioned", "piece"),
)
MEASURES = (
    ("requested_accuracy", "requested genre accuracy ↑"),
    ("other_genre_accuracy", "… when ≠ the music's genre ↑"),
    ("own_genre_accuracy", "… when = the music's genre"),
    ("bas_excess", "BAS excess ↑"),
    ("other_genre_bas_excess", "BAS excess, other genre"),
    ("mean_joint_speed", "joint speed (m/s)"),
)


def classifier_for(joints: Path, sequences: Path, eval_splits: Sequence[str]) -> tuple[Any, dict[str, Any]]:
    """The genre classifier fitted on the training split's ground truth, and its held-out card."""
    index = read_sequence_index(sequences)
    train = index.loc[index["split"] == "train", "sequence"].tolist()
    held_out = index.loc[index["split"].isin(eval_splits), "sequence"].tolist()
    genre_of = {name: sequence_genre(name) for name in [*train, *held_out]}
    classifier = fit_genre_classifier(load_joints(joints, train), genre_of)
    held = load_joints(joints, held_out)
    card = {
        "genres": list(classifier.genres),
        "train_dances": len(train),
        "held_out_dances": len(held_out),
        "held_out_accuracy": accuracy(classifier.predict(held), genre_of),
        "chance": 1.0 / len(classifier.genres),
        "features": "kinetic (72) + geometric (32), corrected protocol, 4 s segments every 2 s",
    }
    return classifier, card


def summarise(results: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """{measure: mean/std/t-interval over the models} of one group."""
    return {
        key: describe_over_seeds([r[key] for r in results.values() if r.get(key) is not None])
        for key, _ in MEASURES
    }


def format_markdown(report: Mapping[str, Any]) -> str:
    card = report["classifier"]
    lines = [
        "# Genre control",
        "",
        f"Genre classifier ({card['features']}): trained on {card['train_dances']} ground-truth training "
        f"dances, **{card['held_out_accuracy']:.0%}** right on the {card['held_out_dances']} held-out ones; "
        f"chance {card['chance']:.0%} ({len(card['genres'])} genres: {', '.join(card['genres'])}).",
        "",
        f"Each of {report['pieces']} held-out pieces danced once per genre ({report['requests_per_model']} "
        "dances per model), from that genre's most frequent first codes (`danceba generate --genre`) or from "
        "the piece's own ground-truth first codes; the conditioned GPT also reads the genre. "
        "Cells: mean ± std [95 % Student-t interval] over models (seeds).",
        "",
        "Decoding: " + ", ".join(f"{k} {v}" for k, v in report["sampling"].items()) + ".",
        "",
    ]
    header = ["group", "models", *(heading for _, heading in MEASURES)]
    rows = [
        [
            group,
            str(len(report[group]["models"])),
            *(interval_cell(report[group]["summary"][k]) for k, _ in MEASURES),
        ]
        for group, _, _ in GROUPS
        if report.get(group, {}).get("models")
    ]
    lines += [*markdown_table(header, rows), "", f"Time: {report['seconds']:.0f} s.", ""]
    return "\n".join(lines)


def run(args: argparse.Namespace, params: Params) -> dict[str, Any]:
    started = time.monotonic()
    sampling, evaluate = params.generate.sampling(), params.evaluate
    classifier, card = classifier_for(args.joints, args.sequences, params.generate.splits)
    log.info("genre classifier: %.0f %% on held-out ground truth", 100 * card["held_out_accuracy"])
    songs, music_of = test_songs(args.sequences, args.tokens, args.music, params.generate.splits)
    requests = {
        "genre": genre_requests(songs, classifier.genres, genre_first_codes(args.tokens)),
        "piece": genre_requests(songs, classifier.genres, None),
    }
    own = {s.name: s.genre for s in songs}
    beats = music_beat_onehots(args.music_60fps, music_of.values())
    vqvae = load_vqvae(args.vqvae)
    report: dict[str, Any] = {
        "classifier": card,
        "pieces": len(songs),
        "requests_per_model": len(requests["genre"]),
        "sampling": to_plain_config(sampling),
    }
    for group, kind, start in GROUPS:
        results = {}
        for path in getattr(args, kind):
            gpt = load_gpt(path)
            if gpt.config.genre_conditioning != (kind == "conditioned"):
                raise ValueError(
                    f"{path}: genre_conditioning is {gpt.config.genre_conditioning}, not a {kind} GPT"
                )
            log.info("%s GPT %s: %d dances", group, path, len(requests[start]))
            results[str(path)] = measure_genre_control(
                gpt,
                vqvae,
                requests[start],
                own,
                music_of,
                beats,
                classifier,
                sampling,
                evaluate,
                params.generate.batch_size,
            )
        report[group] = {"models": results, "summary": summarise(results)}
    report["seconds"] = time.monotonic() - started
    args.out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out_dir / "genre_control.json", json.dumps(report, indent=2) + "\n")
    write_text_atomic(args.out_dir / "genre_control.md", format_markdown(report))
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = stage_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--conditioned", nargs="+", type=Path, default=[], help="genre-conditioned gpt.pt files"
    )
    parser.add_argument(
        "--unconditioned", nargs="+", type=Path, default=[], help="unconditioned gpt.pt files"
    )
    defaults = {
        "--vqvae": "data/models/vqvae.pt",
        "--tokens": "data/tokens.parquet",
        "--sequences": "data/sequences.parquet",
        "--music": "data/music_features_7p5fps.parquet",
        "--music-60fps": "data/music_features_60fps.parquet",
        "--joints": "data/joints.parquet",
        "--out-dir": "reports/genre_control",
    }
    for name, default in defaults.items():
        parser.add_argument(name, type=Path, default=Path(default), help=f"default: {default}")

    def body(args: argparse.Namespace, params: Params) -> None:
        if not args.conditioned and not args.unconditioned:
            raise ValueError("give --conditioned and/or --unconditioned GPT checkpoints")
        run(args, params)

    return run_stage(body, parser, argv)


if __name__ == "__main__":
    exit_with(main())
