"""Memory-light selective scan for CPU: a custom autograd Function with a hand-written backward.

The selective scan of Mamba (x, delta: (B, L, ED); A: (ED, N); B, C: (B, L, N); D: (ED,))::

    h_t = exp(delta_t A) * h_{t-1} + (delta_t x_t) (x) B_t      # (B, ED, N), h_{-1} = 0
    y_t = h_t @ C_t + D * x_t                                  # (B, ED)

Why this file exists. ``mambapy`` offers two scans, and both go through autograd: its Blelloch ``pscan``
and a naive sequential loop. Either way autograd keeps (B, L, ED, N) tensors (decay, drive, states) for
the backward: at Danceba's PMMM size (ED 3072, N 128, L 29 padded to 32, batch 2) that is ~290 MiB and
~1.4 s of forward+backward per call, 18 calls per GPT step. ``mamba_ssm`` avoids this on CUDA with a fused
kernel that keeps only the (B, ED, N) state in fast memory and recomputes it in the backward; that kernel
does not exist for CPU. :class:`SelectiveScanFn` is the CPU analogue in plain PyTorch:

* forward: one loop over time holding a single (B, ED, N) state, updated in place; saves only the
  inputs (O(B L ED), no N factor) for the backward.
* backward: recomputes the states h_{-1}..h_{L-1} and decays exp(delta_t A) into a (2L + 1, B, ED, N)
  workspace (182 MB at Danceba's size, kept per thread between calls: see :func:`_workspace`), then
  runs the reverse-time recurrence of the state cotangent::

      gh_t = gy_t (x) C_t + exp(delta_{t+1} A) * gh_{t+1}
      gC_t = gy_t @ h_t                gB_t = (delta_t x_t) @ gh_t
      gx_t = D gy_t + delta_t (gh_t @ B_t)
      s_t = gh_t * h_{t-1} * exp(delta_t A)        (the cotangent of delta_t A)
      gdelta_t = x_t (gh_t @ B_t) + sum_n s_t A    gA = sum_{b,t} delta_t s_t    gD = sum_{b,t} gy_t x_t

  All of it is vectorised over (B, ED, N) inside each step; the O(L) Python loop only issues a handful of
  in-place ops per step, and gC is one batched mat-vec over all (L, B) before the loop.

Gradients are exact (same maths, different evaluation order); the tests compare them with a naive scan at
1e-9 in float64. Not twice differentiable. Memory kept for the backward: the inputs only; the workspace:
(2L + 1) B ED N floats (for very long sequences, use ``pscan`` or split the sequence). The cost per call
is dominated by the 2 L B ED N exponentials (forward and recompute); keeping the decays from the forward
would save one of them but store L B ED N floats per call until the backward (1.6 GB over Danceba's 18
calls).
"""

from __future__ import annotations

import math
import threading
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable


def selective_scan(x: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor) -> Tensor:
    """x, delta: (B, L, ED); A: (ED, N); B, C: (B, L, N); D: (ED,) -> y: (B, L, ED).

    Computed in the promoted dtype of the inputs; gradients flow to all six inputs.
    """
    _check_shapes(x, delta, A, B, C, D)
    return SelectiveScanFn.apply(x, delta, A, B, C, D)


class SelectiveScanFn(torch.autograd.Function):
    """The scan of :func:`selective_scan` with a recompute-in-backward (see the module docstring)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor) -> Tensor:
        dtype = _common_dtype(x, delta, A, B, C, D)
        ctx.input_dtypes = tuple(t.dtype for t in (x, delta, A, B, C, D))
        x, delta, A, B, C, D = (t.detach().to(dtype) for t in (x, delta, A, B, C, D))
        ctx.save_for_backward(x, delta, A, B, C, D)
        batch, seq_len, d_inner = x.shape
        h = x.new_zeros(batch, d_inner, A.shape[1])  # (B, ED, N)
        decay = torch.empty_like(h)
        drive_scale = delta * x  # (B, L, ED)
        ys = x.new_empty(seq_len, batch, 1, d_inner)  # (L, B, 1, ED)
        for t in range(seq_len):
            torch.mul(delta[:, t, :, None], A, out=decay).exp_()
            h.mul_(decay).addcmul_(drive_scale[:, t, :, None], B[:, t, None, :])
            torch.bmm(C[:, t, None, :], h.transpose(1, 2), out=ys[t])  # C_t @ h_t^T: a fast mat-vec
        return ys.squeeze(2).transpose(0, 1) + D * x

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, gy: Tensor) -> tuple[Tensor, ...]:
        x, delta, A, B, C, D = ctx.saved_tensors
        gy = gy.to(x.dtype).contiguous()  # (B, L, ED)
        batch, seq_len, d_inner = x.shape
        d_state = A.shape[1]
        drive_scale = delta * x  # (B, L, ED)
        states, decays = _recompute_states(drive_scale, delta, A, B)  # (L + 1, B, ED, N), (L, B, ED, N)

        # gC_t = gy_t @ h_t, batched over (L, B): (LB, 1, ED) @ (LB, ED, N).
        gy_lb = gy.transpose(0, 1).reshape(seq_len * batch, 1, d_inner)
        gC = torch.bmm(gy_lb, states[1:].view(seq_len * batch, d_inner, d_state))
        gC = gC.view(seq_len, batch, d_state).transpose(0, 1)  # (B, L, N)

        gh = torch.zeros_like(states[0])  # (B, ED, N): gh_t, then exp(delta_t A) * gh_t
        gA = torch.zeros_like(gh)  # sum over t of delta_t * s_t, summed over the batch at the end
        s_A = torch.empty_like(gh)
        gh_B = x.new_empty(seq_len, batch, 1, d_inner)  # gh_t @ B_t
        gB = x.new_empty(seq_len, batch, 1, d_state)  # (delta_t x_t) @ gh_t
        g_decay_arg = x.new_zeros(seq_len, batch, d_inner)  # sum_n s_t A
        for t in range(seq_len - 1, -1, -1):
            gh.addcmul_(gy[:, t, :, None], C[:, t, None, :])
            torch.bmm(B[:, t, None, :], gh.transpose(1, 2), out=gh_B[t])
            torch.bmm(drive_scale[:, t, None, :], gh, out=gB[t])
            gh.mul_(decays[t])  # now the decayed cotangent that step t - 1 adds to
            if t > 0:  # h_{-1} = 0: s_0 = 0
                s = states[t].mul_(gh)  # h_{t-1} * exp(delta_t A) * gh_t, in place of h_{t-1}
                gA.addcmul_(s, delta[:, t, :, None])
                torch.sum(torch.mul(s, A, out=s_A), -1, out=g_decay_arg[t])
        gh_B = gh_B.squeeze(2).transpose(0, 1)  # (B, L, ED)
        gdelta = x * gh_B + g_decay_arg.transpose(0, 1)
        gx = delta * gh_B + D * gy
        gD = (gy * x).sum((0, 1))
        grads = (gx, gdelta, gA.sum(0), gB.squeeze(2).transpose(0, 1), gC, gD)
        return tuple(g.to(dtype) for g, dtype in zip(grads, ctx.input_dtypes, strict=True))


def _recompute_states(drive_scale: Tensor, delta: Tensor, A: Tensor, B: Tensor) -> tuple[Tensor, Tensor]:
    """states[t] = h_{t-1} for t = 0..L (states[0] = 0): (L + 1, B, ED, N); decays[t] = exp(delta_t A).

    Both are views of the thread's workspace (see :func:`_workspace`).
    """
    batch, seq_len, d_inner = delta.shape
    step_shape = (batch, d_inner, A.shape[1])
    buffer = _workspace((2 * seq_len + 1) * math.prod(step_shape), delta)
    states = buffer[: (seq_len + 1) * math.prod(step_shape)].view(seq_len + 1, *step_shape)
    decays = buffer[(seq_len + 1) * math.prod(step_shape) :].view(seq_len, *step_shape)
    states[0].zero_()
    for t in range(seq_len):
        torch.mul(delta[:, t, :, None], A, out=decays[t]).exp_()
        torch.mul(decays[t], states[t], out=states[t + 1])
        states[t + 1].addcmul_(drive_scale[:, t, :, None], B[:, t, None, :])
    return states, decays


_WORKSPACE = threading.local()


def _workspace(numel: int, like: Tensor) -> Tensor:
    """A flat buffer of ``numel`` elements (dtype/device of ``like``), kept between backward calls.

    A fresh 100 MB CPU tensor costs ~40 ms of page faults on every first touch (large allocations are
    mmap-ed and returned to the OS when freed), several times the scan's arithmetic; reusing one buffer per
    thread avoids that. It holds the largest recompute seen so far (182 MB at Danceba's size) until
    :func:`release_workspace`.
    """
    buffer = getattr(_WORKSPACE, "buffer", None)
    if buffer is None or buffer.numel() < numel or buffer.dtype != like.dtype or buffer.device != like.device:
        _WORKSPACE.buffer = None  # free the old one first
        buffer = _WORKSPACE.buffer = like.new_empty(numel)
    return buffer[:numel]


def release_workspace() -> None:
    """Free this thread's backward workspace (the next backward allocates it again)."""
    _WORKSPACE.buffer = None


def _common_dtype(*tensors: Tensor) -> torch.dtype:
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    return dtype


def _check_shapes(x: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor) -> None:
    if x.dim() != 3 or delta.shape != x.shape:
        raise ValueError(
            f"selective_scan: x and delta must both be (B, L, ED), got {tuple(x.shape)}, {tuple(delta.shape)}"
        )
    batch, seq_len, d_inner = x.shape
    if A.dim() != 2 or A.shape[0] != d_inner:
        raise ValueError(f"selective_scan: A must be (ED={d_inner}, N), got {tuple(A.shape)}")
    want = (batch, seq_len, A.shape[1])
    if tuple(B.shape) != want or tuple(C.shape) != want:
        raise ValueError(
            f"selective_scan: B and C must be (B, L, N) = {want}, got {tuple(B.shape)}, {tuple(C.shape)}"
        )
    if tuple(D.shape) != (d_inner,):
        raise ValueError(f"selective_scan: D must be (ED={d_inner},), got {tuple(D.shape)}")
