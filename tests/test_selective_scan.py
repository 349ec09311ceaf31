"""Tests for danceba.models.selective_scan: the fused scan against a naive loop, gradcheck, bad input."""

from __future__ import annotations

import pytest
import torch

from danceba.models.selective_scan import release_workspace, selective_scan


def naive_scan(x, delta, A, B, C, D):
    """h_t = exp(delta_t A) h_{t-1} + delta_t x_t B_t; y_t = h_t C_t + D x_t, one Python step per t."""
    h = torch.zeros(x.shape[0], x.shape[2], A.shape[1], dtype=x.dtype)
    ys = []
    for t in range(x.shape[1]):
        h = torch.exp(delta[:, t, :, None] * A) * h + (delta[:, t] * x[:, t])[..., None] * B[:, t, None, :]
        ys.append((h * C[:, t, None, :]).sum(-1) + D * x[:, t])
    return torch.stack(ys, dim=1)


def scan_inputs(batch: int, seq_len: int, d_inner: int = 6, d_state: int = 5, seed: int = 0):
    """x, delta, A, B, C, D in float64 with requires_grad; delta > 0 and A < 0 as in Mamba."""
    g = torch.Generator().manual_seed(seed)
    shapes = [(batch, seq_len, d_inner), (batch, seq_len, d_inner), (d_inner, d_state)]
    shapes += [(batch, seq_len, d_state), (batch, seq_len, d_state), (d_inner,)]
    x, delta, A, B, C, D = (torch.randn(s, generator=g, dtype=torch.float64) for s in shapes)
    delta, A = 0.05 + delta.abs(), -0.2 - A.abs()
    return [t.requires_grad_() for t in (x, delta, A, B, C, D)]


@pytest.mark.parametrize("seq_len", [1, 2, 9, 40])
def test_output_and_all_gradients_match_naive_scan(seq_len: int) -> None:
    args = scan_inputs(batch=3, seq_len=seq_len)
    cotangent = torch.randn(3, seq_len, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    got_y = selective_scan(*args)
    got = torch.autograd.grad((got_y * cotangent).sum(), args)
    want_y = naive_scan(*args)
    want = torch.autograd.grad((want_y * cotangent).sum(), args)
    torch.testing.assert_close(got_y, want_y, rtol=1e-10, atol=1e-12)
    for name, g, w in zip("x delta A B C D".split(), got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-11, msg=lambda s, n=name: f"d{n}: {s}")


def test_gradcheck() -> None:
    assert torch.autograd.gradcheck(selective_scan, scan_inputs(batch=2, seq_len=4, d_inner=3, d_state=2))


def test_workspace_is_reused_across_sizes_and_dtypes() -> None:
    """A long call leaves a large workspace; shorter float32/float64 calls after it stay exact."""
    release_workspace()
    for batch, seq_len in ((2, 30), (1, 3), (2, 30)):
        args = scan_inputs(batch, seq_len, seed=seq_len)
        got = torch.autograd.grad(selective_scan(*args).sum(), args)
        want = torch.autograd.grad(naive_scan(*args).sum(), args)
        for g, w in zip(got, want, strict=True):
            torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-11)
    args32 = [t.detach().float().requires_grad_() for t in scan_inputs(2, 5)]
    grads32 = torch.autograd.grad(selective_scan(*args32).sum(), args32)
    assert all(g.dtype == torch.float32 for g in grads32)


def test_mixed_dtypes_compute_in_the_promoted_dtype() -> None:
    """float32 activations with float64 A and D (a float64 Mamba's A/D): float64 result, input-dtype grads."""
    x, delta, A, B, C, D = scan_inputs(batch=2, seq_len=5)
    x32, delta32, B32, C32 = (t.detach().float().requires_grad_() for t in (x, delta, B, C))
    y = selective_scan(x32, delta32, A, B32, C32, D)
    assert y.dtype == torch.float64
    grads = torch.autograd.grad(y.sum(), [x32, delta32, A, B32, C32, D])
    assert [g.dtype for g in grads] == [torch.float32] * 2 + [torch.float64] + [torch.float32] * 2 + [
        torch.float64
    ]


def test_bad_shapes_raise_clear_errors() -> None:
    x, delta, A, B, C, D = (t.detach() for t in scan_inputs(batch=2, seq_len=5))
    with pytest.raises(ValueError, match=r"x and delta must both be \(B, L, ED\)"):
        selective_scan(x, delta[:, :4], A, B, C, D)
    with pytest.raises(ValueError, match=r"A must be \(ED=6, N\)"):
        selective_scan(x, delta, A[:5], B, C, D)
    with pytest.raises(ValueError, match=r"B and C must be \(B, L, N\) = \(2, 5, 5\)"):
        selective_scan(x, delta, A, B, C[..., :4], D)
    with pytest.raises(ValueError, match=r"D must be \(ED=6,\)"):
        selective_scan(x, delta, A, B, C, D[:2])
