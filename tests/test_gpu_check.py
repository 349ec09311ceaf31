"""bench/gpu_check.py in its CPU dry mode: every section runs, its figures are sane, and the run imports
none of the project's heavy dependencies (the lent GPU machine has PyTorch, NumPy and Triton only)."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys

import pytest
import torch

from bench import gpu_check
from tests.project_files import ROOT

# Project dependencies that must stay off the GPU path (data, audio, tracking, orchestration, config).
HEAVY = ("scipy", "pandas", "pyarrow", "mlflow", "dvc", "librosa", "soundfile", "numba", "prefect", "yaml")
HAS_TRITON = importlib.util.find_spec("triton") is not None

RUN = """
import json, sys
from bench import gpu_check
code = gpu_check.main(["--dry-run", "--out", sys.argv[1], "--budget-s", "60"])
loaded = sorted({name.split(".")[0] for name in sys.modules})
project = sorted(name for name in sys.modules if name.split(".")[0] in ("danceba", "pipelines"))
print(json.dumps({"exit": code, "top_level": loaded, "project": project}))
"""


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    """(the JSON report, what the process had imported), from one dry run in a fresh interpreter."""
    out = tmp_path_factory.mktemp("gpu_check") / "gpu_check.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    env.pop("TRITON_INTERPRET", None)  # the dry run sets it itself
    done = subprocess.run(
        [sys.executable, "-c", RUN, str(out)], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text()), json.loads(done.stdout.strip().splitlines()[-1])


def test_every_section_runs_without_error(dry_run: tuple[dict, dict]) -> None:
    report, process = dry_run
    assert process["exit"] == 0 and report["failed"] == []
    assert set(report) >= {"environment", *gpu_check.SECTIONS, "wall_s"}
    for name in gpu_check.SECTIONS:
        assert "error" not in report[name], report[name].get("traceback")
    assert report["environment"]["dry_run"] is True and report["environment"]["device"] == "cpu"


def test_parity_covers_every_path(dry_run: tuple[dict, dict]) -> None:
    parity = dry_run[0]["parity"]
    assert parity["ok"] is True
    checks = {"gpt_danceba", "gpt_bailando", "decoding_danceba_no_pre", "decoding_bailando"}
    if HAS_TRITON:  # the dry run puts Triton in interpreter mode: the kernels themselves run
        checks |= {"triton_scan_fp32", "triton_scan_bf16", "mamba_triton", "gpt_danceba_triton"}
        assert parity["gpt_danceba_triton"]["scan"] == "triton"
        assert set(parity["triton_scan_bf16"]["errors"]) == {"y", "dx", "ddelta", "dA", "dB", "dC", "dD"}
    assert checks <= set(parity)
    for name in checks:
        assert parity[name]["ok"] is True, (name, parity[name])
    assert parity["decoding_bailando"]["cached_vs_exact"] == 1.0  # causal, one window: must agree
    assert parity["mamba_ssm"] == {"skipped": "mamba_ssm is not installed"}


def test_speed_figures_are_sane(dry_run: tuple[dict, dict]) -> None:
    report = dry_run[0]
    for stack in ("danceba", "bailando"):
        row = report["train_steps"][stack]
        assert row["loss_finite"] and row["steps_per_s"] > 0 and row["peak_memory_gb"] > 0
        assert 0 < row["mfu"] < 1
        assert 0.3 < row["flops_per_step"] / row["flops_6nd"] < 3  # the counter against 6 x params x tokens
    # the GPU's path (Triton under bf16 autocast) in the interpreter where Triton is installed
    assert report["train_steps"]["danceba"]["scan"] == ("triton" if HAS_TRITON else "fused")
    speeds = report["scan_speed"]
    assert speeds["mambapy_pscan"]["forward_backward_ms"] > 0
    assert ("triton" in speeds) == HAS_TRITON
    generation = report["generation"]
    assert generation["songs"] == 40
    assert generation["cached"]["seconds"] > 0 and generation["exact"]["seconds"] > 0
    assert 0 <= generation["cached_vs_exact_agreement"] <= 1


def test_training_run_loss_falls(dry_run: tuple[dict, dict]) -> None:
    run = dry_run[0]["training_run"]
    assert run["steps"] == len(run["losses"]) == 60 and not run["stopped_by_budget"]
    assert all(math.isfinite(v) for v in run["losses"])
    assert run["first_tenth_mean_loss"] <= run["uniform_loss"] + 0.5
    assert run["falling"] and run["last_tenth_mean_loss"] < 0.8 * run["first_tenth_mean_loss"]


def test_no_heavy_project_dependency_is_imported(dry_run: tuple[dict, dict]) -> None:
    process = dry_run[1]
    assert not set(HEAVY) & set(process["top_level"])
    allowed = (
        "danceba.models",
        "danceba.generation.sampler",
        "danceba.generation.config",  # the sampler's settings: plain Python
        "danceba.features.phase",
        "danceba.strict_dataclass",
        "danceba.genres",  # the genre labels: plain Python
    )
    packages = ("danceba", "danceba.features", "danceba.generation")  # their __init__ files import nothing
    others = [name for name in process["project"] if name not in packages]
    assert all(name.startswith(allowed) for name in others), others


def test_bad_arguments_exit_with_a_reason(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        gpu_check.main(["--only", "parity,nonsense"])
    assert "unknown sections ['nonsense']" in capsys.readouterr().err
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit):
            gpu_check.main([])
        assert "run with --dry-run" in capsys.readouterr().err
