"""The reproduction check, and DVC's contract on the real chain (tiny configuration, CPU).

The chain runs twice from scratch (``pipelines.reproduce_check``): every output must be bit-identical.
Then, on those copies: `dvc repro -f -s train_vqvae` leaves everything downstream up to date; a change to
the GPT's code really retrains it; a clone that `dvc pull`s from a local remote is up to date and
re-runs nothing. A tiny project with a stage made nondeterministic on purpose shows the check fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from pipelines.reproduce_check import format_table, main, reproduce_check
from tests.project_files import ROOT
from tests.test_pipeline_models import tiny_params
from tests.tiny_dvc import git, make_project

TINY_DATA = {
    "genres": ["gBR", "gHO"],
    "music_per_genre": 2,
    "dancers_per_music": 1,
    "choreographies_per_dancer": 2,
    "seconds": 5.0,
    "sample_rate": 22050,
}


def dvc(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "PATH": path, "DANCEBA_TRACKING": "off"}
    return subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=root, env=env, capture_output=True, text=True, check=False
    )


def tiny_chain_params(folder: Path) -> Path:
    path = tiny_params(folder)
    params = yaml.safe_load(path.read_text())
    params["data"]["mini"].update(TINY_DATA)
    params["generate"]["sample_videos"] = 0
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    work = tmp_path_factory.mktemp("reproduce")
    params = tiny_chain_params(tmp_path_factory.mktemp("tiny-params"))
    return reproduce_check(ROOT, work, params), work


def test_two_runs_from_scratch_write_the_same_bits(checked) -> None:
    report, _ = checked
    assert all(run["returncode"] == 0 for run in report["runs"]), report["runs"]
    differing = [(row["path"], row.get("difference")) for row in report["rows"] if not row["identical"]]
    assert differing == []
    paths = {row["path"] for row in report["rows"]}
    assert {"data/models/vqvae.pt", "data/models/gpt.pt", "data/generated", "reports/metrics.json"} <= paths
    assert report["ok"] and report["outputs"] == len(paths) >= 20
    assert "| train_gpt | data/models/gpt.pt | yes |" in format_table(report)


def test_forcing_train_vqvae_again_leaves_every_downstream_stage_up_to_date(checked) -> None:
    _, work = checked
    copy = work / "b"
    before = (copy / "dvc.lock").read_text()
    forced = dvc(copy, "repro", "-f", "-s", "train_vqvae")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    status = dvc(copy, "status", "--json")
    assert status.returncode == 0 and json.loads(status.stdout) == {}, status.stdout
    assert (copy / "dvc.lock").read_text() == before


def test_a_dvc_pull_clone_is_up_to_date_and_reruns_nothing(checked, tmp_path: Path) -> None:
    _, work = checked
    copy = work / "b"
    assert dvc(copy, "remote", "add", "-d", "local", str(tmp_path / "remote")).returncode == 0
    pushed = dvc(copy, "push")
    assert pushed.returncode == 0, pushed.stderr
    git(copy, "add", "-A")
    git(copy, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "results")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(copy), str(clone))
    assert not (clone / "reports" / "plots").exists()
    for name in ("reports/train_gpt/train.json", "reports/train_vqvae/plots/stage1/val.csv"):
        assert (clone / name).is_file(), f"{name}: a training report is not in git"
    pulled = dvc(clone, "pull")
    assert pulled.returncode == 0, pulled.stderr
    status = dvc(clone, "status", "--json")
    assert json.loads(status.stdout) == {}, status.stdout
    dry = dvc(clone, "repro", "--dry")
    assert dry.returncode == 0 and "Running stage" not in dry.stdout, dry.stdout
    shown = dvc(clone, "metrics", "show", "--json")
    assert "reports/train_gpt/train.json" in shown.stdout and "val_ce" in shown.stdout


def test_metrics_and_plots_diff_between_two_seeds_show_every_training_metric(checked) -> None:
    """After the pull test committed copy b's results: an experiment with another seed, the diffs, and
    `dvc exp apply` of it leaving nothing stale."""
    _, work = checked
    copy = work / "b"
    ran = dvc(copy, "exp", "run", "-S", "train_gpt.train.seed=1", "--name", "seed-1")
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    metrics = json.loads(dvc(copy, "metrics", "diff", "HEAD", "seed-1", "--json").stdout)
    assert {"reports/train_gpt/train.json", "reports/train_gpt/metrics.json", "reports/metrics.json"} <= set(
        metrics
    )
    assert "final.val_ce" in metrics["reports/train_gpt/train.json"]
    plots = dvc(copy, "plots", "diff", "HEAD", "seed-1", "--json")
    assert plots.returncode == 0, plots.stderr
    shown = json.loads(plots.stdout)["data"]
    curves = {name for name in shown if name.startswith("reports/train_")}
    assert curves == {
        f"reports/{name}.csv"
        for name in (
            "train_gpt/plots/val",
            "train_gpt/plots/train",
            "train_vqvae/plots/stage1/val",
            "train_vqvae/plots/stage1/train",
            "train_vqvae/plots/stage2/val",
            "train_vqvae/plots/stage2/train",
        )
    }, sorted(shown)
    for name in curves:
        points = shown[name][0]["content"]["data"]["values"]
        assert {point["rev"] for point in points} == {"HEAD", "seed-1"}, name
    git(copy, "reset", "-q", "--hard")  # back to the committed results (seed 42), then apply seed 1's
    assert dvc(copy, "checkout", "--force").returncode == 0
    applied = dvc(copy, "exp", "apply", "seed-1")
    assert applied.returncode == 0, applied.stderr
    status = dvc(copy, "status", "--json")
    assert json.loads(status.stdout) == {}, status.stdout  # nothing stale: every report came with it


def test_a_change_to_the_gpt_code_really_retrains_it(checked) -> None:
    _, work = checked
    copy = work / "a"
    old = torch.load(copy / "data/models/gpt.pt", weights_only=True)["model"]
    with open(copy / "danceba/models/gpt.py", "a", encoding="utf-8") as handle:
        handle.write(
            "\n\n_build_gpt_before_the_edit = build_gpt\n\n\n"
            "def build_gpt(config):  # the edit: initial weights halved\n"
            "    model = _build_gpt_before_the_edit(config)\n"
            "    with torch.no_grad():\n"
            "        for parameter in model.parameters():\n"
            "            parameter.mul_(0.5)\n"
            "    return model\n"
        )
    rerun = dvc(copy, "repro")
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert "Running stage 'train_gpt'" in rerun.stdout
    new = torch.load(copy / "data/models/gpt.pt", weights_only=True)["model"]
    assert any(not torch.equal(old[name], new[name]) for name in old)


def test_the_check_fails_when_a_stage_is_nondeterministic(tmp_path: Path) -> None:
    script = (
        "import json, os, pathlib, sys\n"
        "out = pathlib.Path(sys.argv[1]); out.parent.mkdir(parents=True, exist_ok=True)\n"
        "noise = int.from_bytes(os.urandom(4), 'little') / 2**32 if sys.argv[2] == 'random' else 0.25\n"
        "out.write_text(json.dumps({'loss': 1.0, 'score': noise}))\n"
    )
    dvc_yaml = {
        "stages": {
            "steady": {
                "cmd": "python write.py out/steady.json fixed",
                "deps": ["write.py"],
                "outs": ["out/steady.json"],
            },
            "noisy": {
                "cmd": "python write.py out/noisy.json random",
                "deps": ["write.py"],
                "outs": ["out/noisy.json"],
            },
        }
    }
    (tmp_path / "project").mkdir()
    project = make_project(
        tmp_path / "project",
        {"write.py": script, "dvc.yaml": yaml.safe_dump(dvc_yaml), ".gitignore": "/out/\n"},
    )
    out = tmp_path / "report.json"
    assert main(["--project", str(project), "--out", str(out)]) == 1
    report = json.loads(out.read_text())
    rows = {row["stage"]: row for row in report["rows"]}
    assert rows["steady"]["identical"] and not rows["noisy"]["identical"]
    difference = rows["noisy"]["difference"]
    assert 0 < difference["max_abs_diff"] < 1 and difference["detail"] == "largest at score"
    assert report["identical"] == 1 and report["outputs"] == 2 and not report["ok"]
