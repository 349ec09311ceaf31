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

Recurrent decoding (:meth:`Mamba.init_state` + :meth:`Mamba.step`) is pure PyTorch on every backend.
The state is :class:`MambaState`: the last ``d_conv - 1`` conv inputs (B, d_conv - 1, ED), the SSM
state (B, N, ED), ``A`` computed once and a workspace; a step updates it in place. (``mamba_ssm``'s own
cache keeps d_conv inputs as (B, ED, d_conv) and the SSM state as (B, ED, N).)

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
import math
import os
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

# From this many songs on, a float32 CPU decoding step runs the fused numba kernel: at the paper size it
# took 8.0-9.9 ms per layer against 14.1-20.8 for PyTorch's ops at 40 songs, but lost at one song (its
# threads then competed with torch's: 12.4 s against 10.5-11.3 s for 150 codes in bfloat16).
FUSED_CPU_STEP_MIN_SONGS = 8
FUSED_CPU_STEP_SWITCH = "DANCEBA_FUSED_CPU_STEP"  # "off": PyTorch's ops only
BACKENDS = ("auto", "mamba_ssm", "triton", "fused", "mambapy", "reference")
_KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)  # what selective_scan_cuda supports


@dataclass(frozen=True)
class MambaState:
    """Recurrent state of one :class:`Mamba` for step-by-step decoding; :meth:`Mamba.step` updates its
    tensors in place.

    conv_state: (B, d_conv - 1, ED), the last conv inputs (oldest first; ED last, like ``ssm_state``:
    with the kernel's taps as the strided dimension, shifting the window took 4 % of a batch-40 step).
    ssm_state: (B, N, ED), the hidden state h (``mamba_ssm``'s cache holds it as (B, ED, N); with ED last
    the contraction with C reads contiguous rows, 4x faster at batch 40), in the scan dtype (float32, or
    float64 for float64 parameters) whatever the dtype of the layers around it.
    A_log2: (N, ED), ``-exp(A_log) * log2(e)`` in the scan dtype, computed once by :meth:`Mamba.init_state`
    (the weights do not change while decoding), so that ``exp(dt A) = exp2(dt A_log2)``: PyTorch's
    vectorised exp2 took a third of the time of exp on the AVX-512 CPU measured.
    scratch: (B, N, ED), the step's workspace (a fresh tensor of this size per step and layer cost more
    in page faults than the arithmetic at batch 40).
    """

    conv_state: Tensor
    ssm_state: Tensor
    A_log2: Tensor
    scratch: Tensor


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
        """Zero state before the first token (same as the zero left padding of the full forward).
        ``dtype``: of the conv inputs (default: ``in_proj``'s); the SSM state is in the scan dtype."""
        if batch_size < 1:
            raise ValueError(f"Mamba.init_state: batch_size must be >= 1, got {batch_size}")
        device = self.A_log.device if device is None else device
        dtype = self.in_proj.weight.dtype if dtype is None else dtype
        c = self.config
        ssm_shape = (batch_size, c.d_state, c.d_inner)
        return MambaState(
            conv_state=torch.zeros(batch_size, c.d_conv - 1, c.d_inner, device=device, dtype=dtype),
            ssm_state=torch.zeros(ssm_shape, device=device, dtype=self._scan_dtype()),
            A_log2=(self._A().detach().T * math.log2(math.e)).contiguous().to(device),
            scratch=torch.empty(ssm_shape, device=device, dtype=self._scan_dtype()),
        )

    @torch.no_grad()
    def step(self, x: Tensor, state: MambaState) -> tuple[Tensor, MambaState]:
        """One token. x: (B, d_model) -> y: (B, d_model) and ``state``, updated in place to the next one.
        For decoding: no gradients flow through it.

        The maths of :meth:`forward` at one time step: the causal conv is the dot product of the last
        ``d_conv`` inputs with the kernel; the SSM update is :meth:`ssm_step`."""
        _check_tensor(x, 2, self.config.d_model, "x", "(B, d_model)")
        _check_state(state, x.shape[0], self.config)
        u, z = self.in_proj(x).chunk(2, dim=-1)  # (B, ED) each
        window = torch.cat([state.conv_state, u.unsqueeze(1)], dim=1)  # (B, d_conv, ED), oldest first
        state.conv_state.copy_(window[:, 1:])
        u = (window * self.conv1d.weight[:, 0].T).sum(1)
        if self.conv1d.bias is not None:
            u = u + self.conv1d.bias
        y = self.ssm_step(F.silu(u), state)
        return self.out_proj(y.to(z.dtype) * F.silu(z)), state

    def ssm_step(self, x: Tensor, state: MambaState) -> Tensor:
        """One SSM step: x (B, ED) -> y (B, ED) in the scan dtype; ``state.ssm_state`` becomes
        ``h' = exp(dt A) h + (dt x) B`` and ``y = C h' + D x`` (h, h': (B, N, ED)). Float32 on CPU runs
        the fused kernel of :mod:`danceba.models.ssm_step_cpu` for ``FUSED_CPU_STEP_MIN_SONGS`` songs or more
        when numba is installed, anything else :func:`ssm_update`."""
        dtype = self._scan_dtype()
        delta, B, C = (t.to(dtype).contiguous() for t in self._delta_B_C(x))  # (B, ED), (B, N), (B, N)
        x = x.to(dtype).contiguous()
        delta = F.softplus(delta + self.dt_proj.bias.to(dtype))
        large = x.shape[0] >= FUSED_CPU_STEP_MIN_SONGS and x.device.type == "cpu" and dtype == torch.float32
        fused = _fused_cpu_step() if large else None
        if fused is not None:
            return fused.fused_ssm_step(state.ssm_state, delta, state.A_log2, B, C, x, self._D())
        return ssm_update(state.ssm_state, state.scratch, delta, state.A_log2, B, C, x, self._D())

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


def ssm_update(
    h: Tensor, scratch: Tensor, delta: Tensor, A_log2: Tensor, B: Tensor, C: Tensor, x: Tensor, D: Tensor
) -> Tensor:
    """The SSM step in PyTorch: h (S, N, ED) becomes ``exp2(dt A_log2) h + (dt x) B`` in place (scratch:
    a (S, N, ED) workspace); delta, x (S, ED); A_log2 (N, ED); B, C (S, N); D (ED,) -> y = C h + D x (S, ED).

    In place in two (S, N, ED) tensors: the broadcast form allocated four of them per step and took 7x
    as long at the paper size."""
    torch.mul(delta.unsqueeze(1), A_log2, out=scratch).exp2_()  # exp(dt A)
    h.mul_(scratch).addcmul_(B.unsqueeze(-1), (delta * x).unsqueeze(1))
    return torch.bmm(C.unsqueeze(1), h).squeeze(1).addcmul_(D, x)


@functools.cache
def _fused_cpu_step() -> Any:
    """:mod:`danceba.models.ssm_step_cpu` (imported on first use), or None without numba or with
    ``DANCEBA_FUSED_CPU_STEP=off`` in the environment."""
    if os.environ.get(FUSED_CPU_STEP_SWITCH, "").lower() == "off":
        return None
    try:
        from danceba.models import ssm_step_cpu
    except ImportError:
        return None
    return ssm_step_cpu


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
        "conv_state": (batch_size, config.d_conv - 1, config.d_inner),
        "ssm_state": (batch_size, config.d_state, config.d_inner),
        "A_log2": (config.d_state, config.d_inner),
        "scratch": (batch_size, config.d_state, config.d_inner),
    }
    for name, shape in expected.items():
        got = tuple(getattr(state, name).shape)
        if got != shape:
            raise ValueError(f"Mamba.step: state.{name} must have shape {shape}, got {got}")
