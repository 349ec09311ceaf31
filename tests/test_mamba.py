"""Tests for danceba.models.mamba: every backend against a naive sequential selective scan written here."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from danceba.models import mamba as mamba_module
from danceba.models.mamba import Mamba, MambaState, mamba_ssm_kernels, ssm_update
from danceba.models.selective_scan import selective_scan as fused_selective_scan

TINY = {"d_model": 8, "d_state": 4, "d_conv": 4, "expand": 2}  # d_inner 16, dt_rank 1
LENGTHS = (1, 7, 29, 64)

# mamba_ssm's Mamba(d_model=64) (ecosystem-notes.md, "Mamba").
MAMBA_SSM_SHAPES_D64 = {
    "A_log": (128, 16),
    "D": (128,),
    "in_proj.weight": (256, 64),
    "conv1d.weight": (128, 1, 4),
    "conv1d.bias": (128,),
    "x_proj.weight": (36, 128),
    "dt_proj.weight": (128, 4),
    "dt_proj.bias": (128,),
    "out_proj.weight": (64, 128),
}


# ---------------------------------------------------------------------------------------------- reference


def naive_mamba(m: Mamba, x: torch.Tensor) -> torch.Tensor:
    """The Mamba equations with one Python step per time step. x: (B, L, D) -> (B, L, D)."""
    d_state, d_conv = m.config.d_state, m.config.d_conv
    dt_rank = m.dt_proj.weight.shape[1]
    seq_len = x.shape[1]
    u, z = F.linear(x, m.in_proj.weight, m.in_proj.bias).chunk(2, dim=-1)  # (B, L, ED)
    u_padded = F.pad(u, (0, 0, d_conv - 1, 0))  # zeros before t = 0
    conv = sum(u_padded[:, k : k + seq_len] * m.conv1d.weight[:, 0, k] for k in range(d_conv))
    if m.conv1d.bias is not None:
        conv = conv + m.conv1d.bias
    u = F.silu(conv)
    dt, B, C = torch.split(u @ m.x_proj.weight.T, [dt_rank, d_state, d_state], dim=-1)
    dt = F.softplus(dt @ m.dt_proj.weight.T + m.dt_proj.bias)  # (B, L, ED)
    A = -torch.exp(m.A_log)  # (ED, N)
    h = torch.zeros(x.shape[0], u.shape[-1], d_state, dtype=x.dtype)
    ys = []
    for t in range(seq_len):
        dt_t = dt[:, t, :, None]  # (B, ED, 1)
        h = torch.exp(dt_t * A) * h + dt_t * B[:, t, None, :] * u[:, t, :, None]
        ys.append((h * C[:, t, None, :]).sum(-1) + m.D * u[:, t])
    y = torch.stack(ys, dim=1) * F.silu(z)
    return F.linear(y, m.out_proj.weight, m.out_proj.bias)


def naive_selective_scan_fn(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """A stand-in for mamba_ssm's selective_scan_fn, in its layout: u, delta, z (B, ED, L); B, C (B, N, L)."""
    if delta_bias is not None:
        delta = delta + delta_bias[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    h = torch.zeros(u.shape[0], u.shape[1], A.shape[1], dtype=u.dtype)
    ys = []
    for t in range(u.shape[-1]):
        h = torch.exp(delta[..., t, None] * A) * h + (delta[..., t] * u[..., t])[..., None] * B[:, None, :, t]
        ys.append((h * C[:, None, :, t]).sum(-1) + D * u[..., t])
    y = torch.stack(ys, dim=-1)
    return y if z is None else y * F.silu(z)


def naive_mamba_inner_fn(
    xz, conv1d_weight, conv1d_bias, x_proj_weight, delta_proj_weight, out_proj_weight, out_proj_bias, A,
    B=None, C=None, D=None, delta_bias=None, delta_softplus=True,
):  # fmt: skip
    """A stand-in for mamba_ssm's mamba_inner_fn (the contract of its mamba_inner_ref). xz: (B, 2ED, L)."""
    seq_len, dt_rank, d_state = xz.shape[-1], delta_proj_weight.shape[1], A.shape[1]
    u, z = xz.chunk(2, dim=1)
    u = F.silu(
        F.conv1d(u, conv1d_weight, conv1d_bias, padding=conv1d_weight.shape[-1] - 1, groups=u.shape[1])
    )
    u = u[..., :seq_len]
    x_dbl = F.linear(u.transpose(1, 2), x_proj_weight)  # (B, L, dt_rank + 2N)
    delta = (x_dbl[..., :dt_rank] @ delta_proj_weight.T).transpose(1, 2)
    B = x_dbl[..., dt_rank : dt_rank + d_state].transpose(1, 2)
    C = x_dbl[..., -d_state:].transpose(1, 2)
    y = naive_selective_scan_fn(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    return F.linear(y.transpose(1, 2), out_proj_weight, out_proj_bias)


# ---------------------------------------------------------------------------------------------- helpers


def make_mamba(seed: int = 0, dtype: torch.dtype = torch.float64, **kwargs) -> Mamba:
    """A tiny Mamba whose A_log and D are perturbed so that no parameter has a special value."""
    torch.manual_seed(seed)
    m = Mamba(**{**TINY, **kwargs}).to(dtype)
    with torch.no_grad():
        m.A_log.add_(0.3 * torch.randn_like(m.A_log))
        m.D.add_(0.5 * torch.randn_like(m.D))
    return m


def inputs(batch: int, seq_len: int, d_model: int = TINY["d_model"], seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, seq_len, d_model, generator=g, dtype=torch.float64, requires_grad=True)


def output_and_grads(fn, m: Mamba, x: torch.Tensor) -> list[torch.Tensor]:
    """[y, dL/dx, dL/dparam...] for L = <y, fixed random cotangent>."""
    y = fn(x)
    cotangent = torch.randn(y.shape, generator=torch.Generator().manual_seed(2), dtype=y.dtype)
    grads = torch.autograd.grad((y * cotangent).sum(), [x, *m.parameters()])
    return [y.detach(), *grads]


def assert_all_close(got: list[torch.Tensor], want: list[torch.Tensor], names: list[str], **tol) -> None:
    for g, w, name in zip(got, want, names, strict=True):
        torch.testing.assert_close(g, w, msg=lambda s, n=name: f"{n}: {s}", **tol)


# ---------------------------------------------------------------------------------------------- parameters


def test_state_dict_has_mamba_ssm_names_and_shapes() -> None:
    m = Mamba(d_model=64)
    assert {k: tuple(v.shape) for k, v in m.state_dict().items()} == MAMBA_SSM_SHAPES_D64


def test_bias_flags_add_and_remove_keys_like_mamba_ssm() -> None:
    keys = set(Mamba(d_model=64, bias=True, conv_bias=False).state_dict())
    assert keys == (set(MAMBA_SSM_SHAPES_D64) | {"in_proj.bias", "out_proj.bias"}) - {"conv1d.bias"}


def test_paper_config_sizes() -> None:
    """Danceba's PMMM Mamba: d_inner 3072, dt_rank 48, ~8.57 M parameters (reference-code-facts §1.3)."""
    m = Mamba(d_model=768, d_state=128, d_conv=4, expand=4)
    assert m.d_inner == 3072 and m.dt_proj.weight.shape == (3072, 48)
    assert sum(p.numel() for p in m.parameters()) == 8_573_952


def test_initialisation_follows_mamba_ssm() -> None:
    torch.manual_seed(0)
    m = Mamba(d_model=32, d_state=8, dt_rank=6, dt_min=0.01, dt_max=0.05)
    torch.testing.assert_close(m.A_log, torch.log(torch.arange(1.0, 9.0)).expand(64, 8))
    torch.testing.assert_close(m.D, torch.ones(64))
    dt = F.softplus(m.dt_proj.bias.detach())
    assert dt.min() >= 0.01 * (1 - 1e-5) and dt.max() <= 0.05 * (1 + 1e-5)
    assert dt.std() > 0  # random, not constant
    assert m.dt_proj.weight.abs().max() <= 6**-0.5
    assert m.A_log._no_weight_decay and m.D._no_weight_decay and m.dt_proj.bias._no_reinit


def test_dt_init_floor_and_constant_dt_init_are_honoured() -> None:
    """mambapy's config has dt_init_floor as a class attribute; the constructor argument must still apply."""
    m = Mamba(d_model=16, dt_min=1e-5, dt_max=1e-5, dt_init_floor=1e-3, dt_init="constant", dt_scale=2.0)
    torch.testing.assert_close(F.softplus(m.dt_proj.bias.detach()), torch.full((32,), 1e-3))
    torch.testing.assert_close(m.dt_proj.weight.detach(), torch.full((32, 1), 2.0))


# ---------------------------------------------------------------------------------------------- forward


@pytest.mark.parametrize("backend", ["fused", "mambapy", "reference"])
@pytest.mark.parametrize("seq_len", LENGTHS)
def test_forward_and_gradients_match_naive_scan(backend: str, seq_len: int) -> None:
    m = make_mamba(backend=backend)
    x = inputs(batch=2, seq_len=seq_len)
    names = ["y", "x", *(n for n, _ in m.named_parameters())]
    got = output_and_grads(m, m, x)
    want = output_and_grads(lambda v: naive_mamba(m, v), m, x)
    assert_all_close(got, want, names, rtol=1e-9, atol=1e-11)


def test_biases_and_explicit_dt_rank_match_naive_scan() -> None:
    m = make_mamba(bias=True, conv_bias=False, dt_rank=3, d_conv=2, backend="mambapy")
    x = inputs(batch=3, seq_len=11)
    names = ["y", "x", *(n for n, _ in m.named_parameters())]
    assert_all_close(output_and_grads(m, m, x), output_and_grads(lambda v: naive_mamba(m, v), m, x), names)


def test_biases_and_explicit_dt_rank_match_naive_scan_fused() -> None:
    m = make_mamba(bias=True, conv_bias=False, dt_rank=3, d_conv=2, backend="fused")
    x = inputs(batch=3, seq_len=11)
    names = ["y", "x", *(n for n, _ in m.named_parameters())]
    assert_all_close(output_and_grads(m, m, x), output_and_grads(lambda v: naive_mamba(m, v), m, x), names)


def test_auto_backend_on_cpu_is_fused() -> None:
    m = make_mamba(backend="auto")
    fused = make_mamba(backend="fused")
    x = inputs(batch=2, seq_len=13)
    assert torch.equal(m(x), fused(x))
    # the choice itself (comparing bits with another scan says nothing where both round alike)
    assert m._scan_for(x) is fused_selective_scan
    assert make_mamba(backend="mambapy")._scan_for(x) is not fused_selective_scan


@pytest.mark.parametrize("seq_len", [1, 29])
def test_fused_matches_pscan_in_float32(seq_len: int) -> None:
    """float32, the training precision: fused and the parallel scan agree on outputs and gradients."""
    fused = make_mamba(dtype=torch.float32, backend="fused")
    pscan = make_mamba(dtype=torch.float32, backend="mambapy")
    x = inputs(batch=2, seq_len=seq_len).detach().float().requires_grad_()
    names = ["y", "x", *(n for n, _ in fused.named_parameters())]
    got, want = output_and_grads(fused, fused, x), output_and_grads(pscan, pscan, x)
    assert all(g.dtype == torch.float32 for g in got)
    assert_all_close(got, want, names, rtol=1e-4, atol=1e-5)


def test_fused_keeps_no_state_sized_tensors_for_the_backward() -> None:
    """Autograd saves nothing with a (B, L, ED, N) shape on the fused path (the parallel scan does)."""
    state_sized = {"fused": 0, "mambapy": 0}
    for backend in state_sized:
        m = make_mamba(backend=backend)
        x = inputs(batch=2, seq_len=7)

        def pack(t: torch.Tensor, backend: str = backend) -> torch.Tensor:
            state_sized[backend] += t.shape[-2:] == (16, 4) and t.dim() == 4
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            m(x)
    assert state_sized == {"fused": 0, "mambapy": state_sized["mambapy"]} and state_sized["mambapy"] > 0


@pytest.mark.parametrize("with_causal_conv1d", [False, True])
def test_mamba_ssm_call_layout_with_stand_in_kernels(with_causal_conv1d: bool) -> None:
    """The mamba_ssm path passes tensors in the kernels' layouts (checked on CPU with naive stand-ins)."""
    m = make_mamba()
    kernels = SimpleNamespace(
        selective_scan_fn=naive_selective_scan_fn,
        mamba_inner_fn=naive_mamba_inner_fn if with_causal_conv1d else None,
    )
    x = inputs(batch=2, seq_len=9)
    names = ["y", "x", *(n for n, _ in m.named_parameters())]
    got = output_and_grads(lambda v: m._forward_mamba_ssm(v, kernels), m, x)
    assert_all_close(got, output_and_grads(lambda v: naive_mamba(m, v), m, x), names)


# ---------------------------------------------------------------------------------------------- decoding


@pytest.mark.parametrize("seq_len", [1, 29])
def test_step_by_step_decoding_equals_forward(seq_len: int) -> None:
    m = make_mamba(d_conv=3)
    x = inputs(batch=3, seq_len=seq_len).detach()
    state = m.init_state(batch_size=3)
    ys = []
    for t in range(seq_len):
        y_t, state = m.step(x[:, t], state)
        ys.append(y_t)
    torch.testing.assert_close(torch.stack(ys, dim=1), m(x), rtol=1e-10, atol=1e-12)
    assert state.conv_state.shape == (3, 2, 16) and state.ssm_state.shape == (3, 4, 16)
    torch.testing.assert_close(state.conv_state[:, -1], F.linear(x[:, -1], m.in_proj.weight)[:, :16])


def test_init_state_is_zero_with_module_dtype() -> None:
    state = make_mamba().init_state(batch_size=2)
    assert isinstance(state, MambaState)
    assert state.ssm_state.dtype == torch.float64 and not state.ssm_state.any() and not state.conv_state.any()


# ---------------------------------------------------------------------------------------------- checkpoints


def test_state_dict_moves_between_backends_strictly(tmp_path) -> None:
    """Saved from one backend, loaded (strict) into fresh modules of every backend: same outputs."""
    x = inputs(batch=2, seq_len=29).detach()
    for source_backend in ("fused", "mambapy", "reference"):
        source = make_mamba(seed=3, backend=source_backend)
        path = tmp_path / f"{source_backend}.pt"
        torch.save(source.state_dict(), path)
        state_dict = torch.load(path, weights_only=True)
        expected = source(x)
        for backend in ("fused", "mambapy", "reference", "auto"):
            target = Mamba(**TINY, backend=backend).to(torch.float64)  # fresh, differently initialised
            assert not torch.equal(target.A_log, source.A_log)
            target.load_state_dict(state_dict, strict=True)
            if backend == source_backend:
                assert torch.equal(target(x), expected)
            else:
                torch.testing.assert_close(target(x), expected, rtol=1e-12, atol=1e-13)


def test_loading_a_wrong_state_dict_fails() -> None:
    state_dict = make_mamba().state_dict()
    state_dict["dt_proj.weight"] = torch.zeros(16, 2, dtype=torch.float64)
    with pytest.raises(RuntimeError, match=r"dt_proj\.weight"):
        Mamba(**TINY).to(torch.float64).load_state_dict(state_dict, strict=True)


# ---------------------------------------------------------------------------------------------- bad input


def test_bad_arguments_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="backend"):
        Mamba(8, backend="cuda")
    with pytest.raises(ValueError, match="d_state"):
        Mamba(8, d_state=0)
    with pytest.raises(ValueError, match="dt_init"):
        Mamba(8, dt_init="xavier")
    m = make_mamba()
    with pytest.raises(ValueError, match=r"x must have shape \(B, L, d_model\) with d_model=8"):
        m(torch.zeros(2, 5, 7, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"\(B, d_model\)"):
        m.step(torch.zeros(2, 5, 8, dtype=torch.float64), m.init_state(2))
    with pytest.raises(ValueError, match=r"state\.conv_state must have shape \(3, 3, 16\)"):
        m.step(torch.zeros(3, 8, dtype=torch.float64), m.init_state(2))


def test_mamba_ssm_backend_without_kernels_says_how_to_install() -> None:
    m = make_mamba(backend="mamba_ssm")
    with pytest.raises(RuntimeError, match="pip install --no-build-isolation mamba-ssm"):
        m(inputs(batch=1, seq_len=4))


# ---------------------------------------------------------------------------------------------- GPU


@pytest.mark.gpu
@pytest.mark.skipif(mamba_ssm_kernels() is None, reason="needs CUDA and mamba_ssm")
def test_mamba_ssm_kernels_match_mambapy_on_gpu() -> None:
    """Same weights: mamba_ssm kernels vs mambapy on CUDA (float32), and mamba_ssm's own Mamba loads them."""
    from mamba_ssm import Mamba as MambaSsm

    torch.manual_seed(0)
    kwargs = {"d_model": 64, "d_state": 16, "d_conv": 4, "expand": 2}
    kernel = Mamba(**kwargs, backend="mamba_ssm").cuda()
    pure = Mamba(**kwargs, backend="mambapy").cuda()
    pure.load_state_dict(kernel.state_dict(), strict=True)
    official = MambaSsm(**kwargs).cuda()
    official.load_state_dict(kernel.state_dict(), strict=True)
    x = torch.randn(2, 29, 64, device="cuda", requires_grad=True)
    y_kernel, y_pure = kernel(x), pure(x)
    torch.testing.assert_close(y_kernel, y_pure, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(official(x), y_kernel, rtol=1e-4, atol=1e-5)
    grads_kernel = torch.autograd.grad(y_kernel.square().sum(), [x, *kernel.parameters()])
    grads_pure = torch.autograd.grad(y_pure.square().sum(), [x, *pure.parameters()])
    for g_kernel, g_pure in zip(grads_kernel, grads_pure, strict=True):
        scale = g_pure.abs().max().item()
        assert math.isfinite(scale)
        torch.testing.assert_close(g_kernel, g_pure, rtol=1e-3, atol=1e-4 * max(scale, 1.0))


@pytest.mark.parametrize(("songs", "channels"), [(1, 48), (3, 1100)])  # 1100: channel chunks of 512 + a rest
def test_fused_cpu_step_equals_the_pytorch_step(songs: int, channels: int) -> None:
    """The numba kernel (its own exp2) against PyTorch's ops on the same float32 state, over 30 steps."""
    ssm_step_cpu = pytest.importorskip("danceba.models.ssm_step_cpu")
    gen = torch.Generator().manual_seed(0)
    n_state = 8
    A_log2 = -torch.exp(torch.randn(n_state, channels, generator=gen) * 2) * 1.4426950408889634
    D = torch.randn(channels, generator=gen)
    h_fused = torch.randn(songs, n_state, channels, generator=gen)
    h_torch = h_fused.clone()
    scratch = torch.empty_like(h_torch)
    for _ in range(30):
        delta = F.softplus(torch.randn(songs, channels, generator=gen))
        x, B, C = (torch.randn(songs, n, generator=gen) for n in (channels, n_state, n_state))
        y_fused = ssm_step_cpu.fused_ssm_step(h_fused, delta, A_log2, B, C, x, D)
        y_torch = ssm_update(h_torch, scratch, delta, A_log2, B, C, x, D)
        # The kernel's exp2 is within 1e-5 of PyTorch's; y sums N products, so compare on y's scale.
        torch.testing.assert_close(y_fused, y_torch, rtol=0, atol=1e-4 * float(y_torch.abs().max()))
    torch.testing.assert_close(h_fused, h_torch, rtol=0, atol=1e-4 * float(h_torch.abs().max()))
    assert not torch.equal(h_fused, h_torch)  # two different exponentials


@pytest.mark.parametrize("fused", [True, False])
def test_float32_decoding_of_many_songs_equals_forward(fused: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """From FUSED_CPU_STEP_MIN_SONGS songs on, float32 steps run the fused kernel (unless switched off);
    either way the steps give the full forward's outputs to float32 accuracy."""
    if fused:
        pytest.importorskip("danceba.models.ssm_step_cpu")
        monkeypatch.delenv(mamba_module.FUSED_CPU_STEP_SWITCH, raising=False)  # bench.gpu_check sets it
    else:
        monkeypatch.setenv(mamba_module.FUSED_CPU_STEP_SWITCH, "off")
    mamba_module._fused_cpu_step.cache_clear()
    try:
        assert (mamba_module._fused_cpu_step() is not None) == fused
        m = make_mamba(dtype=torch.float32)
        songs = mamba_module.FUSED_CPU_STEP_MIN_SONGS
        x = inputs(batch=songs, seq_len=20).detach().float()
        state = m.init_state(batch_size=songs)
        ys = [m.step(x[:, t], state)[0] for t in range(x.shape[1])]
        expected = m(x).detach()
        torch.testing.assert_close(
            torch.stack(ys, dim=1), expected, rtol=0, atol=1e-4 * float(expected.abs().max())
        )
    finally:
        mamba_module._fused_cpu_step.cache_clear()
