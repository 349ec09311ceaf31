"""dvc.yaml and params.yaml agree: every stage script exists, every parameter is listed key by key."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _leaves(tree: dict, prefix: str = "") -> set[str]:
    out = set()
    for key, value in tree.items():
        name = f"{prefix}{key}"
        out |= _leaves(value, f"{name}.") if isinstance(value, dict) else {name}
    return out


def _stages() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def test_every_stage_runs_a_pipeline_script_it_depends_on() -> None:
    for name, stage in _stages().items():
        module = stage["cmd"].split("-m ")[1].split()[0]
        script = module.replace(".", "/") + ".py"
        assert (ROOT / script).is_file(), name
        assert script in stage["deps"], f"stage {name} does not list {script} as a dependency"


def test_params_are_listed_key_by_key_and_cover_params_yaml() -> None:
    leaves = _leaves(yaml.safe_load((ROOT / "params.yaml").read_text()))
    listed = {key for stage in _stages().values() for key in stage.get("params", [])}
    assert listed <= leaves, f"listed but not leaves of params.yaml: {sorted(listed - leaves)}"
    unused = {key for key in leaves - listed if not key.startswith("data.download_dir")}
    assert not unused, f"params.yaml keys no stage depends on: {sorted(unused)}"


def test_the_chain_is_connected() -> None:
    stages = _stages()
    produced = {
        str(next(iter(o)) if isinstance(o, dict) else o) for s in stages.values() for o in s.get("outs", [])
    }
    for name, stage in stages.items():
        for dep in stage["deps"]:
            if dep.startswith("data/"):
                assert dep in produced, f"{name} depends on {dep}, which no stage produces"
