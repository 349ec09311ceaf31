"""The Prefect flows on a tiny DVC project (4 stages, a seed param) in a temporary git repository.

Every stage execution leaves a marker file ``<stage>-<seed>-<ns>`` (its content: the
``DANCEBA_PARENT_RUN_ID`` it saw), so the tests count what DVC really ran. Offline; 30-60 s on 2 busy cores
(most of it the Prefect test server and the MLflow schema, once).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import pipelines.flows as flows
from danceba.sweep import read_seed_records
from pipelines import commands, dvc_experiment, sweep_flow
from pipelines.dvc_graph import StageInfo, covers, dvc_stages, seed_dependent, with_upstream
from pipelines.reproduce_flow import reproduce
from pipelines.sweep_flow import run_windowed, sweep
from tests.tiny_dvc import make_project, mlflow_runs

STAGE_SCRIPT = '''\
"""Tiny stand-in for the danceba chain: each stage leaves a marker and a small output."""
import json, os, sys, time
from pathlib import Path
import yaml

stage = sys.argv[1]
params = yaml.safe_load(Path("params.yaml").read_text())
seed = params["train"]["seed"]
markers = Path(os.environ["TINY_MARKERS"])
(markers / f"{stage}-{seed}-{time.time_ns()}").write_text(os.environ.get("DANCEBA_PARENT_RUN_ID", ""))
if stage == "fetch":
    if (markers / "fail_fetch_once").exists():
        (markers / "fail_fetch_once").unlink()
        sys.exit("fetch: network down (simulated)")
    Path("data").mkdir(exist_ok=True)
    Path("data/raw.txt").write_text("raw")
elif stage == "prep":
    Path("data/prep.txt").write_text(str(params["prep"]["scale"]))
elif stage == "train":
    if (markers / f"fail_seed_{seed}").exists():
        sys.exit(f"train: seed {seed} diverged (simulated)")
    Path("model.txt").write_text(str(seed * int(Path("data/prep.txt").read_text())))
else:
    m = int(Path("model.txt").read_text())
    Path("reports").mkdir(exist_ok=True)
    rows = {"bailando": {"model": {"fid_k": m + 0.5, "bas": 0.25}}, "corrected": {"model": {"fid_k": 2.0 * m}}}
    Path("reports/metrics.json").write_text(json.dumps(rows))
'''

DVC_YAML = """\
stages:
  fetch:
    cmd: python stage.py fetch
    deps: [stage.py]
    outs: [data/raw.txt]
  prep:
    cmd: python stage.py prep
    deps: [stage.py, data/raw.txt]
    params: [prep.scale]
    outs: [data/prep.txt]
  train:
    cmd: python stage.py train
    deps: [stage.py, data/prep.txt]
    params: [train.seed]
    outs: [model.txt]
  evaluate:
    cmd: python stage.py evaluate
    deps: [stage.py, model.txt]
    metrics: [reports/metrics.json]
"""

SEED_KEYS = ["train.seed"]


def executions(markers: Path) -> list[tuple[str, int, str]]:
    """(stage, seed, parent run id) of every stage execution, oldest first."""
    found = []
    for path in markers.iterdir():
        parts = path.name.split("-")
        if len(parts) == 3 and parts[2].isdigit():
            found.append((int(parts[2]), parts[0], int(parts[1]), path.read_text()))
    return [(stage, seed, parent) for _, stage, seed, parent in sorted(found)]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A committed git + DVC project and its marker folder; MLflow goes to <project>/mlflow.db."""
    root, markers = tmp_path_factory.mktemp("tiny-project"), tmp_path_factory.mktemp("markers")
    params = "prep:\n  scale: 2\ntrain:\n  seed: 0\n"
    make_project(root, {"stage.py": STAGE_SCRIPT, "dvc.yaml": DVC_YAML, "params.yaml": params})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TINY_MARKERS", str(markers))
        patch.setenv("DANCEBA_TRACKING", "on")
        for name in ("MLFLOW_TRACKING_URI", "DANCEBA_PARENT_RUN_ID", "MLFLOW_PARENT_RUN_ID"):
            patch.delenv(name, raising=False)
        yield root, markers


@pytest.fixture(scope="module")
def reproduced(tiny, prefect_harness):
    root, markers = tiny
    (markers / "fail_fetch_once").touch()
    return reproduce(str(root), download_retry_delay_s=0.0)


@pytest.fixture(scope="module")
def swept(tiny, reproduced):
    """A 3-seed sweep, two at a time, after `reproduce`; seed 3 fails every time."""
    root, markers = tiny
    (markers / "fail_seed_3").touch()
    before = len(executions(markers))
    report = sweep(str(root), seeds=[1, 2, 3], jobs=2, seed_retry_delay_s=0.0, seed_params=SEED_KEYS)
    return report, executions(markers)[before:]


def test_stage_order_and_seed_dependent_stages(tiny):
    root, _ = tiny
    stages = dvc_stages(root)
    assert [s.name for s in stages] == ["fetch", "prep", "train", "evaluate"]
    assert stages[2] == StageInfo("train", ("train.seed",), ("prep",))
    assert seed_dependent(stages, SEED_KEYS) == {"train", "evaluate"}
    assert seed_dependent(stages, ["no.such.key"]) == set()
    assert with_upstream(stages, ["prep"]) == ["fetch", "prep"]
    with pytest.raises(ValueError, match=r"not in dvc\.yaml"):
        with_upstream(stages, ["tokenize"])


def test_seed_dependent_reaches_every_descendant():
    stages = [
        StageInfo("a", (), ()),
        StageInfo("b", ("g.seed",), ("a",)),
        StageInfo("c", (), ("a",)),
        StageInfo("d", (), ("b", "c")),
        StageInfo("e", (), ("d",)),
    ]
    assert seed_dependent(stages, ["g.seed"]) == {"b", "d", "e"}


def test_a_section_entry_covers_its_keys_and_no_others():
    """dvc.yaml may name a whole section (``train_gpt``): its keys are the stage's, a longer name is not."""
    stages = [StageInfo("a", ("gen",), ()), StageInfo("b", ("train_gpt",), ("a",)), StageInfo("c", (), ())]
    assert seed_dependent(stages, ["train_gpt.train.seed"]) == {"b"}
    assert seed_dependent(stages, ["gen.seed"]) == {"a", "b"}
    assert seed_dependent(stages, ["generate.seed", "train_gpt_x.seed"]) == set()
    assert covers("train_gpt", "train_gpt") and not covers("train_gpt.train", "train_gpt")


def test_reproduce_runs_each_stage_once_in_order_retrying_the_download(tiny, reproduced):
    root, markers = tiny
    assert reproduced == ["fetch", "prep", "train", "evaluate"]
    ran = executions(markers)[:5]
    assert [stage for stage, _, _ in ran] == ["fetch", "fetch", "prep", "train", "evaluate"]  # fetch retried
    lock = (root / "dvc.lock").read_text()
    assert all(f"  {stage}:" in lock for stage in reproduced)
    parents = {parent for _, _, parent in ran}
    assert len(parents) == 1 and "" not in parents  # every stage saw the flow's parent run
    run = mlflow_runs(root)[parents.pop()]
    assert run.info.run_name == "reproduce" and run.info.status == "FINISHED"
    assert run.data.tags["danceba.flow"] == "reproduce"


def test_sweep_reruns_only_seed_stages_and_reports_the_failed_seed(tiny, swept):
    root, _ = tiny
    report, ran = swept
    # upstream (fetch, prep) came from `reproduce`: the sweep ran none of it, neither in the workspace
    # nor in the experiments' temporary copies
    assert sorted((stage, seed) for stage, seed, _ in ran) == [
        ("evaluate", 1),
        ("evaluate", 2),
        ("train", 1),
        ("train", 2),
        ("train", 3),
        ("train", 3),  # retried once, then reported failed
    ]
    statuses = {seed: (entry["status"], entry["attempts"]) for seed, entry in report["seeds"].items()}
    assert statuses == {"1": ("ok", 1), "2": ("ok", 1), "3": ("failed", 2)}
    assert "failed to reproduce 'train'" in report["seeds"]["3"]["error"] and (
        report["n_ok"],
        report["n_failed"],
    ) == (2, 1)
    fid = report["summary"]["metrics"]["corrected.model.fid_k"]  # seeds 1, 2 -> 2 * (2s) = 4, 8
    assert (fid["mean"], fid["min"], fid["max"], fid["n"]) == (6.0, 4.0, 8.0, 2)
    assert fid["std"] == pytest.approx(8**0.5)
    assert json.loads((root / "reports" / "sweep.json").read_text())["seeds"] == report["seeds"]
    markdown = (root / "reports" / "sweep.md").read_text()
    assert "| 3 | failed | 2 |" in markdown and "| model | 6.000 ± 2.828 [4.000, 8.000] |" in markdown
    records = read_seed_records(root / "reports" / "sweep")
    assert records[1].metrics["bailando"]["model"]["fid_k"] == 2.5 and records[1].rev
    params = subprocess.run(
        ["git", "-C", str(root), "show", f"{records[2].rev}:params.yaml"], capture_output=True, text=True
    ).stdout
    assert "seed: 2" in params  # the experiment commit holds its seed; the workspace keeps its own
    assert "seed: 0" in (root / "params.yaml").read_text()


def test_sweep_runs_nest_in_mlflow(tiny, swept):
    root, _ = tiny
    _, ran = swept
    runs = mlflow_runs(root)
    parent = next(r for r in runs.values() if r.info.run_name == "sweep")
    children = [r for r in runs.values() if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    names = sorted((r.info.run_name, r.info.status) for r in children)
    assert names == [
        ("seed-1", "FINISHED"),
        ("seed-2", "FINISHED"),
        ("seed-3", "FAILED"),
        ("seed-3", "FAILED"),
    ]
    seed_1 = next(r for r in children if r.info.run_name == "seed-1")
    assert seed_1.data.metrics["corrected.model.fid_k"] == 4.0
    assert {parent for stage, seed, parent in ran if seed == 1} == {
        seed_1.info.run_id
    }  # stages nest under it
    assert (
        parent.data.metrics["corrected.model.fid_k.mean"] == 6.0
        and parent.data.metrics["sweep.n_failed"] == 1
    )
    assert parent.data.tags["sweep.seed.3"] == "failed"
    artifacts = Path(parent.info.artifact_uri.removeprefix("file://"))
    assert (artifacts / "sweep.md").exists() and (artifacts / "sweep.json").exists()


def test_restarted_sweep_skips_finished_seeds(tiny, swept):
    root, markers = tiny
    (markers / "fail_seed_3").unlink()
    before = len(executions(markers))
    report = sweep(str(root), seeds=[1, 2, 3], jobs=2, seed_retry_delay_s=0.0, seed_params=SEED_KEYS)
    ran = executions(markers)[before:]
    assert sorted((stage, seed) for stage, seed, _ in ran) == [("evaluate", 3), ("train", 3)]
    assert report["skipped"] == [1, 2] and report["n_ok"] == 3 and report["n_failed"] == 0
    fid = report["summary"]["metrics"]["corrected.model.fid_k"]  # 4, 8, 12
    assert (fid["mean"], fid["std"], fid["n"]) == (8.0, 4.0, 3)


def test_run_windowed_never_exceeds_jobs(monkeypatch):
    running, peak = [0], [0]

    class Done:
        def __init__(self, item):
            self.item, self.state = item, None

        def wait(self):
            self.state = f"state-{self.item}"

    def submit(item):
        running[0] += 1
        peak[0] = max(peak[0], running[0])
        return Done(item)

    def first_completed(futures):
        running[0] -= 1
        return iter(futures)

    monkeypatch.setattr(sweep_flow, "as_completed", first_completed)
    states = run_windowed(submit, [5, 6, 7, 8, 9], jobs=2)
    assert states == {s: f"state-{s}" for s in (5, 6, 7, 8, 9)} and peak[0] == 2
    with pytest.raises(ValueError, match="jobs"):
        run_windowed(submit, [1], jobs=0)


def test_command_line():
    args = flows.parser().parse_args(["sweep", "--seeds", "5", "--jobs", "3"])
    assert (args.command, args.seeds, args.jobs, args.task_runner, args.seed_list) == (
        "sweep",
        5,
        3,
        "threads",
        None,
    )
    args = flows.parser().parse_args(["sweep", "--seed-list", "3", "7"])
    assert args.seed_list == [3, 7]
    assert flows.parser().parse_args(["reproduce"]).stages is None
    with pytest.raises(ValueError, match="prefect-dask"):
        flows.make_task_runner("dask", 2)
    assert flows.make_task_runner("threads", 3)._max_workers == 3


def test_experiment_runs_from_any_directory_and_replaces_its_name(tiny, swept, tmp_path):
    root, _ = tiny
    code = Path(__file__).resolve().parents[1]
    result = tmp_path / "result.json"
    extra = {"again": "reports/metrics.json", "absent": "reports/no-such.json"}  # read back when present
    command = dvc_experiment.command(root, "seed-1", ["train.seed=5"], "reports/metrics.json", result, extra)
    env = {**commands.subprocess_env(), "PYTHONPATH": str(code)}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)  # not the project
    assert done.returncode == 0, done.stderr[-2000:]
    rev, metrics = json.loads(result.read_text()).values()
    assert metrics["corrected"]["model"]["fid_k"] == 20.0  # seed 5: 2 * (5 * 2)
    assert metrics["again"]["corrected"]["model"]["fid_k"] == 20.0 and "absent" not in metrics
    refs = subprocess.run(
        ["git", "-C", str(root), "for-each-ref", "--format=%(objectname) %(refname)", "refs/exps"],
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    seed_1 = [line.split()[0] for line in refs if line.endswith("/seed-1")]
    assert seed_1 == [rev]  # the old seed-1 experiment was replaced, not duplicated
    assert "seed: 0" in (root / "params.yaml").read_text() and not (tmp_path / "params.yaml").exists()


def test_the_experiment_clone_holds_the_workspace_as_it_is(tmp_path):
    """What ``dvc exp run --temp`` would stash: HEAD, the uncommitted edits (a deletion too) and the
    untracked files; not the ignored ones. Its DVC cache is the project's."""
    (tmp_path / "project").mkdir()
    root = make_project(
        tmp_path / "project", {"kept.txt": "committed\n", "gone.txt": "x\n", "p.yaml": "a: 1\n"}
    )
    (root / "p.yaml").write_text("a: 2\n")
    (root / "gone.txt").unlink()
    (root / "new").mkdir()
    (root / "new" / "file.bin").write_bytes(bytes(range(256)))
    (root / "reports").mkdir()
    (root / "reports" / "ignored.json").write_text("{}")
    clone = tmp_path / "scratch" / "clone"
    clone.parent.mkdir()
    dvc_experiment.clone_workspace(root, clone)
    dvc_experiment.share_dvc_cache(root, clone)
    assert (clone / "p.yaml").read_text() == "a: 2\n" and (clone / "kept.txt").read_text() == "committed\n"
    assert not (clone / "gone.txt").exists() and (clone / "new" / "file.bin").read_bytes() == bytes(
        range(256)
    )
    assert not (clone / "reports").exists()
    cache = subprocess.run(
        [sys.executable, "-m", "dvc", "cache", "dir"], cwd=clone, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert Path(cache) == root / ".dvc" / "cache"
    assert subprocess.run(
        ["git", "-C", str(clone), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout == (
        subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    )
