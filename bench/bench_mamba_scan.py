"""Benchmark: Mamba forward + backward, mambapy's parallel scan vs per-step (sequential) scans.

Four ways to run the same ``danceba.models.mamba.Mamba`` (same weights, same glue):

* ``pscan``: ``backend="mambapy"``, the Blelloch parallel scan of ``mambapy.pscan`` (the library path).
* ``fused``: ``backend="fused"``, ``danceba.models.selective_scan``: a sequential scan with a hand-written
  backward that recomputes the states (nothing of size (B, L, ED, N) kept for the backward).
* ``per_step``: a plain loop over time written here (``h = a_t * h + b_t``), with the time axis split by
  ``unbind`` so that autograd stacks the per-step gradients once.
* ``mambapy_seq``: ``backend="reference"``, ``mambapy``'s sequential scan. It indexes ``deltaA[:, t]``,
  whose backward allocates a full (B, L, ED, N) gradient per step (quadratic in L): ~2 min at the
  ``large`` size, so it is timed only where ``ScanCase.time_mambapy_seq`` is set.

Per size: median wall seconds of forward+backward (repeats interleaved across variants, after one
warm-up each), ratios against ``pscan``, and the memory autograd keeps for the backward (distinct saved
storages; a proxy for activation memory).

    OMP_NUM_THREADS=2 .venv/bin/python -m bench.bench_mamba_scan --out bench/out/mamba_scan.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from danceba.atomic import write_text_atomic
from danceba.models.mamba import Mamba


@dataclass(frozen=True)
class ScanCase:
    """One benchmark size. Danceba's PMMM is d_model 768, d_state 128, expand 4 at L = 29 per stream."""

    name: str
    batch: int
    seq_len: int
    d_model: int
    d_state: int = 16
    expand: int = 2
    time_mambapy_seq: bool = True


CASES = (
    ScanCase("small", batch=4, seq_len=64, d_model=64),
    ScanCase("large", batch=8, seq_len=256, d_model=256, time_mambapy_seq=False),
    ScanCase("danceba_pmmm", batch=2, seq_len=29, d_model=768, d_state=128, expand=4),
)


class PerStepScanMamba(Mamba):
    """Mamba whose scan is a per-step Python loop. x, delta: (B, L, ED); A: (ED, N); B, C: (B, L, N)."""

    def selective_scan(self, x: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor) -> Tensor:
        decay = torch.exp(delta.unsqueeze(-1) * A).unbind(1)  # L x (B, ED, N)
        drive = ((delta * x).unsqueeze(-1) * B.unsqueeze(2)).unbind(1)  # L x (B, ED, N)
        h = torch.zeros_like(drive[0])
        hs = []
        for a_t, b_t in zip(decay, drive, strict=True):
            h = a_t * h + b_t
            hs.append(h)
        return (torch.stack(hs, dim=1) @ C.unsqueeze(-1)).squeeze(-1) + D * x


def forward_backward_seconds(module: Mamba, x: Tensor) -> float:
    module.zero_grad(set_to_none=True)
    start = time.perf_counter()
    module(x).sum().backward()
    return time.perf_counter() - start


def saved_activation_mib(fn: Callable[[], Tensor]) -> float:
    """MiB of distinct storages that autograd saves for the backward of ``fn()``."""
    storages: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(storages.values()) / 2**20


def run_case(case: ScanCase, repeats: int) -> dict:
    """Time every variant on one size; checks first that they agree with ``pscan``."""
    torch.manual_seed(0)
    kwargs = {"d_model": case.d_model, "d_state": case.d_state, "expand": case.expand}
    variants = {
        "pscan": Mamba(**kwargs, backend="mambapy"),
        "fused": Mamba(**kwargs, backend="fused"),
        "per_step": PerStepScanMamba(**kwargs, backend="mambapy"),  # its selective_scan override
    }
    if case.time_mambapy_seq:
        variants["mambapy_seq"] = Mamba(**kwargs, backend="reference")
    for module in variants.values():
        module.load_state_dict(variants["pscan"].state_dict(), strict=True)
    x = torch.randn(case.batch, case.seq_len, case.d_model)
    with torch.no_grad():
        y = variants["pscan"](x)
        max_abs_diff = max((m(x) - y).abs().max().item() for m in variants.values())
    times: dict[str, list[float]] = {name: [] for name in variants}
    for i in range(repeats + 1):  # interleaved, so that load from other processes hits all variants alike
        for name, module in variants.items():
            seconds = forward_backward_seconds(module, x)
            if i > 0:
                times[name].append(seconds)
    row = {**asdict(case), "max_abs_diff": max_abs_diff}
    for name, module in variants.items():
        row[f"{name}_s"] = statistics.median(times[name])
        row[f"{name}_saved_mib"] = saved_activation_mib(lambda m=module: m(x))
        row[f"{name}_vs_pscan"] = row[f"{name}_s"] / row["pscan_s"]
    return row


def format_table(rows: list[dict]) -> str:
    """Seconds of forward+backward (and time relative to pscan), saved MiB per variant."""
    lines = [
        f"{'case':<14}{'B':>3}{'L':>5}{'D':>5}{'N':>5}{'pscan s':>9}{'fused s':>17}{'per_step s':>17}"
        f"{'mambapy_seq s':>19}{'saved MiB pscan/fused/per_step/seq':>36}{'max|diff|':>10}"
    ]
    for r in rows:
        seq = f"{r['mambapy_seq_s']:.3f} ({r['mambapy_seq_vs_pscan']:.2f}x)" if "mambapy_seq_s" in r else "-"
        saved = "/".join(f"{r[f'{k}_saved_mib']:.0f}" for k in ("pscan", "fused", "per_step"))
        saved += "/" + (f"{r['mambapy_seq_saved_mib']:.0f}" if "mambapy_seq_saved_mib" in r else "-")
        lines.append(
            f"{r['name']:<14}{r['batch']:>3}{r['seq_len']:>5}{r['d_model']:>5}{r['d_state']:>5}"
            f"{r['pscan_s']:>9.3f}{r['fused_s']:>9.3f} ({r['fused_vs_pscan']:.2f}x)"
            f"{r['per_step_s']:>9.3f} ({r['per_step_vs_pscan']:.2f}x){seq:>19}{saved:>36}{r['max_abs_diff']:>10.1e}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench/out/mamba_scan.json", help="JSON result path")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats of the parallel scan")
    parser.add_argument(
        "--reference-repeats", type=int, default=1, help="timed repeats of the sequential scan"
    )
    parser.add_argument(
        "--cases", nargs="+", default=[c.name for c in CASES], choices=[c.name for c in CASES]
    )
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    rows = [run_case(c, args.repeats) for c in CASES if c.name in args.cases]
    result = {"torch": torch.__version__, "threads": torch.get_num_threads(), "cases": rows}
    print(format_table(rows))
    write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
