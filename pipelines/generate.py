"""Stage ``generate``: dances for the test pieces from their music, plus the evaluation's controls.

Writes one ``<sequence>.npz`` per piece (format in ``danceba.evaluation``) under ``--out/<row>``:
``model`` (evaluation mode of the reference: first codes from the ground-truth dance, greedy decoding,
``generate.*`` in params.yaml); ``model_sham_music`` (the same call with each piece's music replaced
by another music id's, a derangement seeded with ``generate.seed``; ``music_id`` stays the piece's own,
``condition_music_id`` is the music fed); ``reconstruction`` (the ground truth encoded and decoded by
the VQ-VAE); ``random_codes`` (uniform random codes of the model's length, decoded).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm import tqdm

from danceba import tables
from danceba.config import Params
from danceba.data.aistpp import AistppLayout
from danceba.data.windows import load_joints, read_sequence_index
from danceba.evaluation import write_dance
from danceba.export.video import render_dance_video
from danceba.features.columns import FRAMES_PER_TOKEN
from danceba.generation.config import GenerateConfig
from danceba.generation.dances import (
    Song,
    generate_dances,
    ground_truth_first_codes,
    random_code_dances,
    reconstruction_dances,
    sham_music_songs,
)
from danceba.genres import sequence_genre
from danceba.trainers.gpt import load_gpt
from danceba.trainers.vqvae import load_vqvae
from pipelines.stage import exit_with, log, run_stage, stage_parser, tracked


def test_songs(
    sequences: Path, tokens: Path, music_7p5fps: Path, splits: tuple[str, ...]
) -> tuple[list[Song], dict]:
    """The pieces of ``splits`` with their music, ground-truth first codes and genre; {name: music id}."""
    index = read_sequence_index(sequences)
    index = index[index["split"].isin(splits)]
    if index.empty:
        raise ValueError(f"{sequences}: no sequences in splits {list(splits)}")
    firsts = ground_truth_first_codes(tokens)
    songs = []
    for row in index.itertuples():
        if row.sequence not in firsts:
            raise KeyError(f"{tokens}: no tokens for {row.sequence} (is its split in tokenize.splits?)")
        music = tables.read_group(music_7p5fps, row.music_id, "features")
        songs.append(Song(row.sequence, music, *firsts[row.sequence], genre=sequence_genre(row.sequence)))
    return songs, dict(zip(index["sequence"], index["music_id"], strict=True))


def generate_test_dances(args: argparse.Namespace, config: GenerateConfig) -> None:
    """Generate the model's dances and the control rows; render the first model dance as a video."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    gpt, vqvae = load_gpt(args.gpt, device).to(device), load_vqvae(args.vqvae, device).to(device)
    songs, music_of = test_songs(args.sequences, args.tokens, args.music, config.splits)
    log.info("generating %d dances (%s, %s decoding) on %s", len(songs), config.mode, config.decode, device)
    dances = generate_dances(gpt, vqvae, songs, config.sampling(), config.batch_size)
    shams, fed = sham_music_songs(songs, music_of, config.seed)
    log.info("generating the %d sham-music dances (music fed: %s)", len(shams), fed)
    sham_dances = generate_dances(gpt, vqvae, shams, config.sampling(), config.batch_size)
    lengths = {name: len(joints) // FRAMES_PER_TOKEN for name, joints in dances.items()}
    rows = {
        "model": dances,
        "model_sham_music": sham_dances,
        "reconstruction": reconstruction_dances(vqvae, load_joints(args.joints, [s.name for s in songs])),
        "random_codes": random_code_dances(vqvae, lengths, config.seed),
    }
    for row, produced in rows.items():
        for name, joints in tqdm(produced.items(), desc=f"write {row}", unit="dance"):
            condition = fed[name] if row == "model_sham_music" else None
            write_dance(args.out / row / f"{name}.npz", joints, music_of[name], condition)
    if config.sample_videos:
        for name in sorted(dances)[: config.sample_videos]:
            wav = AistppLayout(args.raw).wav_path(music_of[name])
            render_dance_video(args.out / f"sample_{name}.mp4", dances[name], audio_path=wav, title=name)


def main(argv: Sequence[str] | None = None) -> int:
    parser = stage_parser(__doc__.splitlines()[0])
    for name in ("--gpt", "--vqvae", "--tokens", "--sequences", "--music", "--joints", "--raw", "--out"):
        parser.add_argument(name, required=True, type=Path)

    def body(args: argparse.Namespace, params: Params) -> None:
        config = params.generate
        inputs = [args.gpt, args.vqvae, args.tokens, args.sequences, args.music, args.joints, args.raw]
        with tracked("generate", args, params, config, inputs=inputs, outputs=[args.out], seed=config.seed):
            generate_test_dances(args, config)

    return run_stage(body, parser, argv)


if __name__ == "__main__":
    exit_with(main())
