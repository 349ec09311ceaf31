"""Triton kernels of the selective scan (imported only by :mod:`danceba.models.triton_scan`; needs Triton).

Layouts (all contiguous): x, delta, y, gy, gx, gdelta: (B, L, ED); A: (ED, N); B, C: (B, L, N); D: (ED,);
states: (B, L, ED, N) float32. One program per (batch row b, block of BLOCK_D channels), sequential over
time, the (BLOCK_D, BLOCK_N) state in float32 registers; inputs of any float dtype are read and upcast.
Channels past ED and state entries past N are masked: they load as 0, so their decay is exp(0) = 1 and
their state and cotangent stay 0. Offsets are int64 (B L ED N passes 2^31 at large batches).

The maths is that of :mod:`danceba.models.selective_scan` (its docstring derives the backward)::

    h_t = exp(delta_t A) * h_{t-1} + (delta_t x_t) (x) B_t          y_t = h_t @ C_t + D * x_t
    gh_t = gy_t (x) C_t + exp(delta_{t+1} A) * gh_{t+1}
    gC_t = gy_t @ h_t      gB_t = (delta_t x_t) @ gh_t      gx_t = D gy_t + delta_t (gh_t @ B_t)
    s_t = gh_t * exp(delta_t A) * h_{t-1}
    gdelta_t = x_t (gh_t @ B_t) + sum_n s_t A      gA = sum_{b,t} delta_t s_t      gD = sum_{b,t} gy_t x_t
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def scan_forward_kernel(
    x_ptr,
    delta_ptr,
    A_ptr,
    B_ptr,
    C_ptr,
    D_ptr,
    y_ptr,
    states_ptr,
    seq_len,
    d_inner,
    d_state,
    BLOCK_D: tl.constexpr,
    BLOCK_N: tl.constexpr,
    STORE_Y: tl.constexpr,
    STORE_STATES: tl.constexpr,
):
    """Grid (B, cdiv(ED, BLOCK_D)). Writes y (its dtype) when STORE_Y, every h_t (float32) when STORE_STATES."""
    b = tl.program_id(0).to(tl.int64)
    offs_d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, BLOCK_N)
    mask_d = offs_d < d_inner
    mask_n = offs_n < d_state
    mask_dn = mask_d[:, None] & mask_n[None, :]
    A = tl.load(A_ptr + offs_d[:, None] * d_state + offs_n[None, :], mask=mask_dn, other=0.0).to(tl.float32)
    D = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    h = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
    for t in range(seq_len):
        row = b * seq_len + t
        x = tl.load(x_ptr + row * d_inner + offs_d, mask=mask_d, other=0.0).to(tl.float32)
        dt = tl.load(delta_ptr + row * d_inner + offs_d, mask=mask_d, other=0.0).to(tl.float32)
        B_t = tl.load(B_ptr + row * d_state + offs_n, mask=mask_n, other=0.0).to(tl.float32)
        h = tl.exp(dt[:, None] * A) * h + (dt * x)[:, None] * B_t[None, :]
        if STORE_Y:
            C_t = tl.load(C_ptr + row * d_state + offs_n, mask=mask_n, other=0.0).to(tl.float32)
            y = tl.sum(h * C_t[None, :], axis=1) + D * x
            tl.store(y_ptr + row * d_inner + offs_d, y.to(y_ptr.dtype.element_ty), mask=mask_d)
        if STORE_STATES:
            state_offs = (row * d_inner + offs_d[:, None]) * d_state + offs_n[None, :]
            tl.store(states_ptr + state_offs, h, mask=mask_dn)


@triton.jit
def scan_backward_kernel(
    x_ptr,
    delta_ptr,
    A_ptr,
    B_ptr,
    C_ptr,
    D_ptr,
    gy_ptr,
    states_ptr,
    gx_ptr,
    gdelta_ptr,
    gA_part_ptr,
    gB_part_ptr,
    gC_part_ptr,
    gD_part_ptr,
    batch,
    seq_len,
    d_inner,
    d_state,
    BLOCK_D: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    """Grid (B, cdiv(ED, BLOCK_D)); reverse time over the states of ``scan_forward_kernel(STORE_STATES)``.

    Writes gx, gdelta (B, L, ED) float32 in full, and partial sums reduced outside (no atomics, so the
    result does not depend on the order programs run in): gA_part (B, ED, N) (sum over b), gD_part (B, ED)
    (sum over b), gB_part and gC_part (n_blocks, B, L, N) (sum over the channel blocks).
    """
    b = tl.program_id(0).to(tl.int64)
    block = tl.program_id(1).to(tl.int64)
    offs_d = block * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, BLOCK_N)
    mask_d = offs_d < d_inner
    mask_n = offs_n < d_state
    mask_dn = mask_d[:, None] & mask_n[None, :]
    A = tl.load(A_ptr + offs_d[:, None] * d_state + offs_n[None, :], mask=mask_dn, other=0.0).to(tl.float32)
    D = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    state_cols = offs_d[:, None] * d_state + offs_n[None, :]  # (BLOCK_D, BLOCK_N) within one (b, t)
    last_row = b * seq_len + seq_len - 1
    h = tl.load(states_ptr + last_row * d_inner * d_state + state_cols, mask=mask_dn, other=0.0)  # h_{L-1}
    gh = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)  # cotangent of h_t, then of h_{t-1}
    gA = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
    gD = tl.zeros((BLOCK_D,), dtype=tl.float32)
    for i in range(seq_len):
        t = seq_len - 1 - i
        row = b * seq_len + t
        x = tl.load(x_ptr + row * d_inner + offs_d, mask=mask_d, other=0.0).to(tl.float32)
        dt = tl.load(delta_ptr + row * d_inner + offs_d, mask=mask_d, other=0.0).to(tl.float32)
        gy = tl.load(gy_ptr + row * d_inner + offs_d, mask=mask_d, other=0.0).to(tl.float32)
        B_t = tl.load(B_ptr + row * d_state + offs_n, mask=mask_n, other=0.0).to(tl.float32)
        C_t = tl.load(C_ptr + row * d_state + offs_n, mask=mask_n, other=0.0).to(tl.float32)
        # h_{t-1}: the row before (clamped in bounds at t = 0, where it is masked to h_{-1} = 0).
        prev_row = b * seq_len + tl.maximum(t - 1, 0)
        h_prev = tl.load(
            states_ptr + prev_row * d_inner * d_state + state_cols, mask=mask_dn & (t > 0), other=0.0
        )
        gh += gy[:, None] * C_t[None, :]
        gh_B = tl.sum(gh * B_t[None, :], axis=1)  # (BLOCK_D,)
        gC_t = tl.sum(gy[:, None] * h, axis=0)  # (BLOCK_N,), this block's share
        gB_t = tl.sum((dt * x)[:, None] * gh, axis=0)
        gh = gh * tl.exp(dt[:, None] * A)
        s = gh * h_prev  # the cotangent of delta_t A
        gA += dt[:, None] * s
        gD += gy * x
        tl.store(gx_ptr + row * d_inner + offs_d, dt * gh_B + D * gy, mask=mask_d)
        tl.store(gdelta_ptr + row * d_inner + offs_d, x * gh_B + tl.sum(s * A, axis=1), mask=mask_d)
        part_row = (block * batch + b) * seq_len + t
        tl.store(gB_part_ptr + part_row * d_state + offs_n, gB_t, mask=mask_n)
        tl.store(gC_part_ptr + part_row * d_state + offs_n, gC_t, mask=mask_n)
        h = h_prev
    tl.store(gA_part_ptr + b * d_inner * d_state + state_cols, gA, mask=mask_dn)
    tl.store(gD_part_ptr + b * d_inner + offs_d, gD, mask=mask_d)
