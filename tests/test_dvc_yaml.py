"""dvc.yaml and params.yaml agree: every stage script exists, every parameter is listed (by section)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from danceba.nested import flatten
from pipelines.dvc_graph import covers
from tests.project_files import ROOT, stage_argv


def _leaves(tree: dict, prefix: str = "") -> set[str]:
    return set(flatten(tree, prefix))


def _stages() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def test_every_stage_runs_a_pipeline_script_it_depends_on() -> None:
    for name, stage in _stages().items():
        module = stage["cmd"].split("-m ")[1].split()[0]
        script = module.replace(".", "/") + ".py"
        assert (ROOT / script).is_file(), name
        assert script in stage["deps"], f"stage {name} does not list {script} as a dependency"


def _entries(tree: dict, prefix: str = "") -> set[str]:
    """Every section and leaf name of a params tree (``a``, ``a.b``, ``a.b.c``)."""
    out = set()
    for key, value in tree.items():
        name = f"{prefix}{key}"
        out |= {name} | (_entries(value, f"{name}.") if isinstance(value, dict) else set())
    return out


def test_params_are_listed_by_section_and_cover_params_yaml() -> None:
    """A stage that reads a whole section names the section (DVC tracks it whole, one source per knob);
    every entry exists in params.yaml and every leaf is read by some stage."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    listed = {key for stage in _stages().values() for key in stage.get("params", [])}
    assert listed <= _entries(params), f"listed but not in params.yaml: {sorted(listed - _entries(params))}"
    leaves = _leaves(params)
    covered = {leaf for leaf in leaves if any(covers(entry, leaf) for entry in listed)}
    unused = {key for key in leaves - covered if not key.startswith("data.download_dir")}
    assert not unused, f"params.yaml keys no stage depends on: {sorted(unused)}"
    for name, stage in _stages().items():
        entries = stage.get("params", [])
        for entry in entries:
            section = params
            for part in entry.split("."):
                section = section[part]
            assert not any(covers(other, entry) for other in entries if other != entry), (name, entry)
        whole = {entry.split(".")[0] for entry in entries}
        for top in whole:  # a section whose every leaf the stage lists is named as the section
            if isinstance(params[top], dict) and _leaves(params[top], f"{top}.") <= {
                leaf for leaf in leaves if any(covers(e, leaf) for e in entries)
            }:
                assert top in entries, f"stage {name} lists every key of {top}: name the section"


def test_the_chain_is_connected() -> None:
    stages = _stages()
    produced = {
        str(next(iter(o)) if isinstance(o, dict) else o) for s in stages.values() for o in s.get("outs", [])
    }
    for name, stage in stages.items():
        for dep in stage["deps"]:
            if dep.startswith("data/"):
                assert dep in produced, f"{name} depends on {dep}, which no stage produces"


def test_stage_argv_is_the_command_dvc_runs_with_the_test_s_paths(tmp_path: Path) -> None:
    where = {
        "params.yaml": tmp_path / "p.yaml",
        "data/joints.parquet": tmp_path / "j",
        "data/sequences.parquet": tmp_path / "s",
        "data/gt_features.parquet": tmp_path / "g",
    }
    argv = stage_argv("gt_features", where)
    assert argv == [
        "--params",
        str(tmp_path / "p.yaml"),
        "--joints",
        str(tmp_path / "j"),
        "--sequences",
        str(tmp_path / "s"),
        "--out",
        str(tmp_path / "g"),
    ]
    del where["data/sequences.parquet"]
    with pytest.raises(KeyError, match=r"gt_features needs \['data/sequences.parquet'\]"):
        stage_argv("gt_features", where)
