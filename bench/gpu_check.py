"""One prepared GPU check: parity of every CUDA path, paper-size speed, generation, a short training run.

Needs only PyTorch, NumPy, Triton and the project's model code (``danceba.models``, ``danceba.generation.sampler``:
torch, numpy, einops, mambapy), so it runs on a bare CUDA image; the data, tracking and orchestration
packages (scipy, pandas, librosa, mlflow, dvc, prefect) are never imported (``tests/test_gpu_check.py``
checks). Writes one JSON file, rewritten after every section (a run stopped early keeps what it did)::

    make gpu-deps                                     # once, where pip reaches the index: mambapy -> .gpu_deps/
    make gpu-check                                    # on the GPU machine, or without make:
    PYTHONPATH=.gpu_deps:. python3 -m bench.gpu_check --out bench/out/gpu_check.json
    python -m bench.gpu_check --dry-run --out x.json  # CPU: the same code paths at tiny sizes (seconds)

Sections (``--only`` runs a subset; the environment is always recorded):

* ``parity`` (:mod:`bench.gpu_check_parity`): the Triton scan, float32 and bfloat16 inputs, forward and
  all gradients, against the CPU fused scan in float64; one Mamba mixer on ``"triton"`` (and on
  ``"mamba_ssm"`` if installed) against ``"fused"`` on CPU; both GPT stacks, logits and every parameter's
  gradient, against CPU; cached against exact decoding, and exact on the GPU against exact on CPU.
* ``scan_speed``: one PMMM Mamba's scan at batch 32 (B 32, L 29, ED 3072, N 128, bf16 x/B/C as under
  autocast): Triton, mambapy's parallel scan, mamba_ssm if installed; forward and forward+backward.
* ``train_steps``: paper-size Danceba (250.7 M) and Bailando (87.0 M) GPT steps at batch 32 under bf16
  autocast (Adam, as ``configs/paper.yaml``): steps/s, peak memory, FLOPs of forward+backward counted by
  ``torch.utils.flop_counter`` (matmuls, convolutions, attention; the scan kernels are not counted, about
  0.5 % of a Danceba step) and MFU against 790 TFLOP/s (an H200's dense bf16).
* ``generation``: the 40-song test set in one batch (lengths 123-150 codes, the Bailando protocol's
  20 s cap), Danceba, bf16 autocast, cached and exact decoding: seconds and codes agreeing between them
  (PRE makes them differ by design, see ``danceba.generation.sampler``).
* ``training_run``: a fresh paper-size Danceba on synthetic token sequences that follow a rule of the
  previous code and the music beside it (learnable, unlike uniform noise), up to ``run_steps`` steps or
  the time budget: the loss per step and whether it fell. Synthetic, because reading the scale dataset's
  ``tokens.parquet`` would need pyarrow on this path.

``--dry-run`` runs all of it on CPU with tiny models; the Triton kernels then run in Triton's interpreter
(``TRITON_INTERPRET=1``, set here before Triton is imported) where Triton is installed. Exit status 1 when
a section raised or a check failed (the JSON says which).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import json
import os
import platform
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch

from bench import gpu_check_parity as parity
from bench import gpu_check_speed as speed
from danceba.models import triton_scan
from danceba.models.gpt_config import GPTConfig
from danceba.models.mamba import mamba_ssm_kernels

SECTIONS = ("parity", "scan_speed", "train_steps", "generation", "training_run")
TINY_GPT = GPTConfig(
    n_embd=32, n_head=2, n_layer_base=1, n_layer_head=1, block_size=8, vocab_up=16, vocab_down=16,
    n_music=12, mamba_d_state=4, mamba_expand=2, pre_n_fft=16, pre_hop_length=8,
)  # fmt: skip


@dataclass(frozen=True)
class Sizes:
    """Everything the sections size: the paper's on a GPU, tiny ones for ``--dry-run``."""

    danceba: GPTConfig
    mamba: dict  # Mamba kwargs of the mixer parity
    scan: tuple[int, int, int, int]  # (B, L, ED, N) of the scan parity
    scan_speed: tuple[int, int, int, int]
    timing_reps: int
    batch: int  # training steps and the training run
    warmup: int
    steps: int
    songs: int
    song_codes: int
    run_steps: int
    run_lr: float
    parity_batch: int = 2
    decode_batch: int = 4

    @property
    def bailando(self) -> GPTConfig:
        return dataclasses.replace(self.danceba, stack="bailando")


FULL = Sizes(
    GPTConfig(), {"d_model": 768, "d_state": 128, "d_conv": 4, "expand": 4}, (2, 29, 3072, 128),
    (32, 29, 3072, 128), timing_reps=10, batch=32, warmup=3, steps=10, songs=40, song_codes=150,
    run_steps=300, run_lr=3e-4,
)  # fmt: skip
DRY = Sizes(
    TINY_GPT, {"d_model": 8, "d_state": 4, "d_conv": 4, "expand": 2}, (2, 5, 6, 5), (2, 5, 6, 5),
    timing_reps=1, batch=4, warmup=1, steps=2, songs=40, song_codes=12, run_steps=60, run_lr=3e-3,
)  # fmt: skip


# ---------------------------------------------------------------------------------------------- sections


def environment(device: torch.device, dry_run: bool) -> dict:
    try:
        triton_version = importlib.metadata.version("triton")
    except importlib.metadata.PackageNotFoundError:
        triton_version = None
    cuda = device.type == "cuda"
    return {
        "dry_run": dry_run,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if cuda else platform.processor() or "cpu",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "triton": triton_version,
        "triton_interpreter": triton_scan.interpreter_mode(),
        "triton_scan_runs_here": triton_scan.supports(torch.empty(0, device=device)),
        "mamba_ssm": mamba_ssm_kernels() is not None,
        "peak_flops": speed.PEAK_FLOPS,
    }


def parity_section(sizes: Sizes, device: torch.device) -> dict:
    out: dict = {}
    if triton_scan.supports(torch.empty(0, device=device)):
        out["triton_scan_fp32"] = parity.scan_parity(device, sizes.scan, None)
        out["triton_scan_bf16"] = parity.scan_parity(device, sizes.scan, torch.bfloat16)
        out["mamba_triton"] = parity.mamba_parity(device, "triton", sizes.mamba, 2, sizes.danceba.block_size)
    else:
        out["triton_scan"] = {
            "skipped": "the Triton scan cannot run here (no Triton, or no CUDA/interpreter)"
        }
    if mamba_ssm_kernels() is not None:
        out["mamba_ssm"] = parity.mamba_parity(device, "mamba_ssm", sizes.mamba, 2, sizes.danceba.block_size)
    else:
        out["mamba_ssm"] = {"skipped": "mamba_ssm is not installed"}
    out["gpt_danceba"] = parity.gpt_parity(sizes.danceba, device, sizes.parity_batch)
    if "mamba_triton" in out and out["gpt_danceba"]["scan"] != "triton":
        out["gpt_danceba_triton"] = parity.gpt_parity(sizes.danceba, device, sizes.parity_batch, "triton")
    out["gpt_bailando"] = parity.gpt_parity(sizes.bailando, device, sizes.parity_batch)
    causal = dataclasses.replace(sizes.danceba, pre=False)  # PRE is not causal: cached != exact by design
    out["decoding_danceba_no_pre"] = parity.decoding_parity(causal, device, sizes.decode_batch, False)
    out["decoding_bailando"] = parity.decoding_parity(sizes.bailando, device, sizes.decode_batch, True)
    out["ok"] = all(v.get("ok", True) for v in out.values())
    return out


def train_steps_section(sizes: Sizes, device: torch.device) -> dict:
    """Both stacks. On CPU (the dry run) Mamba runs the Triton scan in the interpreter where it can, so
    that the step takes the GPU's path (Triton under bf16 autocast); on CUDA ``"auto"`` picks it."""
    cpu_triton = device.type == "cpu" and triton_scan.supports(torch.empty(0))
    backend = "triton" if cpu_triton else "auto"
    out = {}
    for config in (sizes.danceba, sizes.bailando):
        config = dataclasses.replace(config, mamba_backend=backend)
        out[config.stack] = speed.train_steps(config, sizes.batch, sizes.warmup, sizes.steps, device)
        speed.release(device)
    return out


# ---------------------------------------------------------------------------------------------- main


def run_sections(args: argparse.Namespace, device: torch.device, report: dict) -> None:
    sizes = DRY if args.dry_run else FULL
    deadline = time.monotonic() + args.budget_s
    runners = {
        "parity": lambda: parity_section(sizes, device),
        "scan_speed": lambda: speed.scan_speed(sizes.scan_speed, sizes.timing_reps, device),
        "train_steps": lambda: train_steps_section(sizes, device),
        "generation": lambda: speed.generation(sizes.danceba, sizes.songs, sizes.song_codes, device),
        "training_run": lambda: speed.training_run(
            sizes.danceba, sizes.batch, sizes.run_lr, sizes.run_steps, deadline, device
        ),
    }
    for name in args.only:
        start = time.perf_counter()
        try:
            report[name] = runners[name]()
        except Exception as error:  # keep the other sections' figures
            report[name] = {
                "error": f"{type(error).__name__}: {error}",
                "traceback": traceback.format_exc()[-3000:],
            }
        report[name]["section_seconds"] = time.perf_counter() - start
        print(f"gpu_check: {name} done in {report[name]['section_seconds']:.1f} s", flush=True)
        write_report(args.out, report)


def write_report(path: Path, report: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)


def failures(report: dict) -> list[str]:
    """Sections that raised, and failed checks (parity, falling loss)."""
    failed = [name for name in SECTIONS if "error" in report.get(name, {})]
    if report.get("parity", {}).get("ok") is False:
        failed.append("parity")
    if report.get("training_run", {}).get("falling") is False:
        failed.append("training_run (loss did not fall)")
    return failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/out/gpu_check.json"))
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes (the test suite runs this)")
    parser.add_argument("--budget-s", type=float, default=420.0, help="the training run stops at this")
    parser.add_argument("--only", type=lambda s: s.split(","), default=list(SECTIONS), help="comma list")
    args = parser.parse_args(argv)
    if unknown := set(args.only) - set(SECTIONS):
        parser.error(f"--only: unknown sections {sorted(unknown)}; choose from {SECTIONS}")
    # The lent machine has no numba: CPU decoding there (and in the dry run) is PyTorch's ops.
    os.environ.setdefault("DANCEBA_FUSED_CPU_STEP", "off")
    if args.dry_run:
        os.environ.setdefault("TRITON_INTERPRET", "1")  # read when Triton is first imported (not yet)
    elif not torch.cuda.is_available():
        parser.error("no CUDA device here: run with --dry-run for the CPU check")
    device = torch.device("cpu" if args.dry_run else "cuda")
    started = time.perf_counter()
    report = {"environment": environment(device, args.dry_run)}
    run_sections(args, device, report)
    report["wall_s"] = time.perf_counter() - started
    report["failed"] = failures(report)
    write_report(args.out, report)
    print(f"gpu_check: wrote {args.out} in {report['wall_s']:.1f} s; failed: {report['failed'] or 'none'}")
    return 1 if report["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
