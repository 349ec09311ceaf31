"""danceba.lineage: walking dvc.in/dvc.out tags from a metrics run back to the raw data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from danceba import lineage, tracking


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """raw (untracked fetch) -> features -> train -> evaluate, then features.parquet edited in place."""
    root = tmp_path_factory.mktemp("chain")
    (root / "data" / "raw").mkdir(parents=True)
    (root / "data" / "raw" / "m.wav").write_bytes(b"music")
    runs: dict[str, str] = {}

    def stage(name: str, inputs: list[str], outputs: dict[str, bytes], params: dict) -> None:
        with tracking.stage_run(
            name, params, inputs=inputs, outputs=list(outputs), seed=0, project_root=root, device="cpu"
        ) as run:
            for path, content in outputs.items():
                (root / path).parent.mkdir(parents=True, exist_ok=True)
                (root / path).write_bytes(content)
        runs[name] = str(run.run_id)

    with pytest.MonkeyPatch.context() as monkeypatch:
        for name in ("MLFLOW_TRACKING_URI", tracking.TRACKING_ENV, *tracking.PARENT_RUN_ENVS):
            monkeypatch.delenv(name, raising=False)
        stage("music_features", ["data/raw"], {"data/features.parquet": b"f1"}, {"kind": "bailando438"})
        stage("train_gpt", ["data/features.parquet"], {"checkpoints/gpt.pt": b"w"}, {"optim": {"lr": 3e-4}})
        stage(
            "evaluate",
            ["checkpoints/gpt.pt", "data/features.parquet"],
            {"reports/metrics.json": b"{}"},
            {"protocol": "bailando"},
        )
        (root / "data" / "features.parquet").write_bytes(b"f2")  # the workspace moved on
        yield root, runs


def test_lineage_walks_back_to_the_raw_data(chain) -> None:
    root, runs = chain
    links = lineage.lineage(runs["evaluate"], root)
    summary = [
        (link.depth, link.path, link.producer.stage if link.producer else None, link.stale, link.repeated)
        for link in links
    ]
    assert summary == [
        (0, "reports/metrics.json", "evaluate", False, False),
        (1, "checkpoints/gpt.pt", "train_gpt", False, False),
        (2, "data/features.parquet", "music_features", True, False),
        (3, "data/raw", None, False, False),  # fetch is not tracked: no producer
        (1, "data/features.parquet", "music_features", True, True),
    ]
    assert links[1].producer.run_id == runs["train_gpt"]
    assert links[1].producer.params == {"optim.lr": "0.0003"}
    assert links[2].current_hash == tracking.dvc_hash(root / "data" / "features.parquet") != links[2].hash
    assert links[3].hash == tracking.dvc_hash(root / "data" / "raw") and links[3].hash.endswith(".dir")


def test_format_lineage_draws_an_indented_tree_with_stale_marks(chain) -> None:
    root, runs = chain
    text = lineage.format_lineage(lineage.lineage(runs["evaluate"], root))
    lines = text.splitlines()
    assert len(lines) == 5
    assert (
        lines[0].startswith("reports/metrics.json [md5 ")
        and f"run {runs['evaluate'][:8]} (evaluate" in lines[0]
    )
    assert (
        lines[1].startswith("    ← checkpoints/gpt.pt")
        and "train_gpt" in lines[1]
        and "optim.lr=0.0003" in lines[1]
    )
    assert lines[2].startswith("        ← data/features.parquet") and "STALE (now " in lines[2]
    assert lines[3].startswith("            ← data/raw [md5 ") and "….dir]" in lines[3]
    assert lines[3].endswith("← no MLflow run")
    assert "(see above)" in lines[4] and "STALE" in lines[4]
    assert "STALE" not in lines[0] + lines[1] + lines[3]


def test_against_lock_reads_dvc_lock_instead_of_the_workspace(chain, tmp_path) -> None:
    root, runs = chain
    workspace = {link.path: link.stale for link in lineage.lineage(runs["train_gpt"], root)}
    lock = {"stages": {"music_features": {"outs": [{"path": "data/features.parquet", "md5": "abc"}]}}}
    (root / "dvc.lock").write_text(yaml.safe_dump(lock))
    try:
        by_lock = lineage.lineage(runs["train_gpt"], root, against="lock")
    finally:
        (root / "dvc.lock").unlink()
    assert workspace == {"checkpoints/gpt.pt": False, "data/features.parquet": True, "data/raw": False}
    features = next(link for link in by_lock if link.path == "data/features.parquet")
    assert features.current_hash == "abc" and features.stale


def test_unknown_run_is_a_clear_error(chain) -> None:
    root, _ = chain
    with pytest.raises(ValueError, match="not found"):
        lineage.lineage("0" * 32, root)
