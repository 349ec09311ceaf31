"""Mamba mixer (selective state-space block, Gu & Dao 2023) with interchangeable backends.

Danceba's PMMM runs ``Mamba(d_model=768, d_state=128, d_conv=4, expand=4)`` per stream (d_inner 3072,
dt_rank 48). This module is that mixer only: no norm, no residual (those belong to the block using it).

Maths (x: (B, L, D) -> (B, L, D), ED = expand * D, N = d_state)::

    x, z = in_proj(x).chunk(2)                       # (B, L, ED) each
    x = silu(causal depthwise conv1d(x))             # kernel d_conv, left zero padding
    dt, B, C = split(x_proj(x), [dt_rank, N, N])
    dt = softplus(dt_proj(dt))                       # (B, L, ED), dt_proj has a bias
    A = -exp(A_log)                                  # (ED, N)
    h_t = exp(dt_t A) * h_{t-1} + dt_t B_t x_t       # (B, ED, N), h_0 = 0
    y_t = C_t . h_t + D * x_t
    out = out_proj(y * silu(z))

Backends (``backend=`` argument; all share the same parameters):

* ``"auto"`` (default): the ``mamba_ssm`` CUDA kernels when the input is on CUDA (and not float64) and
  ``mamba_ssm`` imports; else ``"triton"`` on CUDA when Triton imports (float32 parameters, input not
  float64); otherwise ``"fused"`` on CPU and ``"mambapy"`` on other devices (a GPU runs the parallel
  scan well and has the memory for it). Decided at every call from the input, so a module built on CPU
  and moved to the GPU picks up the kernels. ``mamba_ssm`` stays preferred where it is installed.
* ``"fused"``: pure PyTorch, :func:`danceba.models.selective_scan.selective_scan`, a sequential scan with
  a hand-written backward that recomputes the states instead of keeping (B, L, ED, N) tensors (the CPU
  analogue of ``mamba_ssm``'s fused kernel). Exact; at Danceba's PMMM size (batch 2, L 29, 1 thread) the
  whole mixer's forward+backward takes 0.19 s instead of 1.27 s with ``"mambapy"``, and autograd keeps
  23 MiB instead of 294 MiB (``bench/bench_mamba_scan.py``).
* ``"mamba_ssm"``: the official kernels, called as ``mamba_ssm``'s own ``Mamba.forward`` does
  (``mamba_inner_fn`` when ``causal_conv1d`` is installed, else torch ``conv1d`` + ``selective_scan_fn``).
  CUDA only; float32/float16/bfloat16 only. Raises if unavailable.
* ``"triton"``: :func:`danceba.models.triton_scan.selective_scan`, our own Triton kernels (forward and
  backward, the maths of ``"fused"``, bfloat16/float16/float32 inputs with a float32 state); the rest of
  the mixer is this module's PyTorch code. Needs only Triton (no kernel build): CUDA, or CPU under
  ``TRITON_INTERPRET=1`` (Triton's interpreter, for tests). Raises if unavailable.
* ``"mambapy"``: pure PyTorch, the Blelloch parallel scan of ``mambapy.pscan``. It pads the sequence
  length to the next power of two internally (L = 29 runs as 32; the padding is cropped, results are
  exact), and it materialises (B, L_pad, ED, N) tensors: memory grows with ED * N (Danceba: 393,216
  floats per token per call; autograd keeps ~290 MiB per call at batch 2, L 29). Wrapping the call in
  ``torch.utils.checkpoint.checkpoint(mamba, x, use_reentrant=False)`` trades that for a recomputed
  forward in the backward.
* ``"reference"``: pure PyTorch, ``mambapy``'s sequential scan (one step per time step). Slow; for
  checks.

Recurrent decoding (:meth:`Mamba.init_state` + :meth:`Mamba.step`) is pure PyTorch on every backend
(``mambapy``'s ``MambaBlock.step``). The state is :class:`MambaState`: the last ``d_conv - 1`` conv
inputs (B, ED, d_conv - 1) and the SSM state (B, ED, N). (``mamba_ssm``'s own cache keeps d_conv inputs.)

State-dict contract: the keys and shapes are exactly those of ``mamba_ssm.Mamba`` (v1 and v2):
``in_proj.weight (2ED, D)``, ``conv1d.weight (ED, 1, d_conv)``, ``conv1d.bias (ED,)``,
``x_proj.weight (dt_rank + 2N, ED)``, ``dt_proj.weight (ED, dt_rank)``, ``dt_proj.bias (ED,)``,
``A_log (ED, N)``, ``D (ED,)``, ``out_proj.weight (D, ED)`` (+ ``in_proj.bias``/``out_proj.bias`` when
``bias=True``; no ``conv1d.bias`` when ``conv_bias=False``), whatever the backend, so a checkpoint moves
between GPU and CPU with ``strict=True``. Initialisation follows ``mamba_ssm`` v1: default ``nn.Linear``
/ ``nn.Conv1d`` init, dt_proj weight uniform(+-dt_rank^-0.5 * dt_scale) (or constant), dt_proj bias =
softplus^-1(dt) with dt log-uniform in [dt_min, dt_max] clamped at dt_init_floor, A_log = log(1..N) per
channel, D = 1.

Precision: A and D are used in float32, or float64 when the parameters are float64 (``mamba_ssm`` and
``mambapy`` always cast them to float32; keeping float64 lets the tests compare at 1e-10).

The ``"triton"`` backend needs no install step on CUDA: the CUDA builds of torch bring Triton with them.
Installing the ``mamba_ssm`` kernels (optional; they cannot be installed or imported without CUDA)::

    pip install torch ...                                  # first, the CUDA build of torch
    pip install --no-build-isolation mamba-ssm==2.3.2.post1  # optionally also causal-conv1d
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from mambapy.mamba import MambaBlock, MambaConfig
from mambapy.pscan import pscan
from torch import Tensor

from danceba.models import triton_scan
from danceba.models.selective_scan import selective_scan as fused_selective_scan

BACKENDS = ("auto", "mamba_ssm", "triton", "fused", "mambapy", "reference")
_KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)  # what selective_scan_cuda supports


@dataclass(frozen=True)
class MambaState:
    """Recurrent state of one :class:`Mamba` for step-by-step decoding.

    conv_state: (B, ED, d_conv - 1), the last conv inputs (oldest first).
    ssm_state: (B, ED, N), the hidden state h.
    """

    conv_state: Tensor
    ssm_state: Tensor


@dataclass(frozen=True)
class _MambaSsmKernels:
    selective_scan_fn: Any
    mamba_inner_fn: Any | None  # None when causal_conv1d is missing (mamba_ssm then skips it too)


@functools.cache
def mamba_ssm_kernels() -> _MambaSsmKernels | None:
    """The ``mamba_ssm`` kernels, or None when ``mamba_ssm`` (or CUDA) is unavailable. Imported lazily."""
    if not torch.cuda.is_available():
        return None
    try:
        from mamba_ssm.ops.selective_scan_interface import mamba_inner_fn, selective_scan_fn
    except (ImportError, OSError, RuntimeError):
        return None
    try:
        import causal_conv1d  # noqa: F401
    except (ImportError, OSError):
        mamba_inner_fn = None
    return _MambaSsmKernels(selective_scan_fn=selective_scan_fn, mamba_inner_fn=mamba_inner_fn)


class Mamba(MambaBlock):
    """The Mamba mixer: (B, L, d_model) -> (B, L, d_model). See the module docstring.

    Subclasses ``mambapy``'s ``MambaBlock`` for its parameters (named as in ``mamba_ssm``), its
    initialisation, its scans and its recurrent step; replaces the forward to dispatch between backends.
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dt_rank: int | str = "auto",
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init: str = "random",
        dt_scale: float = 1.0,
        dt_init_floor: float = 1e-4,
        conv_bias: bool = True,
        bias: bool = False,
        backend: str = "auto",
    ) -> None:
        _check_arguments(d_model, d_state, d_conv, expand, dt_rank, dt_min, dt_max, dt_init, backend)
        config = MambaConfig(
            d_model=d_model,
            n_layers=1,
            dt_rank=dt_rank,
            d_state=d_state,
            expand_factor=expand,
            d_conv=d_conv,
            dt_min=dt_min,
            dt_max=dt_max,
            dt_init=dt_init,
            dt_scale=dt_scale,
            bias=bias,
            conv_bias=conv_bias,
            pscan=backend != "reference",
            use_cuda=False,
        )
        # mambapy declares dt_init_floor without a type annotation: a class attribute, not a field.
        config.dt_init_floor = dt_init_floor
        super().__init__(config)
        self.dt_proj.bias._no_reinit = True  # as in mamba_ssm: a generic init must not zero it
        self.backend = backend

    @property
    def d_inner(self) -> int:
        return self.config.d_inner

    def extra_repr(self) -> str:
        c = self.config
        sizes = f"d_model={c.d_model}, d_state={c.d_state}, d_conv={c.d_conv}, expand={c.expand_factor}"
        return f"{sizes}, backend={self.backend!r}"

    # ------------------------------------------------------------------ full sequence

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, L, d_model) -> (B, L, d_model)."""
        _check_tensor(x, 3, self.config.d_model, "x", "(B, L, d_model)")
        kernels = self._kernels_for(x)
        if kernels is not None:
            return self._forward_mamba_ssm(x, kernels)
        seq_len = x.shape[1]
        u, z = self.in_proj(x).chunk(2, dim=-1)  # (B, L, ED) each
        u = F.silu(self.conv1d(u.transpose(1, 2))[..., :seq_len].transpose(1, 2))
        delta, B, C = self._delta_B_C(u)  # (B, L, ED), (B, L, N), (B, L, N)
        delta = F.softplus(delta + self.dt_proj.bias)
        y = self._scan_for(x)(u, delta, self._A(), B, C, self._D())  # (B, L, ED)
        return self.out_proj(y * F.silu(z))

    def selective_scan(self, x: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor) -> Tensor:
        """mambapy's parallel scan. x, delta: (B, L, ED); A: (ED, N); B, C: (B, L, N); D: (ED,) -> (B, L, ED).

        As ``MambaBlock.selective_scan``, but forms dt*B*x as (dt*x) (x) B so that autograd keeps only
        (B, L, ED) and (B, L, N) factors instead of a third (B, L, ED, N) tensor.
        """
        deltaA = torch.exp(delta.unsqueeze(-1) * A)  # (B, L, ED, N)
        BX = (delta * x).unsqueeze(-1) * B.unsqueeze(2)  # (B, L, ED, N)
        hs = pscan(deltaA, BX)  # (B, L, ED, N), pads L to a power of two inside
        return (hs @ C.unsqueeze(-1)).squeeze(-1) + D * x

    def _forward_mamba_ssm(self, x: Tensor, kernels: _MambaSsmKernels) -> Tensor:
        """The official kernels, called as mamba_ssm's Mamba.forward (no inference cache)."""
        seq_len = x.shape[1]
        xz = rearrange(self.in_proj(x), "b l d -> b d l")  # (B, 2ED, L)
        A = -torch.exp(self.A_log.float())
        if kernels.mamba_inner_fn is not None:
            return kernels.mamba_inner_fn(
                xz,
                self.conv1d.weight,
                self.conv1d.bias,
                self.x_proj.weight,
                self.dt_proj.weight,
                self.out_proj.weight,
                self.out_proj.bias,
                A,
                None,
                None,
                self.D.float(),
                delta_bias=self.dt_proj.bias.float(),
                delta_softplus=True,
            )
        u, z = xz.chunk(2, dim=1)  # (B, ED, L)
        u = F.silu(self.conv1d(u)[..., :seq_len])
        delta, B, C = self._delta_B_C(rearrange(u, "b d l -> b l d"))
        y = kernels.selective_scan_fn(
            u,
            rearrange(delta, "b l d -> b d l"),
            A,
            rearrange(B, "b l n -> b n l").contiguous(),
            rearrange(C, "b l n -> b n l").contiguous(),
            self.D.float(),
            z=z,
            delta_bias=self.dt_proj.bias.float(),
            delta_softplus=True,
        )  # (B, ED, L)
        return self.out_proj(rearrange(y, "b d l -> b l d"))

    def _scan_for(self, x: Tensor) -> Callable[..., Tensor]:
        """The scan this backend uses for the input ``x`` (same signature as ``selective_scan``)."""
        if self.backend == "reference":
            return self.selective_scan_seq
        if self.backend == "fused" or (self.backend == "auto" and x.device.type == "cpu"):
            return fused_selective_scan
        if self.backend == "triton":
            if not triton_scan.supports(x):
                raise RuntimeError(
                    "Mamba(backend='triton') needs Triton (`pip install triton`) and a float32/float16/"
                    f"bfloat16 CUDA input, or TRITON_INTERPRET=1 on CPU (input: {x.dtype} on {x.device})"
                )
            return triton_scan.selective_scan
        float32_on_cuda = x.is_cuda and self._scan_dtype() == torch.float32  # the kernels' A and D
        if self.backend == "auto" and float32_on_cuda and triton_scan.supports(x):
            return triton_scan.selective_scan
        return self.selective_scan

    def _kernels_for(self, x: Tensor) -> _MambaSsmKernels | None:
        if self.backend in ("triton", "fused", "mambapy", "reference"):
            return None
        kernels = mamba_ssm_kernels() if x.is_cuda and x.dtype in _KERNEL_DTYPES else None
        if self.backend == "mamba_ssm" and kernels is None:
            raise RuntimeError(
                "Mamba(backend='mamba_ssm') needs a float32/float16/bfloat16 CUDA input and an importable "
                f"mamba_ssm (input: {x.dtype} on {x.device}); install it on a CUDA machine with "
                "`pip install --no-build-isolation mamba-ssm==2.3.2.post1`, or use backend='auto'."
            )
        return kernels

    # ------------------------------------------------------------------ recurrent decoding

    def init_state(
        self, batch_size: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> MambaState:
        """Zero state before the first token (same as the zero left padding of the full forward)."""
        if batch_size < 1:
            raise ValueError(f"Mamba.init_state: batch_size must be >= 1, got {batch_size}")
        device = self.A_log.device if device is None else device
        dtype = self.in_proj.weight.dtype if dtype is None else dtype
        c = self.config
        return MambaState(
            conv_state=torch.zeros(batch_size, c.d_inner, c.d_conv - 1, device=device, dtype=dtype),
            ssm_state=torch.zeros(batch_size, c.d_inner, c.d_state, device=device, dtype=dtype),
        )

    def step(self, x: Tensor, state: MambaState) -> tuple[Tensor, MambaState]:
        """One token. x: (B, d_model) -> y: (B, d_model) and the next state."""
        _check_tensor(x, 2, self.config.d_model, "x", "(B, d_model)")
        _check_state(state, x.shape[0], self.config)
        y, (h, inputs) = super().step(x, (state.ssm_state, state.conv_state))
        return y, MambaState(conv_state=inputs, ssm_state=h)

    def ssm_step(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        """One SSM step (used by ``MambaBlock.step``). x: (B, ED), h: (B, ED, N) -> y (B, ED), h."""
        delta, B, C = self._delta_B_C(x)  # (B, ED), (B, N), (B, N)
        delta = F.softplus(delta + self.dt_proj.bias)
        deltaA = torch.exp(delta.unsqueeze(-1) * self._A())  # (B, ED, N)
        h = deltaA * h + (delta * x).unsqueeze(-1) * B.unsqueeze(-2)
        y = (h @ C.unsqueeze(-1)).squeeze(-1) + self._D() * x
        return y, h

    # ------------------------------------------------------------------ shared pieces

    def _delta_B_C(self, u: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """u: (..., ED) -> dt_proj(dt) without bias (..., ED), B (..., N), C (..., N)."""
        c = self.config
        dt, B, C = torch.split(self.x_proj(u), [c.dt_rank, c.d_state, c.d_state], dim=-1)
        return F.linear(dt, self.dt_proj.weight), B, C

    def _scan_dtype(self) -> torch.dtype:
        return torch.promote_types(self.A_log.dtype, torch.float32)

    def _A(self) -> Tensor:
        return -torch.exp(self.A_log.to(self._scan_dtype()))  # (ED, N)

    def _D(self) -> Tensor:
        return self.D.to(self._scan_dtype())  # (ED,)


def _check_arguments(
    d_model: int,
    d_state: int,
    d_conv: int,
    expand: int,
    dt_rank: int | str,
    dt_min: float,
    dt_max: float,
    dt_init: str,
    backend: str,
) -> None:
    for name, value in (("d_model", d_model), ("d_state", d_state), ("d_conv", d_conv), ("expand", expand)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"Mamba: {name} must be a positive int, got {value!r}")
    if dt_rank != "auto" and (not isinstance(dt_rank, int) or dt_rank < 1):
        raise ValueError(f"Mamba: dt_rank must be 'auto' or a positive int, got {dt_rank!r}")
    if not 0 < dt_min <= dt_max:
        raise ValueError(f"Mamba: need 0 < dt_min <= dt_max, got dt_min={dt_min}, dt_max={dt_max}")
    if dt_init not in ("random", "constant"):
        raise ValueError(f"Mamba: dt_init must be 'random' or 'constant', got {dt_init!r}")
    if backend not in BACKENDS:
        raise ValueError(f"Mamba: backend must be one of {BACKENDS}, got {backend!r}")


def _check_tensor(x: Tensor, ndim: int, d_model: int, name: str, shape: str) -> None:
    if not isinstance(x, Tensor) or x.dim() != ndim or x.shape[-1] != d_model:
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"Mamba: {name} must have shape {shape} with d_model={d_model}, got {got}")


def _check_state(state: MambaState, batch_size: int, config: MambaConfig) -> None:
    if not isinstance(state, MambaState):
        raise TypeError(
            f"Mamba.step: state must be a MambaState (from init_state), got {type(state).__name__}"
        )
    expected = {
        "conv_state": (batch_size, config.d_inner, config.d_conv - 1),
        "ssm_state": (batch_size, config.d_inner, config.d_state),
    }
    for name, shape in expected.items():
        got = tuple(getattr(state, name).shape)
        if got != shape:
            raise ValueError(f"Mamba.step: state.{name} must have shape {shape}, got {got}")
