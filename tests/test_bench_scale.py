"""bench/bench_scale.py at a tiny fraction of AIST++'s size: every stage runs as its own process and is
measured, so the full-scale run (`make bench-scale`) cannot rot."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from bench import bench_scale
from danceba.config import load_params
from danceba.data.mini import plan_mini_dataset
from tests.project_files import ROOT


@pytest.mark.slow
def test_tiny_fraction_reports_every_stage_with_time_and_memory(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    project = tmp_path / "project"
    args = ["--fraction", "0.01", "--tokenize", "--tokenize-limit", "2", "--workdir", str(project)]
    args += ["--train-vqvae-steps", "1", "--eval-windows", "2"]
    bench_scale.main([*args, "--out", str(out)])
    results = json.loads(out.read_text(encoding="utf-8"))
    assert list(results["stages"]) == list(bench_scale.STAGES)
    measured = [("tokenize", results["tokenize"]), ("train_vqvae", results["train_vqvae"])]
    for stage, row in [*results["stages"].items(), *measured]:
        assert row["seconds"] > 0 and row["cpu_seconds"] > 0 and row["peak_rss_mib"] > 0, stage
    assert results["total_seconds"] == pytest.approx(sum(r["seconds"] for r in results["stages"].values()))
    assert results["max_peak_rss_mib"] == max(r["peak_rss_mib"] for r in results["stages"].values())

    mini = results["data_mini"]  # 2 genres: 12 pieces, 4 val + 4 test, 10 train, 4 in no split
    assert (len(mini["genres"]), mini["sequences"], mini["train_sequences"]) == (2, 22, 10)
    dataset = results["dataset"]
    assert dataset["music_pieces"] == 12 and dataset["genres"] == 2
    assert dataset["sequences_per_split"] == {"none": 4, "test": 4, "train": 10, "val": 4}
    assert results["stand_in"]["pieces"] == 8
    metrics = json.loads((project / "reports" / "metrics.json").read_text(encoding="utf-8"))
    assert {"ground_truth", "model", "random_codes"} <= set(metrics["bailando"])

    tokenize = results["tokenize"]
    assert tokenize["sepvqvae_parameters"] == 51_683_400  # the paper's SepVQVAE
    assert tokenize["sequences"] == 2 and 0 < tokenize["windows"] <= tokenize["all_windows"]
    assert tokenize["extrapolated_seconds_all"] >= tokenize["seconds"]
    # the project's own index is back after the limited run
    assert (project / "data" / "sequences.parquet").is_file()

    vqvae = results["train_vqvae"]  # the paper's VQ-VAE, one step per phase, on the cut-on-demand windows
    stage1 = json.loads((project / "reports" / "train_vqvae" / "stage1.json").read_text(encoding="utf-8"))
    assert stage1["steps"] == 1 and (project / "data" / "models" / "vqvae.pt").is_file()
    windows, arrays = vqvae["training_windows"], vqvae["all_windows_as_arrays_mib"]
    assert 0 < windows["stage1"] < windows["stage2"]  # stride 40, then 8
    assert arrays["stage2"] == pytest.approx(2 * windows["stage2"] * 240 * 72 * 4 / 2**20, abs=0.1)


def test_fraction_scales_the_counts_of_the_scale_config() -> None:
    mini = yaml.safe_load((ROOT / "configs" / "scale.yaml").read_text(encoding="utf-8"))["data"]["mini"]
    assert bench_scale.scaled_mini(mini, 1.0) == mini
    half = bench_scale.scaled_mini(mini, 0.5)
    assert (len(half["genres"]), half["train_sequences"], half["sequences"]) == (5, 490, 490 + 194 + 20)
    assert (half["ignored_train"], half["ignored_other"]) == (14, 8)
    config = load_params(ROOT / "configs" / "scale.yaml").data.mini
    _, sequences = plan_mini_dataset(dataclasses.replace(config, **{**half, "genres": tuple(half["genres"])}))
    assert len(sequences) == half["sequences"]
