"""Selective scan on CUDA in Triton: forward and backward kernels of our own, no ``mamba-ssm`` build.

Same call and maths as the CPU fused scan :func:`danceba.models.selective_scan.selective_scan`
(x, delta: (B, L, ED); A: (ED, N); B, C: (B, L, N); D: (ED,) -> y: (B, L, ED))::

    h_t = exp(delta_t A) * h_{t-1} + (delta_t x_t) (x) B_t      # (B, ED, N), h_{-1} = 0
    y_t = h_t @ C_t + D * x_t                                  # (B, ED)

The kernels (:mod:`danceba.models.triton_scan_kernels`) run one program per (batch row, block of
channels), sequential over time, with the (block, N) state in float32 registers; inputs may be
bfloat16, float16 or float32 (read and upcast), A and D too. As on CPU, the forward keeps only the inputs
for the backward. The backward first re-runs the forward kernel to write every state h_t (float32,
(B, L, ED, N): 1.5 GB at Danceba's PMMM size at batch 32, freed when the backward returns), then runs the
reverse-time recurrence of the state cotangent (the CPU module's docstring derives it) in a second
kernel. gA, gD, gB and gC are sums over programs: each program writes its partial sum and torch adds
them up (no atomics: the result does not depend on the order in which programs run).

Dtypes: computed in float32; y has the promoted dtype of the six inputs (as on CPU: bfloat16 activations
with float32 A and D give float32 y); each gradient has its input's dtype. float64 is refused (use the
CPU scan). Not twice differentiable.

Triton is imported only when a scan runs, so this module imports without it. The kernels need a CUDA
device, or Triton's interpreter (``TRITON_INTERPRET=1`` set before Triton is imported), which runs them
on CPU tensors in numpy, slowly: that is how ``tests/test_triton_scan.py`` checks them against a naive
scan without a GPU. Block sizes are chosen by :func:`block_sizes` (untuned: no GPU was lent when this
was written); ``block_d`` overrides the channel block of both kernels (a power of two).
"""

from __future__ import annotations

import contextlib
import functools
import os
from types import ModuleType
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from danceba.models.selective_scan import _check_shapes

SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


@functools.cache
def triton_available() -> bool:
    """True when Triton imports (a CUDA device is a separate question: see :func:`supports`)."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def interpreter_mode() -> bool:
    """True when Triton's interpreter is requested (``TRITON_INTERPRET=1``): kernels run on CPU tensors."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def supports(x: Tensor) -> bool:
    """Whether the Triton scan can run on ``x``: Triton imports, a supported dtype, CUDA or the interpreter."""
    on_device = x.is_cuda or (x.device.type == "cpu" and interpreter_mode())
    return x.dtype in SUPPORTED_DTYPES and on_device and triton_available()


def selective_scan(
    x: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor, *, block_d: int | None = None
) -> Tensor:
    """x, delta: (B, L, ED); A: (ED, N); B, C: (B, L, N); D: (ED,) -> y: (B, L, ED).

    Gradients flow to all six inputs. ``block_d``: channels per program (a power of two; default
    :func:`block_sizes`).
    """
    _check(x, delta, A, B, C, D, block_d)
    return TritonSelectiveScanFn.apply(x, delta, A, B, C, D, block_d)


def block_sizes(d_inner: int, d_state: int, backward: bool) -> tuple[int, int, int]:
    """(BLOCK_D, BLOCK_N, num_warps) for a scan of ED = ``d_inner`` channels and N = ``d_state``.

    BLOCK_N covers the whole state (next power of two); a program's tile is about 1,024 floats
    (BLOCK_D = 8 at N = 128), 4 warps in the forward (8 floats a thread), 8 in the backward, which keeps
    four tiles (h_t, h_{t-1}, gh, gA). Compiled for sm_90 by Triton 3.7 (``tests/test_triton_scan.py``
    runs ptxas): 64 and 99 registers a thread, no spills, at Danceba's N = 128. Not timed on a GPU yet.
    """
    block_n = _next_power_of_2(d_state)
    block_d = max(1, min(1024 // block_n, _next_power_of_2(d_inner)))
    return block_d, block_n, 8 if backward else 4


class TritonSelectiveScanFn(torch.autograd.Function):
    """The scan of :func:`selective_scan`: Triton forward, recompute + reverse-time Triton backward."""

    @staticmethod
    def forward(
        ctx: Any, x: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor, block_d: int | None
    ) -> Tensor:
        inputs = tuple(t.detach().contiguous() for t in (x, delta, A, B, C, D))
        ctx.input_dtypes = tuple(t.dtype for t in inputs)
        ctx.block_d = block_d
        ctx.save_for_backward(*inputs)
        out_dtype = functools.reduce(torch.promote_types, ctx.input_dtypes)
        y = inputs[0].new_empty(inputs[0].shape, dtype=out_dtype)
        if y.numel():
            with _device_of(y):
                _launch_forward(inputs, y, states=None, block_d=block_d, backward=False)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, gy: Tensor) -> tuple[Tensor | None, ...]:
        inputs = ctx.saved_tensors
        with _device_of(gy):
            grads = _backward(inputs, gy.contiguous(), ctx.block_d)
        cast = tuple(g.to(dtype) for g, dtype in zip(grads, ctx.input_dtypes, strict=True))
        return (*cast, None)


# ---------------------------------------------------------------------------------------------- launches


@functools.cache
def _kernels() -> ModuleType:
    from danceba.models import triton_scan_kernels

    return triton_scan_kernels


def _launch_forward(
    inputs: tuple[Tensor, ...], y: Tensor | None, states: Tensor | None, block_d: int | None, backward: bool
) -> None:
    """Run the forward kernel: y (B, L, ED) when given, every state (B, L, ED, N) float32 when given."""
    x, delta, A, B, C, D = inputs
    batch, seq_len, d_inner = x.shape
    d_state = A.shape[1]
    default_d, block_n, num_warps = block_sizes(d_inner, d_state, backward)
    block = block_d or default_d
    unused = y if y is not None else states  # the pointer of a store that is compiled out
    _kernels().scan_forward_kernel[(batch, _cdiv(d_inner, block))](
        x, delta, A, B, C, D, y if y is not None else unused, states if states is not None else unused,
        seq_len, d_inner, d_state,
        BLOCK_D=block, BLOCK_N=block_n, STORE_Y=y is not None, STORE_STATES=states is not None,
        num_warps=num_warps,
    )  # fmt: skip


def _backward(inputs: tuple[Tensor, ...], gy: Tensor, block_d: int | None) -> tuple[Tensor, ...]:
    """(gx, gdelta, gA, gB, gC, gD) in float32 for the upstream gradient gy (B, L, ED)."""
    x, delta, A, B, C, D = inputs
    batch, seq_len, d_inner = x.shape
    d_state = A.shape[1]
    f32 = {"dtype": torch.float32, "device": x.device}
    if x.numel() == 0:
        shapes = (x.shape, x.shape, A.shape, B.shape, C.shape, D.shape)
        return tuple(torch.zeros(s, **f32) for s in shapes)
    default_d, block_n, num_warps = block_sizes(d_inner, d_state, backward=True)
    block = block_d or default_d
    n_blocks = _cdiv(d_inner, block)
    states = torch.empty(batch, seq_len, d_inner, d_state, **f32)
    _launch_forward(inputs, None, states, block, backward=True)
    gx, gdelta = torch.empty(x.shape, **f32), torch.empty(x.shape, **f32)
    gA_part = torch.empty(batch, d_inner, d_state, **f32)
    gD_part = torch.empty(batch, d_inner, **f32)
    gB_part = torch.empty(n_blocks, batch, seq_len, d_state, **f32)
    gC_part = torch.empty(n_blocks, batch, seq_len, d_state, **f32)
    _kernels().scan_backward_kernel[(batch, n_blocks)](
        x, delta, A, B, C, D, gy, states, gx, gdelta, gA_part, gB_part, gC_part, gD_part,
        batch, seq_len, d_inner, d_state, BLOCK_D=block, BLOCK_N=block_n, num_warps=num_warps,
    )  # fmt: skip
    del states
    return gx, gdelta, gA_part.sum(0), gB_part.sum(0), gC_part.sum(0), gD_part.sum(0)


def _device_of(t: Tensor) -> contextlib.AbstractContextManager:
    """Make ``t``'s GPU the current one (Triton launches on the current device), e.g. cuda:1 under DDP."""
    return torch.cuda.device(t.device) if t.is_cuda else contextlib.nullcontext()


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _next_power_of_2(n: int) -> int:
    return 1 << max(n - 1, 0).bit_length()


# ---------------------------------------------------------------------------------------------- checks


def _check(x: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor, block_d: int | None) -> None:
    _check_shapes(x, delta, A, B, C, D)
    tensors = {"x": x, "delta": delta, "A": A, "B": B, "C": C, "D": D}
    for name, t in tensors.items():
        if t.dtype not in SUPPORTED_DTYPES:
            raise ValueError(
                f"triton selective_scan: {name} is {t.dtype}; the kernels take float32/float16/bfloat16 "
                "(state in float32). For float64 use danceba.models.selective_scan (CPU)."
            )
        if t.device != x.device:
            raise ValueError(f"triton selective_scan: {name} is on {t.device}, x on {x.device}")
    if block_d is not None and (block_d < 1 or block_d & (block_d - 1)):
        raise ValueError(f"triton selective_scan: block_d must be a power of two, got {block_d}")
    if not (x.is_cuda or interpreter_mode()):
        raise RuntimeError(
            f"triton selective_scan: needs CUDA tensors (got {x.device}), or TRITON_INTERPRET=1 set before "
            "Triton is imported to run the kernels on CPU in Triton's interpreter"
        )
    if not triton_available():
        raise RuntimeError("triton selective_scan: Triton is not installed (`pip install triton`)")
