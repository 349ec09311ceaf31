"""Speed and training sections of ``bench/gpu_check.py``: scan timings, training steps, generation, a run.

Timings are medians of wall seconds between ``torch.cuda.synchronize`` calls. Memory: CUDA's allocator
peak since the last reset (weights, gradients, Adam state, activations, workspaces); on CPU (the dry run)
the process's resident-set high-water mark. FLOPs of a training step: ``torch.utils.flop_counter``
(forward + backward of matmuls, convolutions and attention; the scan kernels are not counted).
"""

from __future__ import annotations

import gc
import math
import resource
import statistics
import time
from collections.abc import Callable

import torch

from bench import gpu_check_parity as parity
from danceba.generation.config import SamplingConfig
from danceba.generation.sampler import generate_codes
from danceba.models import triton_scan
from danceba.models.gpt import build_gpt
from danceba.models.gpt_config import GPTConfig
from danceba.models.mamba import Mamba, mamba_ssm_kernels

PEAK_FLOPS = 790e12  # H200 dense bf16, as the lent machine's notes give it
CODES_PER_SECOND = 7.5  # one code per 8 frames of 60 fps motion


# ---------------------------------------------------------------------------------------------- helpers


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn: Callable[[], object], device: torch.device, warmup: int, reps: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_memory_gb(device: torch.device) -> float:
    """CUDA: the allocator's peak since the last reset; CPU: the process's resident-set high-water mark."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1e9
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def release(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def autocast(device: torch.device) -> torch.autocast:
    return torch.autocast(device.type, dtype=torch.bfloat16)


def synthetic_batch(config: GPTConfig, batch: int, g: torch.Generator) -> tuple[torch.Tensor, ...]:
    """up, down (B, t) inputs, music (B, t, n_music), targets (B, t): chains with code_{k+1} a fixed rule
    of code_k and the sign of music column 0 at time k (both visible to the position predicting it)."""
    t = config.block_size
    music = torch.randn(batch, t, config.n_music, generator=g)
    beat = (music[..., 0] > 0).long()
    up = torch.empty(batch, t + 1, dtype=torch.long)
    down = torch.empty_like(up)
    up[:, 0] = torch.randint(0, config.vocab_up, (batch,), generator=g)
    down[:, 0] = torch.randint(0, config.vocab_down, (batch,), generator=g)
    for k in range(t):
        up[:, k + 1] = (5 * up[:, k] + 1 + 2 * beat[:, k]) % config.vocab_up
        down[:, k + 1] = (3 * down[:, k] + beat[:, k]) % config.vocab_down
    return up[:, :t], down[:, :t], music, up[:, 1:], down[:, 1:]


def train_step(model, optimizer, batch: tuple[torch.Tensor, ...], device: torch.device) -> torch.Tensor:
    up, down, music, target_up, target_down = (t.to(device, non_blocking=True) for t in batch)
    optimizer.zero_grad(set_to_none=True)
    with autocast(device):
        loss = model(up, down, music, targets=(target_up, target_down))[2]
    loss.backward()
    optimizer.step()
    return loss.detach()


def paper_adam(model: torch.nn.Module, lr: float = 3e-4) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=lr, betas=(0.5, 0.999))  # configs/paper.yaml


# ---------------------------------------------------------------------------------------------- sections


def scan_speed(shape: tuple[int, int, int, int], reps: int, device: torch.device) -> dict:
    """Median ms of one scan of ``shape`` (B, L, ED, N), forward and forward+backward, per implementation
    available here; bf16 x, B, C and float32 delta, A, D, as the Mamba mixer feeds it under autocast."""
    x, delta, A, B, C, D = (t.to(device) for t in parity.scan_inputs(shape))
    x, B, C = x.bfloat16(), B.bfloat16(), C.bfloat16()
    batch, seq_len, d_inner, d_state = shape
    parallel_scan = Mamba(d_model=d_inner // 2, d_state=d_state, expand=2).to(device).selective_scan
    scans = {"mambapy_pscan": lambda *a: parallel_scan(*(t.float() for t in a))}
    if triton_scan.supports(x):
        scans["triton"] = triton_scan.selective_scan
    if (kernels := mamba_ssm_kernels()) is not None:

        def mamba_ssm_scan(x, delta, A, B, C, D):  # its layout (B, ED, L), (B, N, L); delta in u's dtype
            u, dt = x.transpose(1, 2), delta.to(x.dtype).transpose(1, 2)
            return kernels.selective_scan_fn(u, dt, A, B.transpose(1, 2), C.transpose(1, 2), D).transpose(
                1, 2
            )

        scans["mamba_ssm"] = mamba_ssm_scan
    out = {"shape_B_L_ED_N": list(shape), "inputs": "bf16 x, B, C; fp32 delta, A, D"}
    for name, scan in scans.items():
        args = [t.detach().requires_grad_() for t in (x, delta, A, B, C, D)]
        gy = torch.randn(batch, seq_len, d_inner, device=device)

        def forward(scan=scan, args=args):
            with torch.no_grad():
                return scan(*args)

        def forward_backward(scan=scan, args=args, gy=gy):
            y = scan(*args)
            return torch.autograd.grad(y, args, gy.to(y.dtype))

        out[name] = {
            "forward_ms": 1e3 * median_seconds(forward, device, 2, reps),
            "forward_backward_ms": 1e3 * median_seconds(forward_backward, device, 2, reps),
        }
        release(device)
    return out


def train_steps(config: GPTConfig, batch_size: int, warmup: int, steps: int, device: torch.device) -> dict:
    """Median training step of ``config`` at ``batch_size`` (bf16 autocast, Adam), memory, FLOPs, MFU."""
    from torch.utils.flop_counter import FlopCounterMode  # imports Triton: only after main() set the mode

    torch.manual_seed(0)
    model = build_gpt(config, device=device).train()
    optimizer = paper_adam(model)
    batch = synthetic_batch(config, batch_size, torch.Generator().manual_seed(0))

    def step() -> torch.Tensor:
        return train_step(model, optimizer, batch, device)

    for _ in range(warmup):
        step()
    release(device)
    step_s = median_seconds(step, device, 0, steps)
    peak = peak_memory_gb(device)
    with FlopCounterMode(display=False) as counter:
        loss = step()
    flops = counter.get_total_flops()  # forward + backward (Adam has no counted ops)
    parameters = sum(p.numel() for p in model.parameters())
    return {
        "parameters": parameters,
        "batch": batch_size,
        "scan": parity.scan_used(model, torch.empty(0, device=device)),
        "step_s": step_s,
        "steps_per_s": 1 / step_s,
        "windows_per_s": batch_size / step_s,
        "peak_memory_gb": peak,
        "flops_per_step": flops,
        "flops_6nd": 6 * parameters * batch_size * 3 * config.block_size,
        "achieved_tflops": flops / step_s / 1e12,
        "mfu": flops / step_s / PEAK_FLOPS,
        "loss_finite": bool(torch.isfinite(loss)),
    }


def generation(config: GPTConfig, songs: int, max_codes: int, device: torch.device) -> dict:
    """``songs`` songs of ``max_codes`` down to 80 % of it in one batch, cached and exact greedy decoding."""
    torch.manual_seed(0)
    model = build_gpt(config, device=device).eval()
    g = torch.Generator().manual_seed(4)
    lengths = torch.tensor([max_codes - (i % 10) * max_codes // 50 for i in range(songs)])
    music = torch.randn(songs, max_codes, config.n_music, generator=g)
    first = torch.randint(0, config.vocab_up, (songs, 1), generator=g)
    out: dict = {"songs": songs, "codes": int(lengths.sum()), "max_codes": max_codes}
    codes = {}
    for decode in ("cached", "exact"):
        sync(device)
        start = time.perf_counter()
        with autocast(device):
            codes[decode] = generate_codes(model, music, first, first, lengths, SamplingConfig(decode=decode))
        sync(device)
        seconds = time.perf_counter() - start
        dance_s = float(lengths.sum()) / CODES_PER_SECOND
        out[decode] = {"seconds": seconds, "dance_seconds_per_second": dance_s / seconds}
    valid = torch.arange(max_codes + 1)[None, 1:] <= lengths[:, None]
    same = [
        (a.cpu()[:, 1:] == b.cpu()[:, 1:])[valid].float().mean() for a, b in zip(*codes.values(), strict=True)
    ]
    out["cached_vs_exact_agreement"] = float(sum(same) / 2)
    out["peak_memory_gb"] = peak_memory_gb(device)
    del model
    release(device)
    return out


def training_run(
    config: GPTConfig, batch_size: int, lr: float, max_steps: int, deadline: float, device: torch.device
) -> dict:
    """A fresh model trained on :func:`synthetic_batch` for ``max_steps`` or until ``time.monotonic()``
    passes ``deadline``: the loss of every step and whether it fell (last tenth < 0.8 x first tenth)."""
    torch.manual_seed(0)
    model = build_gpt(config, device=device).train()
    optimizer = paper_adam(model, lr)
    g = torch.Generator().manual_seed(5)
    losses, start = [], time.perf_counter()
    while len(losses) < max_steps and time.monotonic() < deadline:
        losses.append(float(train_step(model, optimizer, synthetic_batch(config, batch_size, g), device)))
    seconds = time.perf_counter() - start
    tenth = max(1, len(losses) // 10)
    first, last = statistics.mean(losses[:tenth]), statistics.mean(losses[-tenth:])
    del model, optimizer
    release(device)
    return {
        "steps": len(losses),
        "stopped_by_budget": len(losses) < max_steps,
        "batch": batch_size,
        "lr": lr,
        "seconds": seconds,
        "uniform_loss": math.log(config.vocab_up) + math.log(config.vocab_down),
        "first_tenth_mean_loss": first,
        "last_tenth_mean_loss": last,
        "falling": last < 0.8 * first,
        "losses": [round(v, 4) for v in losses],
    }
