"""The evaluation report end to end on small tables: every metric and interval of every row, the two FID
reference sets, the protocol card beside the numbers, the Markdown verdict, and the sweep reading it."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pyarrow as pa
import pytest

from danceba import tables
from danceba.control_rows import half_beat_late_dances, jitter_dances, still_dances
from danceba.evaluate_config import EvaluateConfig
from danceba.evaluation import (
    CI_HIGH,
    CI_LOW,
    PIECE_METRICS,
    PROTOCOL_CARD_KEY,
    Dance,
    evaluation_report,
    music_beat_onehots,
    read_gt_features,
    write_gt_features,
)
from danceba.features.columns import BEAT_COLUMN
from danceba.metrics_markdown import markdown_table, music_verdict
from danceba.motion.skeleton import forward_kinematics
from danceba.protocol_card import protocol_card
from danceba.sweep import PROTOCOL_CARD_KEY as SWEEP_CARD_KEY
from danceba.sweep import format_sweep_table, summarize

FRAMES = 300
TEST = [f"gBR_sBM_cAll_d0{i}_mBR{i % 2}_ch01" for i in range(5)]
TRAIN = [f"gBR_sBM_cAll_d0{i}_mBR2_ch02" for i in range(5)]
CONFIG = EvaluateConfig(bootstrap=200, fid_bootstrap=5, chance_shifts=8)


def dance(rng: np.random.Generator, frames: int = FRAMES) -> np.ndarray:
    """(T, 24, 3) joints of smooth random SMPL poses."""
    t = np.linspace(0, 4 * np.pi, frames)[:, None]
    poses = 0.3 * np.sin(t * rng.uniform(0.5, 2.0, 72) + rng.uniform(0, 6, 72))
    trans = np.concatenate([0.2 * np.sin(t), 0.9 + 0.05 * np.cos(3 * t), 0.1 * t], axis=1)
    return forward_kinematics(poses, trans).astype(np.float32)


@pytest.fixture(scope="module")
def tables_and_rows(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("evaluation")
    rng = np.random.default_rng(0)
    motions = {name: dance(rng) for name in TEST + TRAIN}
    paths = {k: root / f"{k}.parquet" for k in ("joints", "sequences", "gt", "music60")}
    groups = (tables.frame_table("sequence", n, "joints", m.reshape(-1, 72)) for n, m in motions.items())
    tables.write_grouped_table(paths["joints"], groups)
    tables.write_table(paths["sequences"], pa.table({"sequence": list(motions)}))
    write_gt_features(paths["joints"], paths["sequences"], paths["gt"], ("bailando", "corrected"))
    music = []
    for k, period in enumerate((30, 36, 40)):
        features = rng.normal(size=(FRAMES + 60, 438)).astype(np.float32)
        features[:, BEAT_COLUMN] = (np.arange(FRAMES + 60) % period == 5).astype(np.float32)
        music.append(tables.frame_table("music_id", f"mBR{k}", "features", features))
    tables.write_grouped_table(paths["music60"], music)
    ground_truth = [Dance(n, motions[n], n.split("_")[4]) for n in TEST]
    beats = music_beat_onehots(paths["music60"], ["mBR0", "mBR1"])
    rows = {
        "ground_truth": ground_truth,
        "model": [Dance(d.name, dance(rng), d.music_id) for d in ground_truth],
        "gt_half_beat_late": half_beat_late_dances(ground_truth, beats),
        "jitter": jitter_dances(ground_truth, 0.01, 0),
        "still": still_dances(ground_truth, 1e-4, 0),
    }
    report = evaluation_report(rows, paths["gt"], paths["music60"], CONFIG, test_sequences=TEST)
    return {"paths": paths, "rows": rows, "report": report}


def test_streamed_gt_features_equal_the_features_of_every_motion_at_once(tables_and_rows: dict) -> None:
    """write_gt_features reads the motions row group by row group; the features are those of the whole
    list in one call (the reference path), bit for bit, in the sequences' order."""
    import pyarrow.parquet as pq

    from danceba.features.motion import extract_motion_features, motion_protocol

    paths = tables_and_rows["paths"]
    names = pq.read_table(paths["sequences"]).column("sequence").to_pylist()
    motions = [tables.read_group(paths["joints"], n, "joints").reshape(-1, 24, 3) for n in names]
    written = pq.read_table(paths["gt"])
    for protocol in ("bailando", "corrected"):
        rows = written.filter(pa.compute.equal(written.column("protocol"), protocol))
        assert rows.column("sequence").to_pylist() == names
        kinetic, geometric = extract_motion_features(motions, motion_protocol(protocol), prediction=False)
        np.testing.assert_array_equal(tables.fixed_list_to_numpy(rows, "kinetic"), kinetic)
        np.testing.assert_array_equal(tables.fixed_list_to_numpy(rows, "geometric"), geometric)


def test_every_row_has_every_metric_with_an_interval(tables_and_rows: dict) -> None:
    report = tables_and_rows["report"]
    assert list(report) == ["bailando", "corrected"]
    for rows in report.values():
        assert list(rows) == list(tables_and_rows["rows"])
        for values in rows.values():
            for metric in (*PIECE_METRICS, "fid_k", "fid_g", "fid_k_testref", "fid_g_testref"):
                assert {metric, metric + CI_LOW, metric + CI_HIGH} <= set(values), metric
            assert {"div_k", "div_g", "bas"} <= set(values)
            for metric in ("bas", "bas_excess", "bas_chance", "phase_lock_r", "mean_joint_speed", "pfc"):
                assert values[metric + CI_LOW] <= values[metric] <= values[metric + CI_HIGH], metric
            assert values["bas_excess"] == pytest.approx(values["bas"] - values["bas_chance"])
            assert all(isinstance(v, float) for v in values.values())


def test_the_test_only_reference_is_the_evaluated_pieces(tables_and_rows: dict) -> None:
    gt = tables_and_rows["report"]["corrected"]["ground_truth"]
    assert gt["fid_k_testref"] == pytest.approx(0.0, abs=1e-3)  # the row is its own reference
    assert gt["fid_g_testref"] == pytest.approx(0.0, abs=1e-3)
    assert gt["fid_k"] > 1.0  # the published reference also holds the training motions
    kinetic, _ = read_gt_features(tables_and_rows["paths"]["gt"], "corrected", TEST)
    assert len(kinetic) == len(TEST)
    with pytest.raises(ValueError, match="needs at least 2"):
        read_gt_features(tables_and_rows["paths"]["gt"], "corrected", ["nope", TEST[0]])


def test_controls_read_as_they_should(tables_and_rows: dict) -> None:
    rows = tables_and_rows["report"]["bailando"]
    assert rows["still"]["mean_joint_speed"] < 0.05 < rows["ground_truth"]["mean_joint_speed"]
    assert rows["still"]["foot_skating"] < rows["jitter"]["foot_skating"]
    assert rows["jitter"]["phase_lock_r"] < 0.5


def test_protocol_card_records_every_choice_next_to_the_numbers(tables_and_rows: dict) -> None:
    rows = tables_and_rows["rows"]
    card = protocol_card(CONFIG, rows, {"": 10, "_testref": 5})
    assert set(card["config"]) == {f.name for f in dataclasses.fields(EvaluateConfig)}
    assert card["config"]["protocols"] == "bailando, corrected" and card["config"]["bootstrap"] == 200
    assert card["fps"] == 60 and {r: v["n_pieces"] for r, v in card["rows"].items()} == dict.fromkeys(rows, 5)
    assert all(card["rows"][r]["definition"] != "a folder of predictions" for r in rows)
    assert (
        card["reference_sets"]["fid_n_motions"] == 10 and card["reference_sets"]["fid_testref_n_motions"] == 5
    )
    bailando = card["protocols"]["bailando"]
    assert bailando["metrics.bas_sigma"] == 3.0 and bailando["metrics.bas_average_over"] == "music"
    assert (
        bailando["features.max_frames"] == 1200
        and card["protocols"]["corrected"]["metrics.constant_features"] == "unit"
    )
    assert "mean over 8 shifts" in card["metrics"]["bas_chance"]

    def leaves(node):
        for value in node.values():
            yield from leaves(value) if isinstance(value, dict) else [value]

    assert all(isinstance(v, int | float | str) and not isinstance(v, bool) for v in leaves(card))
    full = {**tables_and_rows["report"], PROTOCOL_CARD_KEY: card}
    assert json.loads(json.dumps(full)) == full and SWEEP_CARD_KEY == PROTOCOL_CARD_KEY
    summary = summarize({0: full, 1: full})
    assert "bailando.model.bas_excess" in summary["metrics"]
    assert not any(path.startswith(PROTOCOL_CARD_KEY + ".") for path in summary["metrics"])
    table = format_sweep_table(summary)
    assert "bas_excess" in table and "_ci_low" not in table


def test_markdown_has_the_verdict_and_both_tables(tables_and_rows: dict) -> None:
    report, rows = tables_and_rows["report"], tables_and_rows["rows"]
    text = markdown_table(report, protocol_card(CONFIG, rows))
    assert text.startswith("## Does the model follow the music?")
    assert "- `bailando`: model" in text and "no sham-music row" in text
    assert text.count("| ground_truth | 5 |") == 4  # rhythm and FID tables, two protocols
    assert "excess ↑ [CI]" in text and "FIDk test-ref ↓ [CI]" in text
    assert "- `gt_half_beat_late`: the ground truth delayed" in text


def interval(mean: float, low: float, high: float) -> dict[str, float]:
    return {"bas_excess": mean, "bas_excess" + CI_LOW: low, "bas_excess" + CI_HIGH: high}


def test_verdict_compares_the_model_with_the_sham() -> None:
    gt = interval(0.5, 0.45, 0.55)
    follows = music_verdict(
        {
            "ground_truth": gt,
            "model": interval(0.41, 0.35, 0.47),
            "model_sham_music": interval(0.02, -0.03, 0.06),
        }
    )
    assert follows.startswith("model follows the music: BAS excess 0.41 [0.35, 0.47] vs sham music 0.02")
    assert "intervals disjoint" in follows and "ground truth 0.50 [0.45, 0.55]" in follows
    overlap = music_verdict(
        {"model": interval(0.1, 0.02, 0.2), "model_sham_music": interval(0.08, 0.0, 0.15)}
    )
    assert overlap.startswith("model does NOT") and "intervals overlap" in overlap
    at_chance = music_verdict(
        {"model": interval(0.01, -0.03, 0.05), "model_sham_music": interval(0, -0.1, -0.05)}
    )
    assert at_chance.startswith("model does NOT") and "does not lie above 0" in at_chance
    assert music_verdict({"model": interval(0.2, 0.1, 0.3)}).startswith("model follows the music")
    assert music_verdict({"ground_truth": gt}).startswith("no verdict")
    assert math.isfinite(gt["bas_excess"])


def test_config_validation_names_the_key() -> None:
    with pytest.raises(ValueError, match=r"evaluate\.pfc_fps: must be a divisor of 60"):
        EvaluateConfig(pfc_fps=25)
    with pytest.raises(ValueError, match=r"evaluate\.ci_level"):
        EvaluateConfig(ci_level=1.5)
    with pytest.raises(
        ValueError, match=r"evaluate\.protocols\[0\]: expected one of \['bailando', 'corrected'\]"
    ):
        EvaluateConfig(protocols=("edge",))
    assert EvaluateConfig(chance_min_shift_s=0.5).min_shift_frames == 30


def test_card_of_a_plain_prediction_folder() -> None:
    card = protocol_card(EvaluateConfig(), {"predictions": []})
    assert card["rows"]["predictions"] == {"definition": "a folder of predictions", "n_pieces": 0}
    assert "fid_testref" in card["reference_sets"] and "fid_n_motions" not in card["reference_sets"]
