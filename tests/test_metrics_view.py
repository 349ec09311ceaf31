"""``python -m danceba.metrics_view``: the DVC metrics one per line, read through DVC (narrow where
``dvc metrics show`` prints one row per file with a column per key of every file)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from danceba.metrics_view import format_value, main

DVC_YAML = """stages:
  train:
    cmd: echo
    metrics:
      - train.json:
          cache: false
  evaluate:
    cmd: echo
    metrics:
      - metrics.json:
          cache: false
"""
EVALUATION = {
    "bailando": {f"row{r}": {f"metric{m}": r + m / 10 for m in range(30)} for r in range(10)},
    "protocol": {"name": "bailando", "motion_beats": "strict local minima of the mean joint speed " * 3},
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("metrics")
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, check=True)
    (root / "dvc.yaml").write_text(DVC_YAML)
    (root / "train.json").write_text(json.dumps({"steps": 800, "val": {"ce": 1.799214731901884}}))
    (root / "metrics.json").write_text(json.dumps(EVALUATION))
    return root


def test_one_metric_per_line_grouped_by_file_and_narrow(project: Path, capsys) -> None:
    assert main(["--project", str(project)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[:3] == ["train.json", "  steps   800", "  val.ce  1.79921"]
    assert "metrics.json" in lines and "  bailando.row9.metric29  11.9" in lines
    assert len([line for line in lines if line.startswith("  bailando.")]) == 300
    assert "protocol" not in out  # text values only with --text
    assert max(map(len, lines)) < 40
    wide = subprocess.run(
        [sys.executable, "-m", "dvc", "metrics", "show"], cwd=project, capture_output=True, text=True
    ).stdout
    assert max(map(len, wide.splitlines())) > 1000  # what this view replaces


def test_grep_text_markdown_and_targets(project: Path, capsys) -> None:
    assert main(["--project", str(project), "--grep", r"row3\.metric1[01]$", "--md", "--precision", "2"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "| file | metric | value |",
        "|---|---|---|",
        "| metrics.json | bailando.row3.metric10 | 4 |",
        "| metrics.json | bailando.row3.metric11 | 4.1 |",
    ]
    assert main(["--project", str(project), "--text", "--grep", "protocol.name"]) == 0
    assert capsys.readouterr().out.splitlines() == ["metrics.json", "  protocol.name  bailando"]
    assert main(["--project", str(project), "train.json"]) == 0
    assert "bailando" not in capsys.readouterr().out
    assert main(["--project", str(project), "--grep", "no such key"]) == 1
    assert format_value(0.123456789, 5) == "0.12346" and format_value(True, 5) == "True"
