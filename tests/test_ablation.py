"""The ablation's variants, report maths and Markdown (pure; no DVC run, no Prefect flow)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from danceba.ablation import (
    PAPER_TABLE2,
    VARIANTS,
    Variant,
    parse_variant_list,
    select_variants,
    variant_fingerprint,
    variant_records_dir,
)
from danceba.ablation_markdown import format_ablation_markdown, format_duration, interval_cell
from danceba.ablation_report import ablation_report, describe_over_seeds, t_interval
from danceba.config import ConfigError, load_params
from danceba.nested import to_plain_config
from danceba.sweep import SeedRecord, write_seed_record
from pipelines.dvc_graph import covers
from tests.project_files import EMBEDDED_PARAMS, ROOT

# What each variant must load as, after `dvc exp run -S` rewrote params.yaml (the strict loader's types).
EXPECTED = {
    "danceba": {},
    "no_pre": {"train_gpt.model.pre": False},
    "no_tgca": {"train_gpt.model.tgca_gate": False},
    "no_pmmm": {"train_gpt.model.pmmm": "none"},
    "single_pmmm": {"train_gpt.model.pmmm": "single", "generate.decode": "exact"},
    "bailando": {"train_gpt.model.stack": "bailando"},
}


def dotted(params: object, key: str) -> object:
    for part in key.split("."):
        params = getattr(params, part)
    return params


def dvc_rewritten(tmp_path: Path, overrides: list[str], decode: str = "cached") -> Path:
    """The project's params.yaml (with ``generate.decode: <decode>``) after DVC applied ``-S overrides``."""
    from dvc.utils.hydra import apply_overrides  # what `dvc exp run -S` calls on params.yaml

    path = tmp_path / "params.yaml"
    data = yaml.safe_load(EMBEDDED_PARAMS.read_text())
    data["generate"]["decode"] = decode
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    apply_overrides(path, overrides)
    return path


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
def test_each_variant_survives_dvc_rewriting_params(tmp_path: Path, variant: Variant) -> None:
    path = dvc_rewritten(tmp_path, [*variant.override_args(), "train_gpt.train.seed=2"])
    params, original = load_params(path), load_params(EMBEDDED_PARAMS)
    assert params.train_gpt.train.seed == 2
    for key, value in EXPECTED[variant.name].items():
        assert dotted(params, key) == value and type(dotted(params, key)) is type(value), key
    if variant.name == "single_pmmm":
        assert params.generate.decode == "exact"  # even though this params.yaml said cached
    untouched = {k.rsplit(".", 1)[-1] for k in EXPECTED[variant.name]} | {"seed", "decode"}
    for section in ("train_vqvae", "tokenize", "evaluate"):
        assert to_plain_config(getattr(params, section)) == to_plain_config(getattr(original, section))
    model, base = to_plain_config(params.train_gpt.model), to_plain_config(original.train_gpt.model)
    assert {k: v for k, v in model.items() if k not in untouched} == {
        k: v for k, v in base.items() if k not in untouched
    }


def test_the_round_trip_check_catches_a_bare_off(tmp_path: Path) -> None:
    """Why the values matter: DVC writes `off` unquoted and the loader reads it back as a boolean."""
    with pytest.raises(ConfigError, match=r"train_gpt\.model\.pmmm: expected one of"):
        load_params(dvc_rewritten(tmp_path, ["train_gpt.model.pmmm=off"]))


def test_variants_are_the_papers_and_every_key_is_a_stage_param() -> None:
    assert [v.name for v in VARIANTS] == list(EXPECTED)
    listed = {
        key
        for stage in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].values()
        for key in stage["params"]
    }
    assert all(any(covers(e, key) for e in listed) for v in VARIANTS for key in v.keys())  # so it re-runs
    assert {row.variant for row in PAPER_TABLE2} <= set(EXPECTED)
    assert VARIANTS[4].override_args() == ["train_gpt.model.pmmm=single", "generate.decode=exact"]


def test_selecting_variants_and_their_names() -> None:
    assert select_variants(None) == list(VARIANTS) and select_variants([]) == list(VARIANTS)
    chosen = select_variants(parse_variant_list(" no_pre,danceba,,no_pre "))
    assert [v.name for v in chosen] == ["no_pre", "danceba"]
    with pytest.raises(ValueError, match=r"\['no_mamba'\]: unknown \(known: danceba, no_pre"):
        select_variants(["no_mamba"])
    assert variant_records_dir("reports", VARIANTS[1]) == Path("reports/ablation/no_pre")


def test_fingerprint_changes_with_the_base_and_the_overrides() -> None:
    a, b = Variant("a", (("k", "1"),)), Variant("a", (("k", "2"),))
    assert variant_fingerprint("fp", a) == variant_fingerprint("fp", Variant("a", (("k", "1"),)))
    assert (
        len({variant_fingerprint("fp", a), variant_fingerprint("fp", b), variant_fingerprint("fp2", a)}) == 3
    )


def test_t_interval_by_hand() -> None:
    # 10, 12, 14: mean 12, std 2; t(0.975, 2) = 4.302653 -> half width 4.302653 * 2 / sqrt(3) = 4.968275
    stats = describe_over_seeds([10.0, 12.0, 14.0])
    assert (stats["mean"], stats["std"], stats["min"], stats["max"]) == (12.0, 2.0, 10.0, 14.0)
    assert stats["ci_low"] == pytest.approx(12.0 - 4.968275, abs=1e-6)
    assert stats["ci_high"] == pytest.approx(12.0 + 4.968275, abs=1e-6)
    assert t_interval(5.0, None, 1) is None and describe_over_seeds([5.0])["ci_low"] is None
    assert describe_over_seeds([math.nan])["ci_high"] is None
    assert describe_over_seeds([1.0, math.nan, 3.0])["ci_low"] == pytest.approx(2.0 - 12.706205, abs=1e-5)


def metrics(fid_k: float, excess: float, sham: float) -> dict:
    """reports/metrics.json: protocol -> row -> metric, with a protocol card and per-piece intervals."""
    model = {"fid_k": fid_k, "div_k": 7.0, "bas": 0.25, "bas_excess": excess, "bas_excess_ci_low": -9.0}
    return {
        "protocol": {"bailando": {"metrics.bas_sigma": 3.0}},
        "bailando": {
            "model": model,
            "model_sham_music": {"bas_excess": sham},
            "ground_truth": {"fid_k": 1.0, "div_k": 8.0, "bas": 0.3},
        },
        "train_gpt": {"stack": "danceba", "final_val_ce": 1.5, "final_val_ce_sham_gap": fid_k / 20},
    }


SEEDS = [0, 1, 2]
DANCEBA, NO_PRE = VARIANTS[0], VARIANTS[1]
RECORDS = {
    "danceba": {
        s: SeedRecord(
            s, "ok", 1, "fp-a", metrics(10.0 + 2 * s, 0.02 * s, 0.0), f"danceba-seed-{s}", seconds=60.0
        )
        for s in SEEDS
    },
    "no_pre": {
        0: SeedRecord(0, "ok", 1, "fp-b", metrics(20.0, 0.01, 0.01), "no_pre-seed-0", seconds=30.0),
        1: SeedRecord(
            1, "failed", 2, "fp-b", experiment="no_pre-seed-1", error="train: NaN loss", seconds=5.0
        ),
        2: SeedRecord(2, "ok", 1, "fp-old", metrics(99.0, 0.5, 0.5), "no_pre-seed-2"),
    },
}


@pytest.fixture
def report() -> dict:
    fingerprints = {"danceba": "fp-a", "no_pre": "fp-b"}
    return ablation_report(
        [DANCEBA, NO_PRE],
        SEEDS,
        RECORDS,
        fingerprints,
        ["train_gpt.train.seed"],
        wall_time_s=3725.0,
        data_source="mini",
    )


def test_report_statistics_per_variant(report: dict) -> None:
    assert (report["n_runs"], report["n_ok"], report["n_failed"]) == (6, 4, 2)
    assert report["run_seconds"] == 215.0 and report["interval"]["method"] == "student-t over seeds"
    danceba = report["variants"]["danceba"]
    fid = danceba["summary"]["metrics"]["bailando.model.fid_k"]  # 10, 12, 14
    assert (fid["mean"], fid["std"], fid["n"]) == (12.0, 2.0, 3)
    assert fid["ci_low"] == pytest.approx(7.031725, abs=1e-6)
    assert not any(path.startswith("protocol.") for path in danceba["summary"]["metrics"])
    no_pre = report["variants"]["no_pre"]
    statuses = {seed: (e["status"], e.get("attempts")) for seed, e in no_pre["seeds"].items()}
    assert statuses == {"0": ("ok", 1), "1": ("failed", 2), "2": ("stale", 1)}
    assert no_pre["seeds"]["1"]["error"] == "train: NaN loss"
    assert no_pre["overrides"] == ["train_gpt.model.pre=false"] and no_pre["n_ok"] == 1
    only = no_pre["summary"]["metrics"]["bailando.model.fid_k"]  # seed 0 only: the stale 99 is left out
    assert (only["mean"], only["std"], only["ci_low"]) == (20.0, None, None)
    json.dumps(report, allow_nan=False)


def test_markdown_tables(report: dict) -> None:
    text = format_ablation_markdown(report)
    lines = text.splitlines()
    assert lines[0] == "# Ablation: 4 of 6 runs ok (2 variants × 3 seeds: 0, 1, 2)"
    assert "Wall time: 1 h 02 min 05 s" in text and "recorded time of all runs: 3 min 35 s" in text
    assert "Student-t interval over seeds" in text
    header = lines.index("## `bailando` protocol: the `model` row") + 2
    assert lines[header].startswith(
        "| variant | n | FIDk ↓ | FIDg ↓ | Divk ↑ | Divg ↑ | BAS ↑ | BAS excess ↑ |"
    )
    assert "sham-music BAS excess" in lines[header]
    # danceba: FIDk 12 ± 2 [7.03, 16.97]; FIDg absent; excess 0, .02, .04 -> 0.02 ± 0.02; sham 0 ± 0
    assert lines[header + 2].startswith(
        "| danceba | 3 | 12.00 ± 2.00 [7.03, 16.97] | — | 7.000 ± 0.000 [7.000, 7.000] |"
    )
    assert lines[header + 2].endswith("| 0.000 ± 0.000 [0.000, 0.000] |")
    assert lines[header + 3].startswith("| no_pre | 1 | 20.00 | — |")
    assert "| danceba | 3 | 10.00 – 14.00 |" in text  # min – max table
    assert (
        "| Ground Truth | 13.85 | 7.82 | 0.2374 | danceba / ground_truth | 1.000 ± 0.000 [1.000, 1.000] |"
        in text
    )
    assert "| w/o TGCA | 33.22 | 6.74 | — | no_tgca / model | — | — | — |" in text
    assert "| Danceba-Single | 82.50 | — | — | single_pmmm / model |" in text
    assert "embedded mini dataset" in text and "Not comparable" in text
    assert "| no_pre | 1 | failed | 2 | 5.0 s | no_pre-seed-1 | train: NaN loss |" in text
    assert "| no_pre | 2 | stale |" in text and "| no_pre | `train_gpt.model.pre=false` |" in text
    assert "_ci_low" not in text and "bas_sigma" not in text
    listen = lines.index("## Does it listen, does it move (`bailando` protocol)") + 4
    assert lines[listen].startswith("| variant | n | val CE (nats) | CE gap, sham − real ↑ | FIDk ↓ |")
    # danceba: CE gap 10/20, 12/20, 14/20 -> 0.6 ± 0.1; no reconstruction row in these metrics
    assert lines[listen + 2].startswith("| danceba | 3 | 1.500 ± 0.000 [1.500, 1.500] | 0.6000 ± 0.1000 [")
    assert "| 12.00 ± 2.00 [7.03, 16.97] | — |" in lines[listen + 2]


def test_markdown_without_results_and_cells() -> None:
    empty = ablation_report([DANCEBA], [0], {}, {"danceba": "fp"}, ["s"], wall_time_s=4.2)
    text = format_ablation_markdown(empty)
    assert "0 of 1 runs ok" in text and "No finished runs" in text and "| danceba | 0 | missing |" in text
    assert interval_cell(describe_over_seeds([0.23321])) == "0.2332"
    assert format_duration(4.2) == "4.2 s" and format_duration(65) == "1 min 05 s"


def test_records_of_a_variant_go_to_its_folder(tmp_path: Path) -> None:
    folder = variant_records_dir(tmp_path, NO_PRE)
    path = write_seed_record(folder, RECORDS["no_pre"][1])
    assert path == tmp_path / "ablation" / "no_pre" / "seed-1.json"
