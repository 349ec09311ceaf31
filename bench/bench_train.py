"""Benchmark: training steps/s (forward + backward + Adam step) of the VQ-VAE (stage 1) and both GPT stacks.

Sizes come from the named configurations: ``embedded`` (``configs/embedded.yaml``: the tiny models of the
mini dataset, at their configured batch size) and ``paper`` (``configs/paper.yaml``: SepVQVAE 51.7 M,
Danceba GPT 250.7 M, Bailando GPT 87.0 M parameters, at batch 2 as the reference figures). Inputs are
random tensors of the training shapes (motion windows (B, 240, 72); tokens (B, 29) and music (B, 29, 438)).
Every step is ``zero_grad``, forward, loss, ``backward``, gradient clipping when the config clips, Adam
``step``; the reported time is the median of ``--steps`` timed steps after ``--warmup`` untimed ones.
The Danceba stack runs with and without ``activation_checkpointing`` of the PMMM Mamba branches.

Memory: each case runs in its own Python process (so peaks do not mix and allocator caches start
empty). Torch's CPU allocator keeps no statistics, so the peak is the process's resident-set high-water
mark (``resource.getrusage().ru_maxrss``, the kernel's VmHWM). ``peak_rss_gb`` is that mark (what the
reference's 11.7 GB figure measures); ``peak_delta_gb`` subtracts the resident set after ``import torch``
and before the model is built (the interpreter, torch and its libraries, ~0.3-0.5 GB), i.e. weights,
gradients, Adam state, activations and allocator slack. 1 GB = 1e9 bytes.

The machine may be shared: the 1-minute load average before and after each case is recorded, and each
row also gives the median process CPU time of a step (``step_cpu_s``; summed over threads, so with one
thread it approximates the step on an idle core, while wall time grows with the load). On 2 cores shared
with other jobs, 2 threads can be slower than 1; compare rows of the same run. Speed-ups against the
reference are given for both (``speedup_vs_reference`` from wall time, ``..._cpu_time`` from CPU time).

    .venv/bin/python -m bench.bench_train --threads 1,2 --sizes embedded,paper --out bench/out/train.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import torch

from danceba.atomic import write_text_atomic
from danceba.config import Params, load_params
from danceba.models.gpt import build_gpt
from danceba.models.mamba import BACKENDS as MAMBA_BACKENDS
from danceba.models.mamba import Mamba
from danceba.models.vqvae import SepVQVAE, vqvae_loss_fn
from danceba.train.optim import build_optimizer
from danceba.train.train_config import OptimConfig

ROOT = Path(__file__).resolve().parents[1]  # the child runs `python -m bench.bench_train` from here
GB = 1e9
MODELS = ("vqvae", "danceba", "bailando")
PAPER_BATCH = 2
# performance-targets.md: the reference code on this kind of machine (2 cores, torch CPU), batch 2.
REFERENCE = {"danceba": {"step_s": 28.7, "peak_rss_gb": 11.7}, "bailando": {"step_s": 0.76}}
TARGET = {"danceba": {"speedup": 5.0, "peak_rss_gb": 6.0}, "bailando": {"speedup": 1.0}}


@dataclass(frozen=True)
class Case:
    """One measurement, run in a child process."""

    size: str  # embedded | paper (a file configs/<size>.yaml)
    model: str  # vqvae | danceba | bailando
    threads: int
    activation_checkpointing: bool = False
    warmup: int = 1
    steps: int = 3
    mamba_backend: str = "auto"  # a danceba.models.mamba.BACKENDS value, set on every Mamba of the stack


# ----------------------------------------------------------------------------------------------
# One case (child process)
# ----------------------------------------------------------------------------------------------


def training_step_parts(
    case: Case, params: Params, batch: int
) -> tuple[torch.nn.Module, OptimConfig, tuple[torch.Tensor, ...]]:
    """The model (train mode), its optimiser config and one random batch of training shapes."""
    gen = torch.Generator().manual_seed(0)
    if case.model == "vqvae":
        phase = params.train_vqvae.stage1
        motion = 0.1 * torch.randn(batch, phase.window, 72, generator=gen)  # (B, T, 72)
        return SepVQVAE(params.train_vqvae.model).train(), phase.optim, (motion,)
    config = dataclasses.replace(
        params.train_gpt.model, stack=case.model, activation_checkpointing=case.activation_checkpointing
    )
    t = config.block_size
    up, down, up_next, down_next = (
        torch.randint(0, config.vocab_up, (batch, t), generator=gen) for _ in range(4)
    )
    music = torch.randn(batch, t, config.n_music, generator=gen)  # (B, t, 438)
    model = build_gpt(config).train()
    for module in model.modules():
        if isinstance(module, Mamba):
            module.backend = case.mamba_backend
    return model, params.train_gpt.optim, (up, down, music, up_next, down_next)


def loss_of(model: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
    if isinstance(model, SepVQVAE):
        return vqvae_loss_fn(model, inputs)[0]
    up, down, music, up_next, down_next = inputs
    return model(up, down, music, targets=(up_next, down_next))[2]


def run_case(case: Case, config_dir: Path) -> dict:
    """Time ``case`` in this process; return its row (seconds, steps/s, memory)."""
    torch.set_num_threads(case.threads)
    rss_before = psutil.Process().memory_info().rss
    params = load_params(config_dir / f"{case.size}.yaml")
    batch = PAPER_BATCH if case.size == "paper" else _configured_batch(case, params)
    torch.manual_seed(0)
    model, optim_cfg, inputs = training_step_parts(case, params, batch)
    optimizer = build_optimizer(model.parameters(), optim_cfg)
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    times, cpu_times = [], []
    for i in range(case.warmup + case.steps):
        start, cpu_start = time.perf_counter(), time.process_time()
        optimizer.zero_grad(set_to_none=True)
        loss = loss_of(model, inputs)
        loss.backward()
        if optim_cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), optim_cfg.grad_clip)
        optimizer.step()
        if i >= case.warmup:
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    step_s = statistics.median(times)
    return {
        **dataclasses.asdict(case),
        "batch": batch,
        "parameters": n_params,
        "step_s": step_s,
        "steps_per_s": 1.0 / step_s,
        "step_times_s": times,
        "step_cpu_s": statistics.median(cpu_times),  # all threads; with 1 thread ~ the step on an idle core
        "loss_finite": bool(torch.isfinite(loss)),
        "weights_grads_adam_gb": 4 * 4 * n_params / GB,  # float32 weights, grads, exp_avg, exp_avg_sq
        "rss_after_import_gb": rss_before / GB,
        "peak_rss_gb": peak / GB,
        "peak_delta_gb": (peak - rss_before) / GB,
    }


def _configured_batch(case: Case, params: Params) -> int:
    if case.model == "vqvae":
        return params.train_vqvae.stage1.train.batch_size
    return params.train_gpt.train.batch_size


# ----------------------------------------------------------------------------------------------
# The run (parent process)
# ----------------------------------------------------------------------------------------------


def cases_for(args: argparse.Namespace) -> list[Case]:
    """Cheap cases first; the paper-size Danceba stack (tens of seconds per step) last."""
    cases = []
    for size in args.sizes:
        for model in args.models:
            for threads in args.threads:
                variants = args.checkpointing if model == "danceba" else (False,)
                cases += [
                    Case(size, model, threads, ac, args.warmup, args.steps, args.mamba_backend)
                    for ac in variants
                ]
    return sorted(cases, key=lambda c: (c.size == "paper" and c.model == "danceba", c.size != "embedded"))


def spawn(case: Case, config_dir: Path, timeout: float) -> dict:
    """Run ``case`` in a fresh interpreter with its thread count; return its row plus the load average."""
    env = {**os.environ, "OMP_NUM_THREADS": str(case.threads), "MKL_NUM_THREADS": str(case.threads)}
    command = [sys.executable, "-m", "bench.bench_train", "--child", json.dumps(dataclasses.asdict(case))]
    command += ["--config-dir", str(config_dir.resolve())]
    load_before = os.getloadavg()[0]
    done = subprocess.run(
        command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench case {case} failed:\n{done.stderr[-3000:]}")
    row = json.loads(done.stdout.strip().splitlines()[-1])
    return {**row, "load_avg_1min_before": load_before, "load_avg_1min_after": os.getloadavg()[0]}


def against_reference(rows: list[dict]) -> list[dict]:
    """Paper-size GPT rows against the reference figures and the targets."""
    summary = []
    for row in rows:
        if row["size"] != "paper" or row["model"] not in REFERENCE:
            continue
        reference, target = REFERENCE[row["model"]], TARGET[row["model"]]
        keys = ("model", "threads", "activation_checkpointing", "mamba_backend", "step_s", "step_cpu_s")
        keys += ("peak_rss_gb",)
        entry = {k: row[k] for k in keys}
        entry["speedup_vs_reference"] = reference["step_s"] / row["step_s"]
        entry["speedup_vs_reference_cpu_time"] = reference["step_s"] / row["step_cpu_s"]
        entry["meets_speed_target"] = entry["speedup_vs_reference"] >= target["speedup"]
        if "peak_rss_gb" in target:
            entry["reference_peak_rss_gb"] = reference["peak_rss_gb"]
            entry["meets_memory_target"] = row["peak_rss_gb"] <= target["peak_rss_gb"]
        summary.append(entry)
    return summary


def format_table(rows: list[dict]) -> str:
    lines = [
        f"{'size':<9}{'model':<9}{'ckpt':>5}{'thr':>4}{'B':>4}{'params':>13}{'step s':>9}"
        f"{'cpu s':>9}{'steps/s':>9}"
        f"{'peak GB':>9}{'delta GB':>9}{'load':>6}"
    ]
    for r in rows:
        lines.append(
            f"{r['size']:<9}{r['model']:<9}{'on' if r['activation_checkpointing'] else '-':>5}{r['threads']:>4}"
            f"{r['batch']:>4}{r['parameters']:>13,}{r['step_s']:>9.3f}{r['step_cpu_s']:>9.3f}"
            f"{r['steps_per_s']:>9.2f}"
            f"{r['peak_rss_gb']:>9.2f}{r['peak_delta_gb']:>9.2f}{r['load_avg_1min_before']:>6.1f}"
        )
    return "\n".join(lines)


def _csv(kind: type, allowed: tuple | None = None):
    def parse(text: str) -> tuple:
        values = tuple(kind(v) for v in text.split(",") if v)
        if not values or (allowed and any(v not in allowed for v in values)):
            raise argparse.ArgumentTypeError(
                f"expected a comma list of {allowed or kind.__name__}, got {text!r}"
            )
        return values

    return parse


def _on_off(text: str) -> bool:
    if text not in ("on", "off"):
        raise ValueError(text)
    return text == "on"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench/out/train.json", help="JSON result path")
    parser.add_argument("--threads", type=_csv(int), default=(2,), help="comma list of torch thread counts")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per case (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps before timing")
    parser.add_argument("--sizes", type=_csv(str, ("embedded", "paper")), default=("embedded", "paper"))
    parser.add_argument("--models", type=_csv(str, MODELS), default=MODELS)
    parser.add_argument(
        "--checkpointing", type=_csv(_on_off), default=(False, True), help="Danceba variants: off,on"
    )
    parser.add_argument(
        "--mamba-backend",
        default="auto",
        choices=MAMBA_BACKENDS,
        help="Mamba scan of the Danceba stack (auto: fused on CPU)",
    )
    parser.add_argument("--config-dir", type=Path, default=Path("configs"), help="holds <size>.yaml")
    parser.add_argument("--case-timeout", type=float, default=900.0, help="seconds per case")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_case(Case(**json.loads(args.child)), args.config_dir)))
        return {}
    if args.steps < 1 or args.warmup < 0 or any(t < 1 for t in args.threads):
        parser.error("--steps and --threads must be >= 1, --warmup >= 0")
    started = time.perf_counter()
    result = {
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "load_avg_at_start": os.getloadavg(),
        "method": "median wall s of zero_grad+forward+backward(+clip)+Adam step after warm-up, float32 CPU; "
        "peak = ru_maxrss of a fresh process per case; delta = peak - RSS after import torch",
        "reference": REFERENCE,
        "target": TARGET,
        "rows": [],
    }
    for case in cases_for(args):
        result["rows"].append(spawn(case, args.config_dir, args.case_timeout))
        print(format_table(result["rows"][-1:]).splitlines()[-1], flush=True)
    result["against_reference"] = against_reference(result["rows"])
    result["load_avg_at_end"] = os.getloadavg()
    result["wall_s"] = time.perf_counter() - started
    print(format_table(result["rows"]))
    print(json.dumps(result["against_reference"], indent=2))
    write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
