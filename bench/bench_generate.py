"""Benchmark: generating dance codes, exact (official) vs cached decoding, float32 vs bfloat16 weights,
one song vs a batch of songs.

Measures seconds of dance generated per second of wall time (150 codes = 20 s of dance at 7.5 codes/s)
for the Danceba and Bailando stacks of ``danceba.models.gpt`` (randomly initialised, eval mode, greedy
decoding), at a configurable model size, batch sizes and precisions (``SamplingConfig.precision``), with
``danceba.generation.sampler.generate_codes``. ``exact`` in float32 at batch 1 is the official sampler (one song at
a time, the whole window re-run per step): every row's ``x_reference`` is its songs per second over that
row's. Whether the faster modes give the same codes is measured on the trained model by
``bench.bench_decode_agreement``.

Every step is timed (``generate_codes(progress=...)``). Where a full run would be too slow
(``--max-steps`` below the number of codes; the default at the paper size, where exact Danceba decoding
takes seconds per step), it runs ``--max-steps`` steps (more than the context window) and counts the
remaining ones at the median cost of the measured steady steps (full window); rows say
``extrapolated: true``. The machine may be shared: the 1-minute load average before and after each row is
recorded. On a machine shared with other jobs, 2 threads on 2 cores can be many times slower than 1
(threads wait for each other): pick ``--threads`` and compare rows of the same run.

    OMP_NUM_THREADS=2 .venv/bin/python -m bench.bench_generate --size small --out bench/out/generate.json
    .venv/bin/python -m bench.bench_generate --size paper --stacks danceba --batches 1 40 \
        --precisions float32 bfloat16 --threads 2 --out bench/out/generate_paper.json
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
from danceba.generation.config import PRECISIONS, SamplingConfig
from danceba.generation.sampler import context_window, generate_codes
from danceba.models.gpt import build_gpt
from danceba.models.gpt_config import GPTConfig

CODES_PER_SECOND = 7.5  # one code per 8 frames of 60 fps motion
SIZES = {
    "tiny": GPTConfig(n_embd=64, n_head=4, n_layer_base=1, n_layer_head=1, mamba_d_state=16, mamba_expand=2),
    "small": GPTConfig(
        n_embd=256, n_head=8, n_layer_base=2, n_layer_head=2, mamba_d_state=64, mamba_expand=2
    ),
    "paper": GPTConfig(),
}
DEFAULT_MAX_STEPS = {"tiny": None, "small": None, "paper": 31}  # window 28 + 3 steady steps


def step_seconds(
    model: torch.nn.Module, batch: int, steps: int, total: int, decode: str, precision: str
) -> list[float]:
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

    sampling = SamplingConfig(decode=decode, precision=precision)
    generate_codes(model, music, first, first.clone(), torch.full((batch,), steps), sampling, progress=stamp)
    return [b - a for a, b in itertools.pairwise(stamps)]


def run_row(
    model: torch.nn.Module,
    stack: str,
    decode: str,
    precision: str,
    batch: int,
    codes: int,
    max_steps: int | None,
) -> dict:
    """One (stack, decode, precision, batch) measurement; when ``max_steps`` < codes, the steps not run are
    counted at the median cost of the measured steady steps (those with a full window, k >= window - 1).
    One-off costs (the bfloat16 copy of the weights, the decoder's set-up) fall in the first step."""
    load_before = os.getloadavg()[0]
    step_seconds(model, batch, 2, codes, decode, precision)  # warm-up
    measured = codes if max_steps is None else min(codes, max_steps)
    seconds = step_seconds(model, batch, measured, codes, decode, precision)
    steady = seconds[context_window(model) - 1 :]  # >= 2 steps when extrapolating (checked in main)
    steady_s = statistics.median(steady) if steady else None
    wall = sum(seconds) + (codes - measured) * (steady_s or 0.0)
    return {
        "stack": stack,
        "decode": decode,
        "precision": precision,
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


REFERENCE = ("exact", "float32", 1)  # the official sampler: one song at a time, float32, whole window


def ratios(rows: list[dict]) -> list[dict]:
    """Per row: songs per second over the official sampler's (``REFERENCE``, same stack) as
    ``x_reference`` (None when that row was not run); and cached over exact (same stack, precision and
    batch) and batch over batch 1 (same stack, decode and precision) throughput."""
    index = {(r["stack"], r["decode"], r["precision"], r["batch"]): r["dance_s_per_wall_s"] for r in rows}
    for r in rows:
        reference = index.get((r["stack"], *REFERENCE))
        r["x_reference"] = None if reference is None else r["dance_s_per_wall_s"] / reference
    out = []
    for (stack, decode, precision, batch), speed in index.items():
        exact = index.get((stack, "exact", precision, batch))
        if decode == "cached" and exact is not None:
            out.append(
                {"stack": stack, "what": f"cached / exact, {precision}, B {batch}", "x": speed / exact}
            )
        single = index.get((stack, decode, precision, 1))
        if batch > 1 and single is not None:
            out.append(
                {"stack": stack, "what": f"B {batch} / B 1, {decode} {precision}", "x": speed / single}
            )
    return out


def format_table(rows: list[dict], summary: list[dict]) -> str:
    lines = [
        f"{'stack':<10}{'decode':<8}{'precision':<10}{'B':>4}{'wall s':>10}{'s/song':>9}{'dance s/s':>11}"
        f"{'x ref':>8}{'steps':>7}  load"
    ]
    for r in rows:
        steps = f"{r['steps_measured']}{'*' if r['extrapolated'] else ''}"
        x_reference = "" if r.get("x_reference") is None else f"{r['x_reference']:.1f}"
        lines.append(
            f"{r['stack']:<10}{r['decode']:<8}{r['precision']:<10}{r['batch']:>4}{r['wall_s']:>10.2f}"
            f"{r['s_per_song']:>9.3f}{r['dance_s_per_wall_s']:>11.1f}{x_reference:>8}{steps:>7}  "
            f"{r['load_1min_before']:.1f}->{r['load_1min_after']:.1f}"
        )
    if any(r["extrapolated"] for r in rows):
        lines.append("* measured that many steps, the rest extrapolated at the steady per-step cost")
    lines += [f"{s['stack']:<10}{s['what']:<40}{s['x']:>8.1f}x" for s in summary]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench/out/generate.json", help="JSON result path")
    parser.add_argument("--size", choices=list(SIZES), default="small")
    parser.add_argument(
        "--stacks", nargs="+", choices=["danceba", "bailando"], default=["danceba", "bailando"]
    )
    parser.add_argument("--decodes", nargs="+", choices=["exact", "cached"], default=["exact", "cached"])
    parser.add_argument(
        "--precisions", nargs="+", choices=PRECISIONS, default=[PRECISIONS[0]], help="weights"
    )
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8], help="songs per batch")
    parser.add_argument(
        "--exact-batches", nargs="+", type=int, default=None, help="run exact only at these batch sizes"
    )
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
            for decode, precision in itertools.product(args.decodes, args.precisions):
                if decode == "exact" and args.exact_batches is not None and batch not in args.exact_batches:
                    continue
                rows.append(run_row(model, stack, decode, precision, batch, args.codes, max_steps))
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
