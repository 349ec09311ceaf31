"""The CPU kernel pin that makes stage outputs the same bits on any x86-64 machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from danceba import cpu_kernels
from tests.project_files import ROOT


def test_cpu_flags_reads_the_first_processor(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    assert cpu_kernels.cpu_flags(info) == {"fpu", "sse2", "avx2", "fma"}
    assert cpu_kernels.cpu_flags(tmp_path / "absent") == frozenset()


def test_only_x86_64_with_avx2_and_fma_is_pinned() -> None:
    assert cpu_kernels.can_pin("x86_64", frozenset({"avx2", "fma", "sse2"}))
    assert not cpu_kernels.can_pin("x86_64", frozenset({"avx", "sse2"}))
    assert not cpu_kernels.can_pin("aarch64", frozenset({"avx2", "fma"}))


@pytest.mark.skipif(not cpu_kernels.can_pin(), reason="this machine has no AVX2 + FMA x86-64 CPU")
def test_pin_sets_every_library_and_keeps_the_users_choice() -> None:
    environ = {"ATEN_CPU_CAPABILITY": "default"}
    pinned = cpu_kernels.pin_avx2_kernels(environ)
    assert pinned.keys() == cpu_kernels.AVX2_KERNELS.keys()
    assert environ["ATEN_CPU_CAPABILITY"] == "default"
    assert environ["OPENBLAS_CORETYPE"] == "Haswell"
    assert cpu_kernels.pin_avx2_kernels({cpu_kernels.OPT_OUT: "native"}) == {}


@pytest.mark.skipif(not cpu_kernels.can_pin(), reason="this machine has no AVX2 + FMA x86-64 CPU")
def test_a_stage_process_runs_the_avx2_kernels() -> None:
    """What a ``python -m pipelines.<stage>`` process loads, asked of the libraries themselves."""
    probe = (
        "import json, pipelines, numpy, torch\n"
        "from numpy._core._multiarray_umath import __cpu_features__ as numpy_features\n"
        "from danceba.cpu_kernels import kernels_in_use\n"
        "print(json.dumps({**kernels_in_use(), 'numpy_avx512': numpy_features.get('X86_V4', False)}))\n"
    )
    env = {key: value for key, value in os.environ.items() if key not in cpu_kernels.AVX2_KERNELS}
    env.pop(cpu_kernels.OPT_OUT, None)
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    in_use = json.loads(out.stdout.strip().splitlines()[-1])
    assert in_use == {"torch": "AVX2", "openblas": "Haswell", "numpy_avx512": False}
