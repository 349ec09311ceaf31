"""The reproduction check: run the whole chain twice from scratch and compare every output, bit for bit.

    python -m pipelines.reproduce_check                       # the project's params.yaml (make reproduce-check)
    python -m pipelines.reproduce_check --params tiny.yaml    # another params file in both copies
    python -m pipelines.reproduce_check --keep /tmp/runs      # keep the two copies

The working tree (git-tracked files and untracked ones git does not ignore, as they are now) is copied
twice into a temporary folder, each copy becomes a git repository with one commit, and ``dvc repro``
runs in each, one after the other, with no DVC cache, run folders or MLflow store carried over. Then
the two ``dvc.lock`` files are compared stage by stage: an output whose DVC hash is equal in both is
bit-identical; for each other one the report says which files differ and by how much
(:mod:`danceba.output_diff`). Writes a JSON report (``--out``) and prints a table; exits 1 when an
output differs or a run fails.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from danceba.atomic import write_text_atomic
from danceba.output_diff import describe_difference

RUNS = ("a", "b")


def working_tree_files(project: Path) -> list[str]:
    """The files a fresh clone of the working tree would hold: tracked plus untracked-not-ignored."""
    listed = subprocess.run(
        ["git", "-C", str(project), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    return sorted(name.decode() for name in listed if name and (project / name.decode()).is_file())


def copy_project(project: Path, destination: Path, params: Path | None) -> Path:
    """Copy the working tree to ``destination`` (params.yaml replaced by ``params``), git-init it."""
    for name in working_tree_files(project):
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(project / name, target)
    if params is not None:
        shutil.copyfile(params, destination / "params.yaml")
    for args in (
        ["init", "-q"],
        ["add", "-A"],
        ["-c", "user.name=reproduce-check", "-c", "user.email=check@danceba", "commit", "-qm", "snapshot"],
    ):
        subprocess.run(["git", "-C", str(destination), *args], check=True, capture_output=True)
    return destination


def run_chain(copy: Path, log_path: Path, tracking: bool) -> dict[str, Any]:
    """``dvc repro`` in ``copy`` (its output in ``log_path``); ``{"returncode", "seconds"}``."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {**os.environ, "PATH": path, "DANCEBA_TRACKING": "on" if tracking else "off"}
    env.pop("MLFLOW_TRACKING_URI", None)
    started = time.monotonic()
    with open(log_path, "w", encoding="utf-8") as log:
        done = subprocess.run(
            [sys.executable, "-m", "dvc", "repro"], cwd=copy, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    return {"returncode": done.returncode, "seconds": round(time.monotonic() - started, 1)}


def locked_outputs(copy: Path) -> dict[str, dict[str, str]]:
    """``{stage: {output path: md5}}`` from ``copy/dvc.lock`` ({} when there is none)."""
    lock = copy / "dvc.lock"
    if not lock.is_file():
        return {}
    stages = (yaml.safe_load(lock.read_text(encoding="utf-8")) or {}).get("stages", {})
    return {
        name: {str(out["path"]): str(out.get("md5")) for out in stage.get("outs", [])}
        for name, stage in stages.items()
    }


def compare_runs(copy_a: Path, copy_b: Path) -> list[dict[str, Any]]:
    """One row per stage output: equal or not, and (when not) what differs."""
    outs_a, outs_b = locked_outputs(copy_a), locked_outputs(copy_b)
    rows = []
    for stage in list(dict.fromkeys([*outs_a, *outs_b])):
        paths = list(dict.fromkeys([*outs_a.get(stage, {}), *outs_b.get(stage, {})]))
        for path in paths:
            md5_a, md5_b = outs_a.get(stage, {}).get(path), outs_b.get(stage, {}).get(path)
            row: dict[str, Any] = {"stage": stage, "path": path, "md5": [md5_a, md5_b]}
            row["identical"] = md5_a is not None and md5_a == md5_b
            if not row["identical"]:
                row["difference"] = describe_difference(copy_a / path, copy_b / path)
            rows.append(row)
    return rows


def format_table(report: dict[str, Any]) -> str:
    """The report as a Markdown table: stage, output, identical, difference."""
    runs = ", ".join(f"exit {run['returncode']} in {run['seconds']} s" for run in report["runs"])
    lines = [
        f"Reproduction check: {report['identical']} of {report['outputs']} outputs bit-identical (runs: {runs})",
        "",
        "| stage | output | identical | difference |",
        "|---|---|---|---|",
    ]
    for row in report["rows"]:
        difference = row.get("difference", {})
        text = ""
        if difference:
            files = difference.get("files")
            text = f"{len(files)} files; " if files is not None else ""
            value = difference.get("max_abs_diff")
            text += f"max abs diff {value:.3g}" if value is not None else difference.get("detail", "")
        lines.append(
            f"| {row['stage']} | {row['path']} | {'yes' if row['identical'] else '**no**'} | {text} |"
        )
    return "\n".join(lines) + "\n"


def reproduce_check(
    project: Path, work: Path, params: Path | None = None, tracking: bool = False
) -> dict[str, Any]:
    """Run the chain twice in copies under ``work`` and compare; the report (see the module docstring)."""
    runs = []
    for name in RUNS:
        copy = copy_project(project, work / name, params)
        runs.append(run_chain(copy, work / f"{name}.log", tracking))
    rows = compare_runs(work / RUNS[0], work / RUNS[1])
    identical = sum(row["identical"] for row in rows)
    ok = all(run["returncode"] == 0 for run in runs) and identical == len(rows) and bool(rows)
    return {"ok": ok, "outputs": len(rows), "identical": identical, "runs": runs, "rows": rows}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=Path("."), help="the project (default: .)")
    parser.add_argument("--params", type=Path, help="params file for both copies (default: the project's)")
    parser.add_argument("--out", type=Path, default=Path("reproduce_check.json"), help="the JSON report")
    parser.add_argument("--keep", type=Path, help="run in this (empty or new) folder and keep it")
    parser.add_argument("--tracking", action="store_true", help="log the runs to MLflow (off by default)")
    args = parser.parse_args(argv)
    project = args.project.resolve()
    params = args.params.resolve() if args.params else None
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        if any(args.keep.iterdir()):
            parser.error(f"--keep {args.keep}: the folder is not empty")
        report = reproduce_check(project, args.keep.resolve(), params, args.tracking)
    else:
        with tempfile.TemporaryDirectory(prefix="danceba-reproduce-") as work:
            report = reproduce_check(project, Path(work), params, args.tracking)
    write_text_atomic(args.out, json.dumps(report, indent=2) + "\n")
    print(format_table(report), end="")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
