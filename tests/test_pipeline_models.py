"""Every model stage on the tiny mini dataset: train_vqvae -> tokenize -> train_gpt -> generate ->
gt_features -> evaluate, through the stage entry points with a tiny params file."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from danceba import tables
from danceba.config import load_params
from danceba.evaluation import read_dance_folder
from danceba.features.rhythm import token_condition
from danceba.trainers.gpt import load_gpt
from danceba.trainers.vqvae import load_vqvae
from pipelines import evaluate, generate, genre_control, gt_features, tokenize, train_gpt, train_vqvae
from tests.project_files import EMBEDDED_PARAMS, stage_argv

L_BINS = 16


def tiny_params(tmp: Path) -> Path:
    params = yaml.safe_load(EMBEDDED_PARAMS.read_text())
    vq = params["train_vqvae"]
    vq["model"].update(width=16, depth=1, emb_width=16, l_bins=L_BINS)
    for stage, steps in (("stage1", 6), ("stage2", 4)):
        vq[stage]["train"] = {
            **vq[stage]["train"],
            "max_steps": steps,
            "batch_size": 8,
            "log_every": 2,
            "eval_every": 2,
            "checkpoint_every": 2,
            "device": "cpu",
        }
        vq[stage]["optim"]["milestones"] = []
    vq["stage1"]["stride"] = 8
    gpt = params["train_gpt"]
    gpt["model"].update(
        n_embd=16,
        n_head=2,
        n_layer_base=1,
        n_layer_head=1,
        mamba_d_state=4,
    )  # vocab_up / vocab_down follow l_bins
    gpt["train"].update(
        max_steps=6, batch_size=8, log_every=2, eval_every=3, checkpoint_every=3, device="cpu"
    )
    gpt["optim"]["milestones"] = []
    params["tokenize"]["stride"] = 8
    params["evaluate"].update(bootstrap=100, fid_bootstrap=5)
    path = tmp / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def write_condition_table(chain: dict[str, Path], params: Path, out: Path) -> None:
    """The GPT's 7.5 fps condition as the music_features stage writes it under the project's
    ``music_features.token_rhythm`` (the session chain is built with the published 438-d features)."""
    token_rhythm = load_params(params).music_features.token_rhythm
    at_60 = tables.read_all_groups(chain["music60"], "features")
    at_7p5 = tables.read_all_groups(chain["music7"], "features")
    groups = (
        tables.frame_table(
            "music_id", key, "features", token_condition(at_7p5[key], at_60[key], token_rhythm)
        )
        for key in sorted(at_7p5)
    )
    tables.write_grouped_table(out, groups, {"token_rhythm": token_rhythm})


@pytest.fixture(scope="module")
def models(chain: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("models")
    p = {
        "params": tiny_params(tmp),
        "vqvae": tmp / "models" / "vqvae.pt",
        "gpt": tmp / "models" / "gpt.pt",
        "tokens": tmp / "tokens.parquet",
        "generated": tmp / "generated",
        "gt": tmp / "gt.parquet",
        "reports": tmp / "reports",
        "music": tmp / "music_condition.parquet",
        "token_music": tmp / "token_music.parquet",
    }
    write_condition_table(chain, p["params"], p["music"])
    # dvc.yaml's path of every stage argument -> where this test keeps it
    where = {
        "params.yaml": p["params"],
        "data/raw": chain["raw"],
        "data/joints.parquet": chain["joints"],
        "data/sequences.parquet": chain["sequences"],
        "data/music_features_60fps.parquet": chain["music60"],
        "data/music_features_7p5fps.parquet": p["music"],
        "checkpoints/vqvae": tmp / "runs_vq",
        "data/models/vqvae.pt": p["vqvae"],
        "reports/train_vqvae": p["reports"] / "vq",
        "data/tokens.parquet": p["tokens"],
        "data/token_music.parquet": p["token_music"],
        "reports/tokens.json": tmp / "tokens.json",
        "checkpoints/gpt": tmp / "runs_gpt",
        "data/models/gpt.pt": p["gpt"],
        "reports/train_gpt": p["reports"] / "gpt",
        "data/generated": p["generated"],
        "data/gt_features.parquet": p["gt"],
        "reports": p["reports"],
    }
    for stage in (train_vqvae, tokenize, train_gpt, generate, gt_features, evaluate):
        name = stage.__name__.removeprefix("pipelines.")
        assert stage.main(stage_argv(name, where)) == 0, name
    return p


def test_vqvae_stage_exports_a_loadable_model_and_mpjpe(models: dict[str, Path]) -> None:
    model = load_vqvae(models["vqvae"])
    assert model.config.l_bins == L_BINS and not model.training
    metrics = json.loads((models["reports"] / "vq" / "metrics.json").read_text())
    assert metrics["stage1_best_mpjpe_mm"] > 0 and math.isfinite(metrics["stage2_best_mpjpe_mm"])
    assert (models["reports"] / "vq" / "plots" / "stage1" / "val.csv").read_text().startswith("step,")


def test_tokens_table(models: dict[str, Path], chain: dict[str, Path]) -> None:
    table = pq.read_table(models["tokens"])
    assert table.schema.field("up").type == pa.list_(pa.int16(), 30)
    assert set(table.column("split").to_pylist()) == {"train", "val", "test"}
    starts = table.column("start_frame").to_numpy()
    np.testing.assert_array_equal(table.column("music_start").to_numpy(), starts // 8)
    up = tables.fixed_list_to_numpy(table, "up", np.int64)
    assert up.min() >= 0 and up.max() < L_BINS
    assert tables.group_keys(models["tokens"]) == sorted(set(table.column("sequence").to_pylist()))


def test_tempo_copies_of_the_training_split_train_the_gpt(models: dict[str, Path]) -> None:
    factors = load_params(models["params"]).tokenize.tempo_factors
    assert factors, "params.yaml's embedded default stretches the training split"
    table = pq.read_table(models["tokens"]).to_pandas()
    copies = table[table["sequence"].str.contains("x")]
    originals = table[~table["sequence"].str.contains("x")]
    assert set(copies["split"]) == {"train"}
    for factor in factors:
        suffix = f"x{factor:.2f}"
        stretched = copies[copies["sequence"].str.endswith(suffix)]
        assert set(stretched["sequence"].str.removesuffix(suffix)) == set(
            originals.loc[originals["split"] == "train", "sequence"]
        )
        assert (stretched["music_id"] == stretched["sequence"].map(lambda n: n.split("_")[4]) + suffix).all()
    music = tables.read_all_groups(models["token_music"], "features")
    for music_id in set(copies["music_id"]):
        base, factor = music_id.split("x")
        assert len(music[music_id]) == round(len(music[base]) / float(factor))
    assert tables.file_metadata(models["token_music"])["tempo_factors"] == ",".join(
        f"{f:.2f}" for f in factors
    )


def test_gpt_stage_reports_the_uniform_baseline(models: dict[str, Path]) -> None:
    metrics = json.loads((models["reports"] / "gpt" / "metrics.json").read_text())
    assert metrics["uniform_ce"] == pytest.approx(math.log(L_BINS))
    assert math.isfinite(metrics["final_val_ce"]) and 0 <= metrics["final_val_accuracy"] <= 1
    assert metrics["final_val_ce_sham_gap"] == pytest.approx(
        metrics["final_val_ce_sham"] - metrics["final_val_ce"]
    )
    assert load_gpt(models["gpt"]).config.stack == "danceba"


def test_wrong_checkpoint_kind_is_refused(models: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="not a VQ-VAE export"):
        load_vqvae(models["gpt"])
    with pytest.raises(ValueError, match="not a GPT export"):
        load_gpt(models["vqvae"])


def test_generated_dances_follow_the_music(models: dict[str, Path], chain: dict[str, Path]) -> None:
    index = pq.read_table(chain["sequences"]).to_pandas()
    pieces = set(index.loc[index["split"].isin(["val", "test"]), "sequence"])
    for row in ("model", "random_codes", "model_sham_music"):
        dances = read_dance_folder(models["generated"] / row)
        assert {d.name for d in dances} == pieces
        for dance in dances:
            music_frames = len(tables.read_group(chain["music7"], dance.music_id, "features"))
            assert len(dance.joints) == 8 * music_frames  # first code + one per music frame after frame 0
            assert np.isfinite(dance.joints).all()
    music_of = dict(zip(index["sequence"], index["music_id"], strict=True))
    for path in (models["generated"] / "model_sham_music").glob("*.npz"):
        with np.load(path) as data:
            assert str(data["music_id"]) == music_of[path.stem]  # scored against its own music...
            assert str(data["condition_music_id"]) != music_of[path.stem]  # ...fed another one
    for dance in read_dance_folder(models["generated"] / "reconstruction"):
        ground_truth = tables.read_group(chain["joints"], dance.name, "joints").reshape(-1, 24, 3)
        assert dance.joints.shape == (len(ground_truth) // 8 * 8, 24, 3) and dance.name in pieces


ROWS = (
    "ground_truth",
    "model",
    "model_sham_music",
    "reconstruction",
    "random_codes",
    "mismatched_gt",
    "gt_half_beat_late",
    "jitter",
    "still",
)


def test_evaluation_report(models: dict[str, Path]) -> None:
    report = json.loads((models["reports"] / "metrics.json").read_text())
    assert set(report) == {"bailando", "corrected", "protocol"}
    card = report.pop("protocol")
    assert list(card["rows"]) == list(ROWS) and card["config"]["fid_bootstrap"] == 5
    for rows in report.values():
        assert list(rows) == list(ROWS)
        for values in rows.values():
            assert {"fid_k", "fid_g", "div_k", "div_g", "bas"} <= set(values)
            assert {"fid_k_testref", "bas_excess_ci_low", "phase_lock_r", "pfc", "foot_skating"} <= set(
                values
            )
            assert math.isfinite(values["fid_k"]) and math.isfinite(values["bas_excess"])
            assert 0 <= values["bas"] <= 1
        assert rows["gt_half_beat_late"]["bas"] < rows["ground_truth"]["bas"]
        assert rows["still"]["mean_joint_speed"] < 0.05 < rows["ground_truth"]["mean_joint_speed"]
    table = (models["reports"] / "metrics.md").read_text()
    assert "| model |" in table and "Protocol `corrected`" in table
    assert table.startswith("## Does the model follow the music?") and "sham music" in table
    assert (models["reports"] / "plots" / "metrics_bailando.png").stat().st_size > 1000
    assert (models["reports"] / "plots" / "bas_excess_corrected.png").stat().st_size > 1000
    assert list((models["reports"] / "plots").glob("beats_*.png"))


def test_every_stage_logged_an_mlflow_run_and_the_lineage_walks_back(models: dict[str, Path]) -> None:
    from danceba.lineage import format_lineage, lineage
    from danceba.tracking_store import configure_tracking, mlflow_client

    root = models["params"].parent
    client = mlflow_client(configure_tracking(root))
    experiment = client.get_experiment_by_name("danceba")
    runs = client.search_runs([experiment.experiment_id])
    by_stage = {run.data.tags["danceba.stage"]: run for run in runs}
    assert {"train_vqvae", "tokenize", "train_gpt", "generate", "gt_features", "evaluate"} <= set(by_stage)
    for run in by_stage.values():
        assert run.info.status == "FINISHED"
        assert "git.commit" in run.data.tags and "lib.torch" in run.data.tags
    gpt_run = by_stage["train_gpt"]
    assert gpt_run.data.tags["danceba.seed"] == "42"
    assert "train.optim.lr" in gpt_run.data.params or any(k.endswith("optim.lr") for k in gpt_run.data.params)
    history = client.get_metric_history(gpt_run.info.run_id, "val_loss")
    assert len(history) >= 2 and history[0].step < history[-1].step
    assert client.search_model_versions("name = 'danceba-gpt'")
    links = lineage(by_stage["evaluate"].info.run_id, root)
    producers = {link.producer.stage for link in links if link.producer is not None}
    assert {"generate", "train_gpt", "tokenize", "train_vqvae"} <= producers
    assert "train_gpt" in format_lineage(links)


def test_genre_control_measures_a_conditioned_gpt_against_the_unconditioned_one(
    models: dict[str, Path], chain: dict[str, Path], tmp_path: Path
) -> None:
    params = yaml.safe_load(models["params"].read_text())
    params["train_gpt"]["model"]["genre_conditioning"] = True
    params["train_gpt"]["genre_dropout"] = 0.2
    conditioned_params = tmp_path / "params.yaml"
    conditioned_params.write_text(yaml.safe_dump(params))
    conditioned = tmp_path / "gpt_genre.pt"
    where = {
        "params.yaml": conditioned_params,
        "data/tokens.parquet": models["tokens"],
        "data/token_music.parquet": models["token_music"],
        "checkpoints/gpt": tmp_path / "runs",
        "data/models/gpt.pt": conditioned,
        "reports/train_gpt": tmp_path / "reports_gpt",
    }
    trained = train_gpt.main(stage_argv("train_gpt", where))
    assert trained == 0 and load_gpt(conditioned).config.genre_conditioning
    out = tmp_path / "genre"
    argv = ["--params", str(models["params"]), "--conditioned", str(conditioned)]
    argv += ["--unconditioned", str(models["gpt"]), "--vqvae", str(models["vqvae"])]
    argv += ["--tokens", str(models["tokens"]), "--sequences", str(chain["sequences"])]
    argv += ["--music", str(models["music"]), "--music-60fps", str(chain["music60"])]
    argv += ["--joints", str(chain["joints"]), "--out-dir", str(out)]
    assert genre_control.main(argv) == 0
    report = json.loads((out / "genre_control.json").read_text())
    genres = report["classifier"]["genres"]
    assert report["requests_per_model"] == report["pieces"] * len(genres)
    for group in ("conditioned", "unconditioned", "conditioned, piece's first codes"):
        (result,) = report[group]["models"].values()
        assert 0 <= result["requested_accuracy"] <= 1 and math.isfinite(result["bas_excess"])
        assert sum(sum(row.values()) for row in result["confusion"].values()) == report["requests_per_model"]
    # without the genre input and from the piece's own codes, a dance ignores the request: exactly one of
    # each piece's requests matches whatever it is classified as
    (blind,) = report["unconditioned, piece's first codes"]["models"].values()
    assert blind["requested_accuracy"] == pytest.approx(1 / len(genres))
    assert "| conditioned | 1 |" in (out / "genre_control.md").read_text()
    wrong = genre_control.main([*argv[:2], "--conditioned", str(models["gpt"]), *argv[4:]])
    assert wrong == 1  # an unconditioned GPT given as conditioned is refused
