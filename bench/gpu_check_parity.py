"""Parity of the CUDA paths with the CPU reference, for ``bench/gpu_check.py`` (torch + project models only).

Every comparison builds its inputs or weights once on CPU (seeded), runs the path under test on
``device`` and the reference on CPU, and reports relative errors ``max |got - want| / max |want|`` per
tensor (gradients: the worst over parameters, and its name; see ``GRAD_FLOOR``) with a pass flag against
a stated tolerance.
TF32 is turned off (``float32_matmuls``) so that float32 means float32 on both sides.

* :func:`scan_parity`: the Triton scan (float32, or bfloat16 x/delta/B/C with float32 A/D) against the CPU
  fused scan in float64 on the same (rounded) values: y and all six gradients.
* :func:`mamba_parity`: one Mamba mixer on ``device`` with ``backend`` against ``"fused"`` on CPU.
* :func:`gpt_parity`: a whole GPT (eval mode, so no dropout) on ``device``: logits and every parameter's
  gradient of the loss, against the same weights on CPU.
* :func:`decoding_parity`: on ``device``, cached against exact decoding for a causal model over one
  window (where they must agree, ``danceba.generation.sampler``); and exact on ``device`` against exact on CPU.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Iterator

import torch
from torch import Tensor

from danceba.features.phase import official_stft_phase
from danceba.generation.config import SamplingConfig
from danceba.generation.sampler import context_window, generate_codes
from danceba.models import triton_scan
from danceba.models.gpt import CrossCondGPT, build_gpt
from danceba.models.gpt_config import GPTConfig
from danceba.models.mamba import Mamba
from danceba.models.selective_scan import selective_scan as fused_scan

FLOAT32_TOL = 1e-4  # CUDA float32 (fast exp, other summation order) vs float64 / CPU float32
HALF_TOL = 2e-2  # gradients returned in bfloat16 (2^-9 rounding), GPT gradients through many layers
GRAD_TOL = 1e-3
# A parameter whose gradient is ~0 in exact arithmetic (attention key biases: softmax ignores a constant
# added to every score) is compared on GRAD_FLOOR x the model's largest gradient instead of its own.
GRAD_FLOOR = 1e-3
AGREEMENT_MIN = 0.95  # equal greedy codes: an argmax can flip on a near-tie, and a flip changes what follows


def relative_error(got: Tensor, want: Tensor, floor: float = 1e-12) -> float:
    """max |got - want| / max(max |want|, floor)."""
    got, want = got.detach().cpu().double(), want.detach().cpu().double()
    return ((got - want).abs().max() / want.abs().max().clamp_min(floor)).item()


@contextlib.contextmanager
def float32_matmuls() -> Iterator[None]:
    """No TF32 in matmuls or convolutions inside the block (restored after)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def scan_used(model: torch.nn.Module, x: Tensor) -> str:
    """Which scan the first Mamba of ``model`` runs for an input like ``x``."""
    mamba = next((m for m in model.modules() if isinstance(m, Mamba)), None)
    if mamba is None:
        return "none"
    if mamba._kernels_for(x) is not None:
        return "mamba_ssm"
    scan = mamba._scan_for(x)
    if scan is triton_scan.selective_scan:
        return "triton"
    return "fused" if scan is fused_scan else "mambapy"


def scan_inputs(shape: tuple[int, int, int, int], seed: int = 0) -> list[Tensor]:
    """x, delta (B, L, ED); A (ED, N); B, C (B, L, N); D (ED,) on CPU, float32, Mamba-like ranges."""
    batch, seq_len, d_inner, d_state = shape
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, seq_len, d_inner, generator=g)
    delta = torch.nn.functional.softplus(torch.randn(batch, seq_len, d_inner, generator=g) - 2)
    A = -torch.arange(1, d_state + 1, dtype=torch.float32).repeat(d_inner, 1)  # A_log init: log(1..N)
    B, C = (torch.randn(batch, seq_len, d_state, generator=g) for _ in range(2))
    return [x, delta, A, B, C, torch.ones(d_inner)]


def scan_parity(device: torch.device, shape: tuple[int, int, int, int], half: torch.dtype | None) -> dict:
    """The Triton scan on ``device`` vs the CPU fused scan in float64 (``half``: dtype of x, delta, B, C)."""
    inputs = scan_inputs(shape)
    if half is not None:
        inputs = [t.to(half) if i in (0, 1, 3, 4) else t for i, t in enumerate(inputs)]
    gy = torch.randn(shape[:3], generator=torch.Generator().manual_seed(1))
    got_args = [t.to(device).requires_grad_() for t in inputs]
    y = triton_scan.selective_scan(*got_args)
    got = [y, *torch.autograd.grad(y, got_args, gy.to(device, y.dtype))]
    want_args = [t.double().requires_grad_() for t in inputs]
    y_ref = fused_scan(*want_args)
    want = [y_ref, *torch.autograd.grad(y_ref, want_args, gy.double())]
    names = ("y", "dx", "ddelta", "dA", "dB", "dC", "dD")
    errors = {n: relative_error(g, w) for n, g, w in zip(names, got, want, strict=True)}
    half_grads = ("dx", "ddelta", "dB", "dC") if half is not None else ()
    tolerances = {n: HALF_TOL if n in half_grads else FLOAT32_TOL for n in names}
    return {
        "shape_B_L_ED_N": list(shape),
        "inputs": str(half or torch.float32),
        "errors": errors,
        "tolerances": tolerances,
        "ok": all(errors[n] <= tolerances[n] for n in names),
    }


def with_backend(module: torch.nn.Module, backend: str) -> torch.nn.Module:
    """``module`` with every Mamba layer in it set to ``backend``."""
    for m in module.modules():
        if isinstance(m, Mamba):
            m.backend = backend
    return module


def _output_and_grads(module: torch.nn.Module, inputs: tuple[Tensor, ...], loss_of) -> list[Tensor]:
    output, loss = loss_of(module, inputs)
    return [output, *torch.autograd.grad(loss, list(module.parameters()))]


def _compare(
    reference: torch.nn.Module,
    candidate: torch.nn.Module,
    inputs: tuple[Tensor, ...],
    loss_of,
    exempt: tuple[str, ...] = (),
) -> dict:
    """``loss_of(module, inputs) -> (output, loss)``: ``candidate`` (on its device) vs ``reference`` (CPU).

    Parameters whose names start with one of ``exempt`` are reported apart and do not decide ``ok``.
    """
    device = next(candidate.parameters()).device
    with float32_matmuls():
        got = _output_and_grads(candidate, tuple(t.to(device) for t in inputs), loss_of)
    want = _output_and_grads(reference, inputs, loss_of)
    names = [name for name, _ in reference.named_parameters()]
    floor = GRAD_FLOOR * max(w.abs().max().item() for w in want[1:])
    errors = {n: relative_error(g, w, floor) for n, g, w in zip(names, got[1:], want[1:], strict=True)}
    judged = {n: e for n, e in errors.items() if not n.startswith(exempt)} if exempt else errors
    worst = max(judged, key=judged.get)
    output_error = relative_error(got[0], want[0])
    result = {
        "output_error": output_error,
        "worst_grad_error": judged[worst],
        "worst_grad": worst,
        "tolerances": {"output": FLOAT32_TOL, "grad": GRAD_TOL},
        "ok": output_error <= FLOAT32_TOL and judged[worst] <= GRAD_TOL,
    }
    if exempt:
        result["exempt"] = list(exempt)
        result["exempt_worst_grad_error"] = max(e for n, e in errors.items() if n not in judged)
    return result


def mamba_parity(device: torch.device, backend: str, kwargs: dict, batch: int, seq_len: int) -> dict:
    """``Mamba(**kwargs)`` on ``device`` with ``backend`` vs ``"fused"`` on CPU: y and parameter grads."""
    torch.manual_seed(0)
    reference = Mamba(**kwargs, backend="fused")
    candidate = with_backend(copy.deepcopy(reference).to(device), backend)
    x = torch.randn(batch, seq_len, kwargs["d_model"], generator=torch.Generator().manual_seed(2))

    def loss_of(module: torch.nn.Module, inputs: tuple[Tensor, ...]) -> tuple[Tensor, Tensor]:
        y = module(*inputs)
        return y, y.square().mean()

    return {"backend": backend, **_compare(reference, candidate, (x,), loss_of)}


def gpt_inputs(config: GPTConfig, batch: int, seed: int = 0) -> tuple[Tensor, ...]:
    """up, down, music, target_up, target_down of one window: (B, t) codes, (B, t, n_music) music."""
    g = torch.Generator().manual_seed(seed)
    t = config.block_size
    codes = [torch.randint(0, config.vocab_up, (batch, t), generator=g) for _ in range(4)]
    music = torch.randn(batch, t, config.n_music, generator=g)
    return codes[0], codes[1], music, codes[2], codes[3]


def gpt_parity(config: GPTConfig, device: torch.device, batch: int, backend: str = "auto") -> dict:
    """The GPT on ``device`` (its Mamba layers on ``backend``) vs CPU: logits and every parameter grad.

    PRE feeds ``angle(STFT(music))`` to linear layers, and a bin whose value is real and negative has the
    angle +pi or -pi depending on the sign of a zero imaginary part: if the device's FFT gives the other
    sign (``stft_phase.branch_cut_flips`` > 0), the PRE parameters' gradients differ by design and are
    reported apart instead of failing the check; the wrapped phase error must stay small either way.
    """
    torch.manual_seed(0)
    reference = build_gpt(config).eval()
    candidate = with_backend(copy.deepcopy(reference).to(device), backend)

    def loss_of(module: CrossCondGPT, args: tuple[Tensor, ...]) -> tuple[Tensor, Tensor]:
        up, down, music, target_up, target_down = args
        logits_up, _, loss = module(up, down, music, targets=(target_up, target_down))
        return logits_up, loss

    inputs = gpt_inputs(config, batch)
    result = {
        "stack": config.stack,
        "batch": batch,
        "scan": scan_used(candidate, torch.empty(0, device=device)),
    }
    exempt: tuple[str, ...] = ()
    if config.stack == "danceba" and config.pre and config.pre_mode == "official":
        result["stft_phase"] = stft_phase_parity(config, inputs[2], device)
        if result["stft_phase"]["branch_cut_flips"]:
            exempt = ("gpt_base.position_scale", "gpt_base.pos_emb.")
    result |= _compare(reference, candidate, inputs, loss_of, exempt)
    if "stft_phase" in result:
        result["ok"] = result["ok"] and result["stft_phase"]["max_wrapped_error"] <= FLOAT32_TOL * math.pi
    return result


def stft_phase_parity(config: GPTConfig, music: Tensor, device: torch.device) -> dict:
    """PRE's official STFT phase of ``music`` (B, t, n_music) on ``device`` vs CPU: the largest difference
    modulo 2 pi, and how many entries sit on opposite sides of the branch cut (differ by ~2 pi)."""
    kwargs = {"n_fft": config.pre_n_fft, "hop_length": config.pre_hop_length, "seq_len": config.block_size}
    want = official_stft_phase(music, **kwargs).double()
    got = official_stft_phase(music.to(device), **kwargs).cpu().double()
    wrapped = torch.remainder(got - want + math.pi, 2 * math.pi) - math.pi
    return {
        "max_wrapped_error": wrapped.abs().max().item(),
        "branch_cut_flips": int(((got - want).abs() > math.pi).sum()),
        "entries": want.numel(),
    }


def decoding_parity(config: GPTConfig, device: torch.device, batch: int, against_cpu: bool) -> dict:
    """Greedy codes over one window (L = block_size - 1 music frames) of a causal model on ``device``:
    cached vs exact (must agree), and exact vs exact on CPU when ``against_cpu``. Fractions of equal codes."""
    torch.manual_seed(0)
    model = build_gpt(config).eval()
    g = torch.Generator().manual_seed(3)
    music = torch.randn(batch, context_window(model), config.n_music, generator=g)
    first = torch.randint(0, config.vocab_up, (batch, 1), generator=g)
    on_device = copy.deepcopy(model).to(device)
    with float32_matmuls():
        runs = {
            decode: generate_codes(on_device, music, first, first, sampling=SamplingConfig(decode=decode))
            for decode in ("exact", "cached")
        }
    result = {"stack": config.stack, "batch": batch, "codes": int(music.shape[1])}
    if config.stack == "danceba":
        result["pre"] = config.pre
    result["cached_vs_exact"] = _agreement(runs["cached"], runs["exact"])
    if against_cpu:
        result["device_vs_cpu_exact"] = _agreement(runs["exact"], generate_codes(model, music, first, first))
    agreements = [result["cached_vs_exact"], result.get("device_vs_cpu_exact", 1.0)]
    result["ok"] = min(agreements) >= AGREEMENT_MIN
    return result


def _agreement(a: tuple[Tensor, Tensor], b: tuple[Tensor, Tensor]) -> float:
    """Fraction of equal codes (up and down, the generated columns only)."""
    equal = [(x[:, 1:].cpu() == y[:, 1:].cpu()).float().mean() for x, y in zip(a, b, strict=True)]
    return float(sum(equal) / len(equal))
