"""The Triton scan without a GPU, in a fresh interpreter (prints one JSON object). Two modes:

* ``interpret`` (default): runs the kernels in Triton's interpreter on CPU tensors (``TRITON_INTERPRET=1``,
  set here before Triton is imported) and reports, per case, the max abs error of y and of each gradient
  against a naive float32 scan, relative to the reference's largest magnitude, plus dtypes and seconds;
  and the same for a Mamba mixer on ``backend="triton"`` against ``"fused"``.
* ``compile``: compiles the kernels as the paper-size scan launches them (ED 3072, N 128) for sm_90 with
  Triton's own compiler and bundled ptxas (no GPU or driver needed) and reports registers and spills.

Started by ``tests/test_triton_scan.py``::

    PYTHONPATH=. OMP_NUM_THREADS=1 .venv/bin/python tests/triton_scan_worker.py [interpret|compile]
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODE = sys.argv[1] if len(sys.argv) > 1 else "interpret"
os.environ["TRITON_INTERPRET"] = "1" if MODE == "interpret" else "0"  # before anything imports Triton

import torch  # noqa: E402

from danceba.models import triton_scan  # noqa: E402
from danceba.models.mamba import Mamba  # noqa: E402
from tests.test_selective_scan import naive_scan  # noqa: E402  (PYTHONPATH: the project root)

NAMES = ("x", "delta", "A", "B", "C", "D")

F32, BF16, F16 = torch.float32, torch.bfloat16, torch.float16
# name -> (batch, L, ED, N, block_d, dtypes of x, delta, A, B, C, D)
CASES = {
    "fp32_ragged": (2, 13, 6, 5, 4, (F32,) * 6),  # ED 6 over blocks of 4, N 5 padded to 8
    "fp32_one_step": (3, 1, 3, 2, 2, (F32,) * 6),
    "fp32_default_blocks": (1, 7, 10, 16, None, (F32,) * 6),  # one block of 16 for ED 10
    "fp32_two_blocks_exact": (2, 5, 8, 4, 4, (F32,) * 6),
    "fp32_paper_state": (1, 3, 12, 128, None, (F32,) * 6),  # N 128: default blocks of 8, the 2nd half masked
    "bf16_inputs_fp32_params": (2, 11, 6, 5, 4, (BF16, BF16, F32, BF16, BF16, F32)),
    "bf16_autocast_mix": (2, 7, 6, 5, 4, (BF16, F32, F32, BF16, BF16, F32)),  # as the mixer under autocast
    "bf16_all": (2, 9, 5, 3, 2, (BF16,) * 6),
    "fp16_inputs": (1, 6, 6, 4, 4, (F16, F16, F32, F16, F16, F32)),
}


def scan_inputs(batch, seq_len, d_inner, d_state, dtypes, seed=0):
    """x, delta, A, B, C, D (delta > 0, A < 0 as in Mamba) in the case's dtypes, requiring grad."""
    g = torch.Generator().manual_seed(seed)
    shapes = [(batch, seq_len, d_inner), (batch, seq_len, d_inner), (d_inner, d_state)]
    shapes += [(batch, seq_len, d_state), (batch, seq_len, d_state), (d_inner,)]
    x, delta, A, B, C, D = (torch.randn(s, generator=g) for s in shapes)
    delta, A = 0.05 + delta.abs(), -0.2 - A.abs()
    return [t.to(d).requires_grad_() for t, d in zip((x, delta, A, B, C, D), dtypes, strict=True)]


def relative_errors(got: list[torch.Tensor], want: list[torch.Tensor]) -> list[float]:
    return [
        ((g.double() - w.double()).abs().max() / w.double().abs().max().clamp_min(1e-6)).item()
        for g, w in zip(got, want, strict=True)
    ]


def run_case(batch, seq_len, d_inner, d_state, block_d, dtypes) -> dict:
    """Triton scan (inputs as given) vs the naive scan in float32 on the same (rounded) values."""
    args = scan_inputs(batch, seq_len, d_inner, d_state, dtypes)
    cotangent = torch.randn(batch, seq_len, d_inner, generator=torch.Generator().manual_seed(1))
    start = time.perf_counter()
    y = triton_scan.selective_scan(*args, block_d=block_d)
    grads = torch.autograd.grad((y.float() * cotangent).sum(), args)
    seconds = time.perf_counter() - start
    ref_args = [a.detach().float().requires_grad_() for a in args]
    y_ref = naive_scan(*ref_args)
    ref_grads = torch.autograd.grad((y_ref * cotangent).sum(), ref_args)
    errors = relative_errors([y, *grads], [y_ref, *ref_grads])
    return {
        "errors": dict(zip(("y", *(f"d{n}" for n in NAMES)), errors, strict=True)),
        "y_dtype": str(y.dtype),
        "grad_dtypes": [str(g.dtype) for g in grads],
        "input_dtypes": [str(a.dtype) for a in args],
        "seconds": seconds,
    }


def run_mamba_module() -> dict:
    """A Mamba mixer with backend='triton' vs the same weights on 'fused': output and every gradient."""
    torch.manual_seed(0)
    triton_mixer = Mamba(d_model=8, d_state=4, expand=2, backend="triton")  # ED 16, N 4
    fused = Mamba(d_model=8, d_state=4, expand=2, backend="fused")
    fused.load_state_dict(triton_mixer.state_dict(), strict=True)
    x = torch.randn(2, 7, 8)
    results = []
    for mixer in (triton_mixer, fused):
        xi = x.clone().requires_grad_()
        y = mixer(xi)
        results.append([y, *torch.autograd.grad(y.square().sum(), [xi, *mixer.parameters()])])
    names = ["y", "x", *(n for n, _ in triton_mixer.named_parameters())]
    return {
        "errors": dict(zip(names, relative_errors(*results), strict=True)),
        "scan_is_triton": triton_mixer._scan_for(x) is triton_scan.selective_scan,
    }


# (name, x, delta, A, B, C, D dtypes): the paper's Mamba under bf16 autocast feeds bf16 u, B, C and
# float32 delta (softplus runs in float32), A, D; plain float32 training feeds float32 everywhere.
COMPILE_SIGNATURES = {
    "autocast_bf16": ("bf16", "fp32", "fp32", "bf16", "bf16", "fp32"),
    "fp32": ("fp32",) * 6,
}


def ptxas_stats(ptx: str) -> dict:
    """Registers and spill bytes of ``ptx`` for sm_90a (Triton's ptxas and register-allocation flag)."""
    from triton.backends.nvidia.compiler import get_ptxas

    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "kernel.ptx"
        source.write_text(ptx, encoding="utf-8")
        command = [get_ptxas(90).path, "-v", "--regAllocOptLevel=2", "--gpu-name=sm_90a", str(source)]
        command += ["-o", str(source.with_suffix(".o"))]
        log = subprocess.run(command, capture_output=True, text=True, check=True).stderr
    registers = int(re.search(r"Used (\d+) registers", log).group(1))
    spills = sum(int(n) for n in re.findall(r"(\d+) bytes spill (?:stores|loads)", log))
    return {"registers": registers, "spill_bytes": spills}


def compile_kernel(kernel, pointer_types: list[str], n_ints: int, constexprs: dict, num_warps: int) -> dict:
    """Compile ``kernel`` for sm_90 (pointer dtypes, int32 sizes) and run ptxas on its PTX."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    names = kernel.arg_names
    types = [f"*{t}" for t in pointer_types] + ["i32"] * n_ints + ["constexpr"] * len(constexprs)
    source = ASTSource(fn=kernel, signature=dict(zip(names, types, strict=True)), constexprs=constexprs)
    start = time.perf_counter()
    compiled = triton.compile(source, target=GPUTarget("cuda", 90, 32), options={"num_warps": num_warps})
    return {
        "seconds": time.perf_counter() - start,
        "cubin": "cubin" in compiled.asm,
        **ptxas_stats(compiled.asm["ptx"]),
    }


def compile_report(d_inner: int = 3072, d_state: int = 128) -> dict:
    from danceba.models import triton_scan_kernels as kernels

    report = {}
    for name, (x, delta, A, B, C, D) in COMPILE_SIGNATURES.items():
        block_d, block_n, warps = triton_scan.block_sizes(d_inner, d_state, backward=False)
        sizes = {"BLOCK_D": block_d, "BLOCK_N": block_n}
        pointers = [x, delta, A, B, C, D, "fp32", "fp32"]
        forward = {"STORE_Y": True, "STORE_STATES": False}
        report[f"{name}/forward"] = compile_kernel(
            kernels.scan_forward_kernel, pointers, 3, {**sizes, **forward}, warps
        )
        block_d, block_n, warps = triton_scan.block_sizes(d_inner, d_state, backward=True)
        sizes = {"BLOCK_D": block_d, "BLOCK_N": block_n}
        recompute = {"STORE_Y": False, "STORE_STATES": True}
        report[f"{name}/recompute"] = compile_kernel(
            kernels.scan_forward_kernel, pointers, 3, {**sizes, **recompute}, warps
        )
        pointers = [x, delta, A, B, C, D, "fp32", "fp32"] + ["fp32"] * 6
        report[f"{name}/backward"] = compile_kernel(kernels.scan_backward_kernel, pointers, 4, sizes, warps)
    return report


def main() -> None:
    torch.set_num_threads(1)
    import triton

    started = time.perf_counter()
    report = {"triton": triton.__version__, "interpreter": triton_scan.interpreter_mode()}
    if MODE == "interpret":
        report["cases"] = {name: run_case(*case) for name, case in CASES.items()}
        report["mamba_module"] = run_mamba_module()
    else:
        report["kernels"] = compile_report()
    report["seconds"] = time.perf_counter() - started
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
