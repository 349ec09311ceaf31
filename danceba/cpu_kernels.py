"""One set of CPU kernels on every x86-64 machine, so that a stage gives the same bits on any of them.

The numerical libraries pick their kernels by the CPU they run on: OpenBLAS (numpy, scipy, librosa)
chose its SkylakeX kernels on an AVX-512 machine and gave other music features than its Haswell kernels
(measured: another md5 for the same song); torch's ATen and oneDNN kernels changed trained weights the
same way, and MKL follows its own dispatch. A fresh clone's ``dvc repro`` on another CPU then rebuilt
other bits than the committed ``dvc.lock``. Every stage process therefore pins all of them to the AVX2 +
FMA level (x86-64-v3), which every x86-64 server of the last decade has, before any of them loads.

``DANCEBA_CPU_KERNELS=native`` keeps each library's own choice (faster on AVX-512, other bits). On
machines below AVX2 or other architectures nothing is pinned: results there are not comparable bit for
bit with an AVX2 machine's.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from pathlib import Path

OPT_OUT = "DANCEBA_CPU_KERNELS"
CPUINFO = Path("/proc/cpuinfo")

# Each library's setting for "AVX2 + FMA kernels at most", read when the library loads.
AVX2_KERNELS: Mapping[str, str] = {
    "OPENBLAS_CORETYPE": "Haswell",  # numpy's and scipy's OpenBLAS (DYNAMIC_ARCH builds)
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",  # numpy's own dispatched loops
    "ATEN_CPU_CAPABILITY": "avx2",  # torch's vectorised ATen kernels
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # torch's oneDNN (convolutions, some matmuls)
    "MKL_CBWR": "AVX2",  # torch's MKL: conditional numerical reproducibility at the AVX2 code path
    "NUMBA_CPU_NAME": "haswell",  # librosa's numba functions compiled for one CPU model
}


def cpu_flags(cpuinfo: Path = CPUINFO) -> frozenset[str]:
    """The instruction-set flags of the first processor in ``/proc/cpuinfo`` (empty when unreadable)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def can_pin(machine: str | None = None, flags: frozenset[str] | None = None) -> bool:
    """Whether this machine runs the pinned kernels: x86-64 with AVX2 and FMA."""
    machine = platform.machine() if machine is None else machine
    flags = cpu_flags() if flags is None else flags
    return machine in {"x86_64", "AMD64"} and {"avx2", "fma"} <= flags


def pin_avx2_kernels(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Set the AVX2 kernel settings in ``environ`` (default ``os.environ``) unless the user opted out.

    A setting the user already made is kept. Returns the settings in effect. Must run before numpy,
    scipy or torch is imported: they read these variables once, when they load.
    """
    environ = os.environ if environ is None else environ
    if environ.get(OPT_OUT, "").lower() == "native" or not can_pin():
        return {}
    for name, value in AVX2_KERNELS.items():
        environ.setdefault(name, value)
    return {name: environ[name] for name in AVX2_KERNELS}


def kernels_in_use() -> dict[str, str]:
    """What the loaded libraries report they run: torch's CPU capability and OpenBLAS's core type."""
    import torch
    from threadpoolctl import threadpool_info

    blas = sorted(
        {str(pool.get("architecture")) for pool in threadpool_info() if pool.get("user_api") == "blas"}
    )
    return {"torch": torch.backends.cpu.get_cpu_capability(), "openblas": ",".join(blas)}
