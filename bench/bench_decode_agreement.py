"""Benchmark: do the faster decoding modes dance the same codes as the reference sampler?

Generates the codes of the ``generate`` stage's pieces (``generate.splits`` of params.yaml, music,
first codes and genre as the stage feeds them) with the trained GPT (``make run`` first) in every
(decode, precision) mode of ``danceba.generation.config.SamplingConfig``, all pieces in one batch, with the
stage's sampling settings, and compares each mode's codes with ``exact`` in ``float32`` (the official
sampler, what the stage writes): the fraction of pieces whose codes are all the same, the fraction of
codes that are the same, and where the first difference falls. Greedy decoding makes the comparison
strict: one logit overtaken by rounding changes that code and, through the context, every later one.

    .venv/bin/python -m bench.bench_decode_agreement --out bench/out/decode_agreement.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

import torch

from danceba.atomic import write_text_atomic
from danceba.config import load_params
from danceba.generation.config import PRECISIONS
from danceba.generation.dances import batch_codes
from danceba.generation.sampler import trim_codes
from danceba.trainers.gpt import load_gpt
from pipelines.generate import test_songs

MODES = [(decode, precision) for precision in PRECISIONS for decode in ("exact", "cached")]  # reference first


def agreement(reference: list[torch.Tensor], other: list[torch.Tensor]) -> dict:
    """reference, other: per piece, its codes (2, L_i) (up and down) -> agreement figures."""
    same_pieces, same_codes, total, first_differences = 0, 0, 0, []
    for ref, got in zip(reference, other, strict=True):
        same = (ref == got).all(dim=0)  # (L_i,): both streams agree at that time
        same_pieces += bool(same.all())
        same_codes += int((ref == got).sum())
        total += ref.numel()
        if not same.all():
            first_differences.append(int((~same).nonzero()[0, 0]))
    return {
        "pieces_identical": same_pieces / len(reference),
        "codes_identical": same_codes / total,
        "first_difference_median": statistics.median(first_differences) if first_differences else None,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--out", type=Path, default=Path("bench/out/decode_agreement.json"))
    args = parser.parse_args(argv)
    config = load_params(args.params).generate
    data = args.data
    gpt = load_gpt(data / "models" / "gpt.pt", "cpu")
    songs, _ = test_songs(
        data / "sequences.parquet",
        data / "tokens.parquet",
        data / "music_features_7p5fps.parquet",
        config.splits,
    )
    codes, seconds = {}, {}
    for decode, precision in MODES:
        sampling = dataclasses.replace(config.sampling(), decode=decode, precision=precision)
        started = time.perf_counter()
        up, down, lengths = batch_codes(gpt, songs, sampling, "cpu")
        seconds[(decode, precision)] = time.perf_counter() - started
        codes[(decode, precision)] = [torch.stack(pair) for pair in trim_codes(up, down, lengths)]
    reference = codes[MODES[0]]
    rows = [
        {"decode": d, "precision": p, "wall_s": seconds[(d, p)], **agreement(reference, codes[(d, p)])}
        for d, p in MODES
    ]
    result = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "pieces": len(songs),
        "codes_per_piece_median": statistics.median(len(c[0]) for c in reference),
        "sampling": dataclasses.asdict(config.sampling()),
        "parameters": gpt.num_parameters(),
        "reference": {"decode": MODES[0][0], "precision": MODES[0][1]},
        "rows": rows,
    }
    for r in rows:
        print(
            f"{r['decode']:<7}{r['precision']:<10}{r['wall_s']:>7.2f} s  pieces identical "
            f"{r['pieces_identical']:.2f}  codes identical {r['codes_identical']:.3f}  "
            f"first difference (median) {r['first_difference_median']}"
        )
    write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
