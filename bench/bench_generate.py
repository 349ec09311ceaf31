"""Benchmark: generating dance codes, exact (official) vs cached decoding, one song vs a batch of songs.

Measures seconds of dance generated per second of wall time (150 codes = 20 s of dance at 7.5 codes/s)
for the Danceba and Bailando stacks of ``danceba.models.gpt`` (randomly initialised, eval mode, float32,
greedy decoding), at a configurable model size and batch sizes, with ``danceba.generate.generate_codes``.

Every step is timed (``generate_codes(progress=...)``). Where a full run would be too slow
(``--max-steps`` below the number of codes; the default at the paper size, where exact Danceba decoding
takes seconds per step), it runs ``--max-steps`` steps (more than the context window) and counts the
remaining ones at the median cost of the measured steady steps (full window); rows say
``extrapolated: true``. The machine may be shared: the 1-minute load average before and after each row is
recorded. On a machine shared with other jobs, 2 threads on 2 cores can be many times slower than 1
(threads wait for each other): pick ``--threads`` and compare rows of the same run.

    OMP_NUM_THREADS=2 .venv/bin/python -m bench.bench_generate --size small --out bench/out/generate.json
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import statistics
import time

import torch

from danceba.atomic import write_text_atomic
from danceba.generate import SamplingConfig, context_window, generate_codes
from danceba.models.gpt import GPTConfig, build_gpt

CODES_PER_SECOND = 7.5  # one code per 8 frames of 60 fps motion
SIZES = {
    "tiny": GPTConfig(n_embd=64, n_head=4, n_layer_base=1, n_layer_head=1, mamba_d_state=16, mamba_expand=2),
    "small": GPTConfig(
        n_embd=256, n_head=8, n_layer_base=2, n_layer_head=2, mamba_d_state=64, mamba_expand=2
    ),
    "paper": GPTConfig(),
}
DEFAULT_MAX_STEPS = {"tiny": None, "small": None, "paper": 31}  # window 28 + 3 steady steps


def step_seconds(model: torch.nn.Module, batch: int, steps: int, total: int, decode: str) -> list[float]:
    """Wall seconds of each of ``steps`` decoding steps for ``batch`` songs of ``total`` music frames."""
    gen = torch.Generator().manual_seed(0)
    music = torch.randn(batch, total, model.config.n_music, generator=gen)
    first = torch.randint(0, model.config.vocab_up, (batch, 1), generator=gen)
    cuda = next(model.parameters()).is_cuda
    stamps = [time.perf_counter()]

    def stamp(_: int) -> None:
        if cuda:
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())

    sampling = SamplingConfig(decode=decode)
    generate_codes(model, music, first, first.clone(), torch.full((batch,), steps), sampling, progress=stamp)
    return [b - a for a, b in itertools.pairwise(stamps)]


def run_row(
    model: torch.nn.Module, stack: str, decode: str, batch: int, codes: int, max_steps: int | None
) -> dict:
    """One (stack, decode, batch) measurement; when ``max_steps`` < codes, the steps not run are counted at
    the median cost of the measured steady steps (those with a full window, k >= window - 1)."""
    load_before = os.getloadavg()[0]
    step_seconds(model, batch, 2, codes, decode)  # warm-up
    measured = codes if max_steps is None else min(codes, max_steps)
    seconds = step_seconds(model, batch, measured, codes, decode)
    steady = seconds[context_window(model) - 1 :]  # >= 2 steps when extrapolating (checked in main)
    steady_s = statistics.median(steady) if steady else None
    wall = sum(seconds) + (codes - measured) * (steady_s or 0.0)
    return {
        "stack": stack,
        "decode": decode,
        "batch": batch,
        "codes": codes,
        "steps_measured": measured,
        "extrapolated": measured < codes,
        "wall_s": wall,
        "s_per_song": wall / batch,
        "dance_s_per_wall_s": batch * codes / CODES_PER_SECOND / wall,
        "steady_step_s": steady_s,
        "load_1min_before": load_before,
        "load_1min_after": os.getloadavg()[0],
    }


def ratios(rows: list[dict]) -> list[dict]:
    """Cached over exact (same stack and batch) and batch over batch 1 (same stack and decode) throughput."""
    index = {(r["stack"], r["decode"], r["batch"]): r["dance_s_per_wall_s"] for r in rows}
    out = []
    for (stack, decode, batch), speed in index.items():
        if decode == "cached" and (stack, "exact", batch) in index:
            out.append(
                {
                    "stack": stack,
                    "batch": batch,
                    "what": "cached / exact",
                    "x": speed / index[(stack, "exact", batch)],
                }
            )
        if batch > 1 and (stack, decode, 1) in index:
            out.append(
                {
                    "stack": stack,
                    "decode": decode,
                    "what": f"batch {batch} / batch 1",
                    "x": speed / index[(stack, decode, 1)],
                }
            )
    return out


def format_table(rows: list[dict], summary: list[dict]) -> str:
    lines = [
        f"{'stack':<10}{'decode':<8}{'B':>4}{'wall s':>10}{'s/song':>9}{'dance s/s':>11}{'steps':>7}  load"
    ]
    for r in rows:
        steps = f"{r['steps_measured']}{'*' if r['extrapolated'] else ''}"
        lines.append(
            f"{r['stack']:<10}{r['decode']:<8}{r['batch']:>4}{r['wall_s']:>10.2f}{r['s_per_song']:>9.3f}"
            f"{r['dance_s_per_wall_s']:>11.1f}{steps:>7}  {r['load_1min_before']:.1f}->{r['load_1min_after']:.1f}"
        )
    if any(r["extrapolated"] for r in rows):
        lines.append("* measured that many steps, the rest extrapolated at the steady per-step cost")
    lines += [f"{s['stack']:<10}{s.get('decode', ''):<8}{s['what']:<18}{s['x']:>8.1f}x" for s in summary]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench/out/generate.json", help="JSON result path")
    parser.add_argument("--size", choices=list(SIZES), default="small")
    parser.add_argument(
        "--stacks", nargs="+", choices=["danceba", "bailando"], default=["danceba", "bailando"]
    )
    parser.add_argument("--decodes", nargs="+", choices=["exact", "cached"], default=["exact", "cached"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8], help="songs per batch")
    parser.add_argument("--codes", type=int, default=150, help="codes per song (150 = 20 s of dance)")
    parser.add_argument(
        "--max-steps", type=int, default=None, help="measure this many steps, extrapolate the rest"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: as set by OMP_NUM_THREADS)"
    )
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    max_steps = args.max_steps if args.max_steps is not None else DEFAULT_MAX_STEPS[args.size]
    window = SIZES[args.size].block_size - 1
    if max_steps is not None and max_steps < args.codes and max_steps <= window:
        parser.error(f"--max-steps must exceed the context window ({window}) to extrapolate, got {max_steps}")
    if args.codes < 3 or min(args.batches) < 1:
        parser.error("--codes must be >= 3 and every batch >= 1")
    rows, params = [], {}
    for stack in args.stacks:
        torch.manual_seed(0)
        model = build_gpt(dataclasses.replace(SIZES[args.size], stack=stack), device=args.device).eval()
        params[stack] = model.num_parameters()
        for batch in args.batches:
            for decode in args.decodes:
                rows.append(run_row(model, stack, decode, batch, args.codes, max_steps))
                print(format_table(rows[-1:], []).splitlines()[1], flush=True)
        del model
    summary = ratios(rows)
    result = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "device": args.device,
        "size": args.size,
        "config": dataclasses.asdict(SIZES[args.size]),
        "parameters": params,
        "rows": rows,
        "ratios": summary,
    }
    print(format_table(rows, summary))
    write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
