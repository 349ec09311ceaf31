"""The pieces that make a re-run write the same bytes: checkpoint files independent of their names, run folders keyed by code, the thread count as a parameter."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest
import torch
import yaml

from danceba.config import ComputeConfig, ConfigError, load_params
from danceba.provenance import code_digest, import_closure
from danceba.train.checkpoint import save_checkpoint
from pipelines.stage import stage_threads
from pipelines.sweep_flow import fitting_jobs
from tests.project_files import EMBEDDED_PARAMS, ROOT


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_a_checkpoint_is_the_same_bytes_whatever_its_file_name(tmp_path: Path) -> None:
    payload = {"model": {"w": torch.arange(6.0).reshape(2, 3)}, "step": 3}
    first = save_checkpoint(tmp_path / "a.pt", payload)
    second = save_checkpoint(tmp_path / "other" / "vqvae.pt", payload)
    assert md5(first) == md5(second)
    changed = save_checkpoint(tmp_path / "c.pt", {**payload, "step": 4})
    assert md5(changed) != md5(first)


def test_code_digest_follows_the_code_the_entry_module_can_import(tmp_path: Path, monkeypatch) -> None:
    package = tmp_path / "fakepkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "model.py").write_text("SCALE = 1.0\n")
    (package / "sub" / "lazy.py").write_text("X = 1\n")
    (package / "stage.py").write_text(
        "from fakepkg.sub.model import SCALE\n\ndef run():\n    from .sub import lazy\n    return lazy.X\n"
    )
    (package / "viewer.py").write_text("import fakepkg.stage\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    def digest() -> str:
        return code_digest("fakepkg.stage", ("fakepkg",))

    before = digest()
    assert digest() == before
    for path, changed in [
        ("sub/model.py", "SCALE = 0.5\n"),  # imported at the top
        ("sub/lazy.py", "X = 2\n"),  # imported inside a function, relative
        ("sub/__init__.py", "Y = 0\n"),  # a package the import runs on the way
    ]:
        original = (package / path).read_text()
        (package / path).write_text(changed)
        assert digest() != before, path
        (package / path).write_text(original)
        assert digest() == before
    (package / "viewer.py").write_text(
        "import fakepkg.stage\nZ = 3\n"
    )  # imports the stage, not imported by it
    (package / "sub" / "unused.py").write_text("")
    assert digest() == before
    with pytest.raises(ModuleNotFoundError, match=r"fakepkg\.nothing"):
        code_digest("fakepkg.nothing", ("fakepkg",))
    sys.modules.pop("fakepkg", None)


def test_the_training_stages_digest_leaves_out_the_modules_they_cannot_run() -> None:
    closure = import_closure("pipelines.train_gpt")
    assert {"pipelines.train_gpt", "danceba.models.gpt", "danceba.train.loop", "pipelines"} <= set(closure)
    assert not {"danceba.cli", "danceba.long_dance", "danceba.ablation"} & set(closure)


def test_compute_threads_is_validated_and_set_by_every_stage(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"compute\.threads"):
        ComputeConfig(threads=0)
    params = yaml.safe_load(EMBEDDED_PARAMS.read_text())
    params["compute"]["threads"] = 1
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    assert load_params(path).compute.threads == 1
    before = torch.get_num_threads()
    with stage_threads(load_params(path).compute.threads) as threads:
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
