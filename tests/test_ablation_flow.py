"""The ablation flow on a tiny DVC project whose params have the real variant keys.

Stages: ``prep`` (upstream) -> ``train`` (``train_gpt.model.*``, the seed) -> ``generate``
(``generate.decode``) -> ``evaluate``. Every stage execution leaves a marker
``<stage>-<seed>-<variant tag>-<ns>`` (content: the ``DANCEBA_PARENT_RUN_ID`` it saw). ``train`` fails
unless every model param has the loader's type after ``dvc exp run -S`` rewrote params.yaml, and
``generate`` fails for ``pmmm: single`` unless ``decode: exact`` (params.yaml says ``cached``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import pipelines.flows as flows
from danceba.ablation import select_variants, variant_records_dir
from danceba.sweep import SeedRecord, write_seed_record
from pipelines.ablation_flow import ablation, ablation_runs
from tests.tiny_dvc import git, make_project, mlflow_runs

STAGE_SCRIPT = """\
import json, os, sys, time
from pathlib import Path
import yaml

stage = sys.argv[1]
params = yaml.safe_load(Path("params.yaml").read_text())
model, seed = params["train_gpt"]["model"], params["train_gpt"]["train"]["seed"]
tag = "single" if model["pmmm"] == "single" else ("nopre" if model["pre"] is False else "base")
markers = Path(os.environ["TINY_MARKERS"])
(markers / f"{stage}-{seed}-{tag}-{time.time_ns()}").write_text(os.environ.get("DANCEBA_PARENT_RUN_ID", ""))
if stage == "prep":
    Path("data").mkdir(exist_ok=True)
    Path("data/prep.txt").write_text(str(params["prep"]["scale"]))
elif stage == "train":
    types = {"stack": str, "pre": bool, "tgca_gate": bool, "pmmm": str}
    wrong = {key: value for key, value in model.items() if type(value) is not types[key]}
    if wrong or model["pmmm"] not in ("parallel", "single", "none"):
        sys.exit(f"train: mistyped params {wrong or model}")
    if (markers / f"fail_{tag}_{seed}").exists():
        sys.exit(f"train: {tag} seed {seed} diverged (simulated)")
    score = seed * int(Path("data/prep.txt").read_text()) + (100 if tag == "single" else 0)
    Path("model.txt").write_text(str(score + (0 if model["pre"] else 1000)))
elif stage == "generate":
    if model["pmmm"] == "single" and params["generate"]["decode"] != "exact":
        sys.exit("generate: pmmm single decodes exact only")
    Path("dance.txt").write_text(Path("model.txt").read_text())
else:
    m = float(Path("dance.txt").read_text())
    Path("reports").mkdir(exist_ok=True)
    rows = {
        "protocol": {"bailando": {"bas_sigma": 3.0}},
        "bailando": {"model": {"fid_k": m, "bas_excess": 0.01 * seed}, "model_sham_music": {"bas_excess": 0.0}},
    }
    Path("reports/metrics.json").write_text(json.dumps(rows))
"""

DVC_YAML = """\
stages:
  prep:
    cmd: python stage.py prep
    deps: [stage.py]
    params: [prep.scale]
    outs: [data/prep.txt]
  train:
    cmd: python stage.py train
    deps: [stage.py, data/prep.txt]
    params: [train_gpt.model.stack, train_gpt.model.pre, train_gpt.model.tgca_gate, train_gpt.model.pmmm,
             train_gpt.train.seed]
    outs: [model.txt]
  generate:
    cmd: python stage.py generate
    deps: [stage.py, model.txt]
    params: [generate.decode]
    outs: [dance.txt]
  evaluate:
    cmd: python stage.py evaluate
    deps: [stage.py, dance.txt]
    metrics: [reports/metrics.json]
"""

PARAMS = """\
prep:
  scale: 2
train_gpt:
  model:
    stack: danceba
    pre: true
    tgca_gate: true
    pmmm: parallel
  train:
    seed: 0
generate:
  decode: cached
"""

VARIANTS = ["no_pre", "single_pmmm"]
FLOW_ARGS = {"seeds": [1, 2], "variants": VARIANTS, "jobs": 2, "seed_retry_delay_s": 0.0}


def executions(markers: Path) -> list[tuple[str, int, str, str]]:
    """(stage, seed, variant tag, parent run id) of every stage execution, oldest first."""
    found = []
    for path in markers.iterdir():
        parts = path.name.split("-")
        if len(parts) == 4 and parts[3].isdigit():
            found.append((int(parts[3]), parts[0], int(parts[1]), parts[2], path.read_text()))
    return [(stage, seed, tag, parent) for _, stage, seed, tag, parent in sorted(found)]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The committed tiny project and its marker folder; MLflow goes to <project>/mlflow.db."""
    root, markers = tmp_path_factory.mktemp("tiny-ablation"), tmp_path_factory.mktemp("ablation-markers")
    make_project(root, {"stage.py": STAGE_SCRIPT, "dvc.yaml": DVC_YAML, "params.yaml": PARAMS})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TINY_MARKERS", str(markers))
        patch.setenv("DANCEBA_TRACKING", "on")
        for name in ("MLFLOW_TRACKING_URI", "DANCEBA_PARENT_RUN_ID", "MLFLOW_PARENT_RUN_ID"):
            patch.delenv(name, raising=False)
        yield root, markers


@pytest.fixture(scope="module")
def ablated(tiny, prefect_harness):
    """2 variants x 2 seeds, two at a time; single_pmmm seed 2 fails every time."""
    root, markers = tiny
    (markers / "fail_single_2").touch()
    return ablation(str(root), seed_params=["train_gpt.train.seed"], **FLOW_ARGS), executions(markers)


def test_only_variant_stages_rerun_and_the_failed_run_is_reported(tiny, ablated):
    root, _ = tiny
    report, ran = ablated
    assert sorted((stage, seed, tag) for stage, seed, tag, _ in ran) == [
        ("evaluate", 1, "nopre"),
        ("evaluate", 1, "single"),
        ("evaluate", 2, "nopre"),
        ("generate", 1, "nopre"),
        ("generate", 1, "single"),
        ("generate", 2, "nopre"),
        ("prep", 0, "base"),  # upstream: once, in the workspace
        ("train", 1, "nopre"),
        ("train", 1, "single"),
        ("train", 2, "nopre"),
        ("train", 2, "single"),
        ("train", 2, "single"),  # retried once, then reported failed
    ]
    no_pre, single = report["variants"]["no_pre"], report["variants"]["single_pmmm"]
    assert single["seeds"]["2"]["status"] == "failed" and single["seeds"]["2"]["attempts"] == 2
    assert "failed to reproduce 'train'" in single["seeds"]["2"]["error"]
    assert (report["n_runs"], report["n_ok"], report["n_failed"]) == (4, 3, 1)
    fid = no_pre["summary"]["metrics"]["bailando.model.fid_k"]  # 1000 + 2 s: 1002, 1004
    assert (fid["mean"], fid["n"]) == (1003.0, 2) and fid["ci_high"] == pytest.approx(
        1003 + 12.706205, abs=1e-5
    )
    assert single["summary"]["metrics"]["bailando.model.fid_k"]["mean"] == 102.0  # 2 + 100
    assert report["wall_time_s"] > 0 and report["skipped"] == {"no_pre": [], "single_pmmm": []}
    assert json.loads((root / "reports" / "ablation.json").read_text())["variants"].keys() == {
        "no_pre",
        "single_pmmm",
    }
    markdown = (root / "reports" / "ablation.md").read_text()
    assert (
        "| no_pre | 2 | 1003 ± 1 [990, 1016] |" in markdown and "| single_pmmm | 2 | failed | 2 |" in markdown
    )
    record = json.loads((root / "reports" / "ablation" / "single_pmmm" / "seed-1.json").read_text())
    shown = git(root, "show", f"{record['rev']}:params.yaml")
    assert "pmmm: single" in shown and "decode: exact" in shown and "seed: 1" in shown
    assert "pmmm: parallel" in (root / "params.yaml").read_text()  # the workspace keeps its own


def test_ablation_runs_nest_in_mlflow(tiny, ablated):
    root, _ = tiny
    _, ran = ablated
    runs = mlflow_runs(root)
    parent = next(r for r in runs.values() if r.info.run_name == "ablation")
    assert parent.data.tags["danceba.flow"] == "ablation" and parent.data.metrics["ablation.n_failed"] == 1
    children = [r for r in runs.values() if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted((r.info.run_name, r.info.status) for r in children) == [
        ("no_pre-seed-1", "FINISHED"),
        ("no_pre-seed-2", "FINISHED"),
        ("single_pmmm-seed-1", "FINISHED"),
        ("single_pmmm-seed-2", "FAILED"),
        ("single_pmmm-seed-2", "FAILED"),
    ]
    child = next(r for r in children if r.info.run_name == "no_pre-seed-1")
    assert (
        child.data.tags["danceba.variant"] == "no_pre"
        and child.data.metrics["bailando.model.fid_k"] == 1002.0
    )
    assert {p for stage, seed, tag, p in ran if (seed, tag) == (1, "nopre")} == {child.info.run_id}
    assert parent.data.metrics["no_pre.bailando.model.fid_k.mean"] == 1003.0
    assert parent.data.tags["ablation.single_pmmm.seed.2"] == "failed"


def test_restarted_ablation_runs_only_the_failed_run(tiny, ablated):
    root, markers = tiny
    (markers / "fail_single_2").unlink()
    before = len(executions(markers))
    report = ablation(str(root), seed_params=["train_gpt.train.seed"], **FLOW_ARGS)
    ran = executions(markers)[before:]
    assert sorted((stage, seed, tag) for stage, seed, tag, _ in ran) == [
        ("evaluate", 2, "single"),
        ("generate", 2, "single"),
        ("train", 2, "single"),
    ]
    assert report["skipped"] == {"no_pre": [1, 2], "single_pmmm": [1]} and report["n_failed"] == 0
    assert report["variants"]["single_pmmm"]["summary"]["metrics"]["bailando.model.fid_k"]["mean"] == 103.0


def test_runs_to_do_skip_ok_records_of_the_current_fingerprint(tmp_path):
    no_pre, single = select_variants(VARIANTS)
    write_seed_record(variant_records_dir(tmp_path, no_pre), SeedRecord(0, "ok", 1, "fp-a", variant="no_pre"))
    write_seed_record(variant_records_dir(tmp_path, no_pre), SeedRecord(1, "failed", 2, "fp-a"))
    write_seed_record(variant_records_dir(tmp_path, single), SeedRecord(0, "ok", 1, "fp-old"))
    fingerprints = {"no_pre": "fp-a", "single_pmmm": "fp-b"}
    todo = ablation_runs([no_pre, single], [0, 1], fingerprints, tmp_path, rerun=False)
    assert [(r.name, r.fingerprint) for r in todo] == [
        ("no_pre-seed-1", "fp-a"),
        ("single_pmmm-seed-0", "fp-b"),
        ("single_pmmm-seed-1", "fp-b"),
    ]
    assert todo[1].all_overrides(["s"]) == ["train_gpt.model.pmmm=single", "generate.decode=exact", "s=0"]
    assert len(ablation_runs([no_pre, single], [0, 1], fingerprints, tmp_path, rerun=True)) == 4


def test_command_line():
    args = flows.parser().parse_args(
        ["ablation", "--seeds", "2", "--variants", "danceba,no_pre", "--jobs", "1"]
    )
    assert (args.command, args.seeds, args.variants, args.jobs, args.seed_list) == (
        "ablation",
        2,
        ["danceba", "no_pre"],
        1,
        None,
    )
    defaults = flows.parser().parse_args(["ablation"])
    assert (defaults.seeds, defaults.variants) == (3, None)
    assert flows.parser().parse_args(["sweep"]).seeds == 5
    with pytest.raises(SystemExit):
        flows.parser().parse_args(["ablation", "--variants", "danceba,no_mamba"])
