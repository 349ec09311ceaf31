"""The pieces that make a re-run write the same bytes: checkpoint files independent of their names, run folders keyed by code, the thread count as a parameter."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest
import torch
import yaml

from danceba.config import ComputeConfig, ConfigError, load_params
from danceba.provenance import code_digest
from danceba.train.checkpoint import save_checkpoint
from pipelines.flows import fitting_jobs
from pipelines.stage import stage_threads

ROOT = Path(__file__).resolve().parents[1]


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_a_checkpoint_is_the_same_bytes_whatever_its_file_name(tmp_path: Path) -> None:
    payload = {"model": {"w": torch.arange(6.0).reshape(2, 3)}, "step": 3}
    first = save_checkpoint(tmp_path / "a.pt", payload)
    second = save_checkpoint(tmp_path / "other" / "vqvae.pt", payload)
    assert md5(first) == md5(second)
    changed = save_checkpoint(tmp_path / "c.pt", {**payload, "step": 4})
    assert md5(changed) != md5(first)


def test_code_digest_follows_every_source_file_of_the_packages(tmp_path: Path, monkeypatch) -> None:
    package = tmp_path / "fakepkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "model.py").write_text("SCALE = 1.0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = code_digest(("fakepkg",))
    assert code_digest(("fakepkg",)) == before
    (package / "sub" / "model.py").write_text("SCALE = 0.5\n")
    assert code_digest(("fakepkg",)) != before
    (package / "sub" / "model.py").write_text("SCALE = 1.0\n")
    assert code_digest(("fakepkg",)) == before
    (package / "sub" / "extra.py").write_text("")
    assert code_digest(("fakepkg",)) != before
    sys.modules.pop("fakepkg", None)


def test_compute_threads_is_validated_and_set_by_every_stage(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"compute\.threads"):
        ComputeConfig(threads=0)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["compute"]["threads"] = 1
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    assert load_params(path).compute.threads == 1
    before = torch.get_num_threads()
    with stage_threads(path) as threads:
        assert threads == torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_parallel_experiments_default_to_what_the_cores_hold(tmp_path: Path, monkeypatch, caplog) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    (tmp_path / "params.yaml").write_text("compute:\n  threads: 2\n")
    assert fitting_jobs(tmp_path, None) == 2
    assert fitting_jobs(tmp_path, 1) == 1
    assert fitting_jobs(tmp_path, 3) == 3
    assert "slow each other down" in caplog.text
    (tmp_path / "params.yaml").write_text("train:\n  seed: 0\n")  # a project without the key: 1 thread
    assert fitting_jobs(tmp_path, None) == 4


def test_every_report_is_in_git_or_in_the_dvc_cache() -> None:
    """DVC's contract: `cache: false` metrics/plots are committed to git (not ignored), the others are
    cached by DVC (ignored by git), so `dvc exp show`, `metrics diff`, `plots diff` and a `dvc pull`
    clone see every one of them."""
    import subprocess

    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    entries = [
        (name, entry)
        for name, stage in stages.items()
        for kind in ("outs", "metrics", "plots")
        for entry in stage.get(kind) or []
    ]
    for name, entry in entries:
        path, options = (entry, {}) if isinstance(entry, str) else next(iter(entry.items()))
        ignored = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", path]).returncode == 0
        cached = (options or {}).get("cache", True)
        assert ignored == cached, (
            f"{name}: {path} (cache {cached}) is {'ignored' if ignored else 'tracked'} by git"
        )
