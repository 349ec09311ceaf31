"""Seed-sweep bookkeeping and statistics (pure; no DVC, no Prefect)."""

from __future__ import annotations

import json
import math

import pytest

from danceba.nested import number_leaves
from danceba.sweep import (
    SeedRecord,
    SeedRun,
    describe,
    experiment_name,
    finished_seeds,
    format_cell,
    format_sweep_markdown,
    format_sweep_table,
    read_seed_records,
    seed_overrides,
    seed_record_path,
    seeds_to_run,
    summarize,
    sweep_fingerprint,
    sweep_report,
    sweep_seeds,
    without_keys,
    write_seed_record,
)


def metrics(fid_k: float, bas: float) -> dict:
    """The reports/metrics.json layout: protocol -> row -> metric."""
    return {
        "bailando": {"model": {"fid_k": fid_k + 1.0, "bas": bas}},
        "corrected": {"model": {"fid_k": fid_k, "bas": bas}, "ground_truth": {"fid_k": 0.0, "bas": 0.3}},
    }


RESULTS = {2: metrics(14.0, 0.25), 0: metrics(10.0, 0.2), 1: metrics(12.0, 0.3)}


def test_summary_matches_hand_computed_mean_and_sample_std():
    summary = summarize(RESULTS)
    assert summary["seeds"] == [0, 1, 2] and summary["ddof"] == 1
    fid = summary["metrics"]["corrected.model.fid_k"]
    # mean (10 + 12 + 14) / 3 = 12; sample std sqrt((4 + 0 + 4) / 2) = 2
    assert fid["mean"] == pytest.approx(12.0) and fid["std"] == pytest.approx(2.0)
    assert (fid["min"], fid["max"], fid["n"], fid["nonfinite"]) == (10.0, 14.0, 3, 0)
    bas = summary["metrics"]["bailando.model.bas"]
    # mean 0.25; deviations -0.05, 0.05, 0 -> sqrt(0.005 / 2) = 0.05
    assert bas["mean"] == pytest.approx(0.25) and bas["std"] == pytest.approx(0.05)
    assert summary["metrics"]["bailando.model.fid_k"]["mean"] == pytest.approx(13.0)
    gt = summary["metrics"]["corrected.ground_truth.fid_k"]
    assert gt["std"] == 0.0 and gt["n"] == 3


def test_describe_single_value_nonfinite_and_empty():
    assert describe([3.0])["std"] is None and describe([3.0])["mean"] == 3.0
    stats = describe([1.0, math.nan, 3.0, math.inf])
    assert (stats["n"], stats["nonfinite"], stats["mean"]) == (2, 2, 2.0)
    assert stats["std"] == pytest.approx(math.sqrt(2.0))
    assert describe([])["n"] == 0 and describe([])["mean"] is None


def test_flatten_keeps_numbers_only():
    flat = number_leaves({"a": {"b": 1, "c": "text", "d": True, "e": [1, 2]}, "f": 2.5})
    assert flat == {"a.b": 1.0, "f": 2.5}


def test_table_has_a_row_per_result_row_and_mean_std_min_max_cells():
    table = format_sweep_table(summarize(RESULTS))
    lines = table.splitlines()
    assert "over 3 seeds (0, 1, 2)" in lines[0] and "ddof=1" in lines[0]
    assert "### bailando" in lines and "### corrected" in lines
    corrected = lines.index("### corrected")
    assert lines[corrected + 2] == "| row | fid_k | bas |"
    assert lines[corrected + 3] == "|---|---|---|"
    assert (
        lines[corrected + 4] == "| model | 12.00 ± 2.00 [10.00, 14.00] | 0.2500 ± 0.0500 [0.2000, 0.3000] |"
    )
    assert lines[corrected + 5].startswith("| ground_truth | 0.000 ± 0.000 [0.000, 0.000] |")


def test_cell_formats_follow_the_mean_digits():
    assert format_cell(describe([28.1234, 28.2])) == "28.16 ± 0.05 [28.12, 28.20]"
    assert format_cell(describe([0.23321])) == "0.2332 [0.2332, 0.2332]"
    assert format_cell(describe([1234.0, 1236.0])) == "1235 ± 1 [1234, 1236]"
    assert format_cell(describe([math.nan])) == "—"


def test_empty_summary_says_so():
    assert "No finished seeds" in format_sweep_table(summarize({}))


def test_seed_names_and_overrides():
    assert experiment_name(3) == "seed-3" and experiment_name(3, "no_pre") == "no_pre-seed-3"
    run = SeedRun(3, "fp", "reports/ablation/no_pre", "no_pre", ("train_gpt.model.pre=false",))
    assert run.name == "no_pre-seed-3" and SeedRun(3, "fp", "reports/sweep").name == "seed-3"
    assert run.all_overrides(["train_gpt.train.seed"]) == [
        "train_gpt.model.pre=false",
        "train_gpt.train.seed=3",
    ]
    assert seed_overrides(3, ["train_gpt.train.seed", "generate.seed"]) == [
        "train_gpt.train.seed=3",
        "generate.seed=3",
    ]
    with pytest.raises(ValueError, match="seed_params"):
        seed_overrides(3, [])
    assert sweep_seeds(5) == [0, 1, 2, 3, 4] and sweep_seeds(2, first=7) == [7, 8]
    with pytest.raises(ValueError, match="at least 1"):
        sweep_seeds(0)


def test_records_round_trip_and_decide_what_is_done(tmp_path):
    write_seed_record(tmp_path, SeedRecord(0, "ok", 1, "fp", RESULTS[0], "seed-0", "abc"))
    write_seed_record(tmp_path, SeedRecord(1, "failed", 2, "fp", error="boom"))
    write_seed_record(tmp_path, SeedRecord(2, "ok", 1, "other-fp", RESULTS[2], variant="no_pre"))
    (tmp_path / "notes.txt").write_text("ignored")
    records = read_seed_records(tmp_path)
    assert sorted(records) == [0, 1, 2] and records[0].metrics == RESULTS[0] and records[1].error == "boom"
    assert records[2].variant == "no_pre" and records[0].variant == ""
    assert finished_seeds(records, "fp") == {0}
    assert seeds_to_run([0, 1, 2, 3, 3], records, "fp") == [1, 2, 3]
    assert read_seed_records(tmp_path / "absent") == {}


def test_bad_record_names_the_file(tmp_path):
    seed_record_path(tmp_path, 4).write_text(
        json.dumps({"seed": 4, "status": "done", "attempts": 1, "fingerprint": ""})
    )
    with pytest.raises(ValueError, match=r"seed-4\.json.*status 'done'"):
        read_seed_records(tmp_path)
    seed_record_path(tmp_path, 4).write_text(
        json.dumps({"seed": 5, "status": "ok", "attempts": 1, "fingerprint": ""})
    )
    with pytest.raises(ValueError, match="holds seed 5"):
        read_seed_records(tmp_path)


def test_fingerprint_ignores_the_seed_but_not_other_inputs():
    params = {"train_gpt": {"train": {"seed": 1, "lr": 0.1}}, "data": {"source": "mini"}}
    base = sweep_fingerprint("rev", "", params, ["train_gpt.train.seed"], {"fetch": {"md5": "a"}})
    reseeded = {"train_gpt": {"train": {"seed": 9, "lr": 0.1}}, "data": {"source": "mini"}}
    assert sweep_fingerprint("rev", "", reseeded, ["train_gpt.train.seed"], {"fetch": {"md5": "a"}}) == base
    changed = [
        sweep_fingerprint("rev2", "", params, ["train_gpt.train.seed"], {"fetch": {"md5": "a"}}),
        sweep_fingerprint("rev", "diff", params, ["train_gpt.train.seed"], {"fetch": {"md5": "a"}}),
        sweep_fingerprint("rev", "", {**params, "data": {"source": "aistpp"}}, ["train_gpt.train.seed"], {}),
        sweep_fingerprint("rev", "", params, ["train_gpt.train.seed"], {"fetch": {"md5": "b"}}),
    ]
    assert base not in changed and len(set(changed)) == 4
    assert without_keys(params, ["train_gpt.train.seed", "no.such.key"]) == {
        "train_gpt": {"train": {"lr": 0.1}},
        "data": {"source": "mini"},
    }
    assert params["train_gpt"]["train"]["seed"] == 1  # the input is not modified


def test_report_keeps_ok_seeds_and_reports_failed_stale_missing():
    records = {
        0: SeedRecord(0, "ok", 1, "fp", RESULTS[0], "seed-0", "r0"),
        1: SeedRecord(1, "ok", 2, "fp", RESULTS[1], "seed-1", "r1"),
        2: SeedRecord(2, "failed", 2, "fp", error="exit 1"),
        3: SeedRecord(3, "ok", 1, "old", RESULTS[2]),
    }
    report = sweep_report([0, 1, 2, 3, 4], records, "fp", ["train_gpt.train.seed"])
    statuses = {seed: entry["status"] for seed, entry in report["seeds"].items()}
    assert statuses == {"0": "ok", "1": "ok", "2": "failed", "3": "stale", "4": "missing"}
    assert report["seeds"]["2"]["attempts"] == 2 and report["seeds"]["2"]["error"] == "exit 1"
    assert (report["n_ok"], report["n_failed"]) == (2, 3)
    assert report["summary"]["seeds"] == [0, 1]
    assert report["summary"]["metrics"]["corrected.model.fid_k"]["mean"] == pytest.approx(11.0)
    json.dumps(report, allow_nan=False)  # the report is strict JSON
    markdown = format_sweep_markdown(report)
    assert markdown.startswith("# Seed sweep: 2 ok, 3 not ok")
    assert "| 2 | failed | 2 |  | exit 1 |" in markdown and "over 2 seeds (0, 1)" in markdown
