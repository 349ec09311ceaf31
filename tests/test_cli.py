"""The ``danceba`` command line: generate (any song, every refusal), evaluate, convert-checkpoint, lineage."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import soundfile
import torch
import yaml
from easydict import EasyDict

from danceba import tables
from danceba.cli import build_parser, main, sampling_from_args
from danceba.config import load_params
from danceba.evaluation import write_dance, write_gt_features
from danceba.export.bvh import read_bvh
from danceba.export.video import probe_media
from danceba.features.columns import BEAT_COLUMN
from danceba.features.music import HOP_LENGTH, SAMPLE_RATE_7P5FPS
from danceba.generation.config import SamplingConfig
from danceba.lineage import LineageLink, ProducerRun
from danceba.models.gpt import build_gpt
from danceba.models.gpt_config import GPTConfig
from danceba.models.vqvae import SepVQVAE, SepVQVAER
from danceba.models.vqvae_config import VQVAEConfig
from danceba.motion.skeleton import forward_kinematics
from danceba.train.checkpoint import load_weights_only
from danceba.trainers.gpt import export_gpt, load_gpt
from danceba.trainers.vqvae import export_vqvae
from tests.project_files import ROOT

SR = 22050
TINY_GPT = GPTConfig(
    n_embd=32,
    n_head=2,
    n_layer_base=1,
    n_layer_head=1,
    block_size=8,
    vocab_up=16,
    vocab_down=16,
    n_music=438,
    mamba_d_state=4,
    mamba_expand=2,
)
TINY_VQVAE = VQVAEConfig(width=16, depth=1, emb_width=16, l_bins=16)


# ----------------------------------------------------------------------------------------------
# Fixtures: tiny exports, songs
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    vqvae = SepVQVAER(TINY_VQVAE).train()
    SepVQVAE.forward(vqvae, torch.randn(2, 64, 72))  # a stage-1 training forward initialises the codebooks
    paths = {"vqvae": root / "vqvae.pt", "gpt": root / "gpt.pt", "gpt_vocab32": root / "gpt_vocab32.pt"}
    paths["gpt_rhythm"] = root / "gpt_rhythm.pt"
    rhythm = dataclasses.replace(TINY_GPT, n_music=21, music_norm=True, pre_mode="per_channel")
    export_gpt(paths["gpt_rhythm"], build_gpt(rhythm), rhythm, {}, {})
    export_vqvae(paths["vqvae"], vqvae.eval(), TINY_VQVAE, {}, {})
    export_gpt(paths["gpt"], build_gpt(TINY_GPT), TINY_GPT, {}, {})
    diverged = build_gpt(TINY_GPT)
    with torch.no_grad():
        next(diverged.parameters()).fill_(float("nan"))
    paths["gpt_nan"] = root / "gpt_nan.pt"
    export_gpt(paths["gpt_nan"], diverged, TINY_GPT, {}, {})
    wide = dataclasses.replace(TINY_GPT, vocab_up=32, vocab_down=32)
    export_gpt(paths["gpt_vocab32"], build_gpt(wide), wide, {}, {})
    return paths


def click_track(seconds: float, peak: float = 0.5) -> np.ndarray:
    """A 120 BPM click over a 440 Hz tone, mono float32 at SR."""
    t = np.arange(int(seconds * SR)) / SR
    return (peak * (0.4 * np.sin(2 * np.pi * 440 * t) + ((t % 0.5) < 0.01))).astype(np.float32)


@pytest.fixture(scope="module")
def songs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("songs")
    paths = {
        "wav": root / "beat.wav",
        "flac": root / "my song (live) [v2].flac",
        "ogg": root / "tune.ogg",
        "mp3": root / "tune-2.mp3",
        "short_mp4": root / "clip 2.5s.wav",
        "silent": root / "silence.wav",
        "too_short": root / "half second.wav",
        "corrupt": root / "broken.wav",
        "loud": root / "too loud.wav",
    }
    soundfile.write(paths["wav"], click_track(4.0), SR)
    soundfile.write(paths["flac"], np.stack([click_track(3.0)] * 2, axis=1), SR)  # stereo
    soundfile.write(paths["ogg"], click_track(3.0), SR)
    soundfile.write(paths["mp3"], click_track(3.0), SR)
    soundfile.write(paths["short_mp4"], click_track(2.5), SR)
    soundfile.write(paths["silent"], np.zeros(3 * SR, np.float32), SR)
    soundfile.write(paths["too_short"], click_track(0.5), SR)
    soundfile.write(paths["loud"], click_track(3.0) * np.float32(3e37), SR, subtype="FLOAT")  # overflows
    paths["corrupt"].write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt " + bytes(range(256)) * 8)
    return paths


def frames_7p5fps(song: Path) -> int:
    """Music frames at 7.5 fps: 1 + n // 512 of the audio resampled to 3840 Hz."""
    info = soundfile.info(song)
    return 1 + math.ceil(info.frames * SAMPLE_RATE_7P5FPS / info.samplerate) // HOP_LENGTH


@pytest.fixture(autouse=True)
def away_from_the_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in an empty folder, so the default paths (data/tokens.parquet, ...) do not exist."""
    monkeypatch.chdir(tmp_path)


def generate(models: dict[str, Path], songs: list[Path], out: Path, *extra: str) -> int:
    args = ["generate", *map(str, songs), "--out", str(out), "--gpt", str(models["gpt"])]
    return main([*args, "--vqvae", str(models["vqvae"]), *extra])


def files_under(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*")) if folder.exists() else []


# ----------------------------------------------------------------------------------------------
# generate
# ----------------------------------------------------------------------------------------------


def test_generate_writes_npz_and_bvh_named_after_each_song(models, songs, tmp_path: Path) -> None:
    out = tmp_path / "out"
    inputs = [songs[k] for k in ("wav", "flac", "ogg", "mp3")]
    args = ["generate", *map(str, inputs), "--out", str(out), "--seed", "3"]
    assert main([*args, "--checkpoint", str(models["gpt"]), "--vqvae", str(models["vqvae"])]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{stem}.{fmt}"
        for stem in ("beat", "my song (live) [v2]", "tune", "tune-2")
        for fmt in ("bvh", "npz")
    )
    for song in inputs:
        with np.load(out / f"{song.stem}.npz", allow_pickle=False) as data:
            joints, music_id = data["joints"], str(data["music_id"])
        assert music_id == song.stem
        assert joints.shape == (8 * frames_7p5fps(song), 24, 3)
        assert np.isfinite(joints).all()
        rotations, _, fps = read_bvh(out / f"{song.stem}.bvh")
        assert (len(rotations), fps) == (len(joints), 60.0)


def test_generate_feeds_a_token_rhythm_gpt_the_rhythm_of_the_song_itself(
    models, songs, tmp_path: Path
) -> None:
    from danceba.features.columns import BEAT_AT_FRAME
    from danceba.generation.user_songs import match_music_width, read_song

    song = read_song(songs["wav"])
    (wide,) = match_music_width([song], 438 + 21)
    assert wide.music_7p5fps.shape == (len(song.music_7p5fps), 459)
    assert np.array_equal(wide.music_7p5fps[:, :438], song.music_7p5fps)
    assert wide.music_7p5fps[:, 438:][:, BEAT_AT_FRAME].sum() >= 2  # the click track's beats, at 60 fps
    (only,) = match_music_width([song], 21)
    assert np.array_equal(only.music_7p5fps, wide.music_7p5fps[:, 438:])
    assert match_music_width([song], 438)[0] is song
    out = tmp_path / "out"
    args = ["generate", str(songs["wav"]), "--out", str(out), "--gpt", str(models["gpt_rhythm"])]
    assert main([*args, "--vqvae", str(models["vqvae"])]) == 0
    with np.load(out / f"{songs['wav'].stem}.npz", allow_pickle=False) as data:
        assert data["joints"].shape == (8 * frames_7p5fps(songs["wav"]), 24, 3)


def test_generate_is_reproducible_with_a_seed(models, songs, tmp_path: Path) -> None:
    def joints(seed: int, name: str) -> np.ndarray:
        out = tmp_path / name
        assert (
            generate(
                models,
                [songs["wav"]],
                out,
                "--format",
                "npz",
                "--sample",
                "--seed",
                str(seed),
                "--top-k",
                "8",
            )
            == 0
        )
        return np.load(out / "beat.npz")["joints"]

    first, again, other = joints(7, "a"), joints(7, "b"), joints(8, "c")
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_generate_first_codes_from_a_tokens_table(models, songs, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.parquet"
    codes = np.array([[5, 1], [5, 2], [9, 3], [9, 4]], np.float32)  # (up, down) first codes
    table = {
        "sequence": ["gBR_a", "gBR_b", "gHO_a", "gHO_b"],
        "split": ["train", "train", "train", "val"],
        "up": tables.vector_column(np.repeat(codes[:, :1], 2, axis=1)),
        "down": tables.vector_column(np.repeat(codes[:, 1:], 2, axis=1)),
    }
    tables.write_table(tokens, pa.table(table))
    base = ["generate", str(songs["wav"]), "--gpt", str(models["gpt"]), "--vqvae", str(models["vqvae"])]
    base += ["--tokens", str(tokens), "--format", "npz", "--greedy"]
    assert main([*base, "--out", str(tmp_path / "gho"), "--genre", "gHO"]) == 0
    assert main([*base, "--out", str(tmp_path / "default")]) == 0  # gBR: the most common genre
    assert main([*base, "--out", str(tmp_path / "gbr"), "--genre", "gBR"]) == 0
    load = lambda name: np.load(tmp_path / name / "beat.npz")["joints"]  # noqa: E731
    np.testing.assert_array_equal(load("default"), load("gbr"))
    assert not np.array_equal(load("gho"), load("gbr"))
    assert main([*base, "--out", str(tmp_path / "x"), "--genre", "gKR"]) == 2
    assert not (tmp_path / "x").exists()


def test_genre_guidance_of_an_unconditioned_gpt_says_so_and_changes_nothing(models, songs, tmp_path, capsys):
    assert generate(models, [songs["wav"]], tmp_path / "plain", "--format", "npz", "--greedy") == 0
    capsys.readouterr()
    guided = ("--format", "npz", "--greedy", "--genre-guidance", "3")
    assert generate(models, [songs["wav"]], tmp_path / "guided", *guided) == 0
    assert "--genre-guidance needs a genre-conditioned GPT" in capsys.readouterr().err
    load = lambda name: np.load(tmp_path / name / "beat.npz")["joints"]  # noqa: E731
    np.testing.assert_array_equal(load("plain"), load("guided"))


def test_generate_mp4_has_the_song_as_sound_and_its_duration(models, songs, tmp_path: Path) -> None:
    out = tmp_path / "video"
    assert generate(models, [songs["short_mp4"]], out, "--format", "mp4") == 0
    assert [p.name for p in out.iterdir()] == ["clip 2.5s.mp4"]
    media = probe_media(out / "clip 2.5s.mp4")
    assert media["video_streams"] == 1 and media["audio_streams"] == 1
    assert media["duration_s"] == pytest.approx(8 * frames_7p5fps(songs["short_mp4"]) / 60, abs=0.1)
    assert media["duration_s"] == pytest.approx(2.5, abs=0.2)


@pytest.mark.parametrize(
    ("case", "named", "problem"),
    [
        ("silent", "silent", "silent"),
        ("corrupt", "corrupt", "cannot decode"),
        ("missing", "missing", "no such audio file"),
        ("too_short", "too_short", "too short"),
        ("vqvae_is_a_gpt", "gpt", "not a VQ-VAE export"),
        ("gpt_vocab_mismatch", "gpt_vocab32", "wrong architecture"),
        ("gpt_nan_weights", "gpt_nan", "hold NaN or infinite values"),
        ("loud", "loud", "cannot compute music features"),
    ],
)
def test_generate_refuses_bad_input_and_writes_nothing(models, songs, tmp_path, capsys, case, named, problem):
    song_list = [songs["wav"]]
    gpt, vqvae = models["gpt"], models["vqvae"]
    if case in ("silent", "corrupt", "too_short", "loud"):
        song_list.append(songs[case])
    elif case == "missing":
        song_list.append(tmp_path / "missing.wav")
    elif case == "vqvae_is_a_gpt":
        vqvae = models["gpt"]
    elif case == "gpt_nan_weights":
        gpt = models["gpt_nan"]
    else:
        gpt = models["gpt_vocab32"]
    culprit = {"missing": tmp_path / "missing.wav"}.get(named) or songs.get(named) or models[named]
    out = tmp_path / "out"
    args = ["generate", *map(str, song_list), "--out", str(out), "--gpt", str(gpt), "--vqvae", str(vqvae)]
    assert main([*args, "--format", "npz,bvh,mp4"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"danceba: error: {culprit}: "), err
    assert problem in err[0]
    assert files_under(out) == []


def test_generate_rolls_back_when_a_later_write_fails(models, songs, tmp_path, monkeypatch, capsys):
    import danceba.generation.user_songs

    real = danceba.generation.user_songs.write_song_outputs

    def fail_on_bvh(out, song, joints, formats, *rest):
        if "bvh" in formats:
            raise OSError(f"{out / song.name}.bvh: disk full")
        return real(out, song, joints, formats, *rest)

    monkeypatch.setattr(danceba.generation.user_songs, "write_song_outputs", fail_on_bvh)
    out = tmp_path / "out"
    assert generate(models, [songs["wav"]], out, "--format", "npz,bvh") == 2
    assert "disk full" in capsys.readouterr().err
    assert files_under(out) == []


def parsed_sampling(*flags: str) -> tuple[SamplingConfig, str]:
    args = build_parser().parse_args(["generate", "song.wav", "--out", "o", *flags])
    return sampling_from_args(args, args.decode)


def project_params(folder: Path, **generate: object) -> Path:
    """folder/params.yaml: the project's params.yaml with some ``generate`` values replaced."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["generate"].update(generate)
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def test_generate_decodes_as_the_params_file_says_and_flags_override_it(tmp_path: Path) -> None:
    reference, source = parsed_sampling()  # no params.yaml here: the official sampler, decoded cached
    assert (reference, source) == (SamplingConfig(decode="cached"), "the reference sampler")
    project_params(tmp_path, mode="sample", top_k=5, repeat_penalty=0.5, music_guidance=1.0, seed=4)
    stage, source = parsed_sampling()  # ./params.yaml is read when present
    assert source == "params.yaml (generate)"
    assert stage == SamplingConfig(
        mode="sample", top_k=5, repeat_penalty=0.5, music_guidance=1.0, seed=4, decode="cached"
    )
    flags = ("--greedy", "--top-k", "0", "--seed", "9", "--music-guidance", "0", "--precision", "bfloat16")
    overridden, _ = parsed_sampling(*flags, "--decode", "exact", "--genre-guidance", "2")
    assert overridden == dataclasses.replace(
        stage,
        mode="greedy",
        top_k=None,
        seed=9,
        music_guidance=0.0,
        precision="bfloat16",
        decode="exact",
        genre_guidance=2.0,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    project_params(elsewhere, temperature=0.7)
    named, source = parsed_sampling("--params", str(elsewhere / "params.yaml"))
    project = load_params(ROOT / "params.yaml").generate.sampling()
    assert named == dataclasses.replace(project, temperature=0.7, decode="cached")
    assert source == f"{elsewhere / 'params.yaml'} (generate)"


def test_generate_with_params_dances_as_the_same_flags_given_by_hand(models, songs, tmp_path, capsys):
    project = tmp_path / "project"
    project.mkdir()
    params = project_params(project, mode="sample", top_k=3, repeat_penalty=0.5, music_guidance=1.0, seed=2)
    assert (
        generate(models, [songs["wav"]], tmp_path / "from_file", "--format", "npz", "--params", str(params))
        == 0
    )
    note = capsys.readouterr().err
    assert "sample top-k 3 T 1 seed 2, repeat penalty 0.5, music guidance 1, cached decoding, float32" in note
    assert f"(defaults: {params} (generate))" in note
    by_hand = ("--sample", "--top-k", "3", "--repeat-penalty", "0.5", "--music-guidance", "1", "--seed", "2")
    assert generate(models, [songs["wav"]], tmp_path / "by_hand", "--format", "npz", *by_hand) == 0
    assert "(defaults: the reference sampler)" in capsys.readouterr().err
    assert generate(models, [songs["wav"]], tmp_path / "reference", "--format", "npz") == 0
    load = lambda name: np.load(tmp_path / name / "beat.npz")["joints"]  # noqa: E731
    np.testing.assert_array_equal(load("from_file"), load("by_hand"))
    assert not np.array_equal(load("from_file"), load("reference"))


def test_generate_refuses_a_bad_params_file_and_writes_nothing(models, songs, tmp_path, capsys) -> None:
    bad = project_params(tmp_path, top_k=0)
    assert generate(models, [songs["wav"]], tmp_path / "o", "--format", "npz") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"danceba: error: {bad.name}: ") and "top_k" in err[0], err
    missing = tmp_path / "nowhere.yaml"
    assert generate(models, [songs["wav"]], tmp_path / "o", "--params", str(missing)) == 2
    assert f"{missing}: file not found" in capsys.readouterr().err
    assert generate(models, [songs["wav"]], tmp_path / "o", "--greedy", "--sample") == 2
    assert "not allowed with argument" in capsys.readouterr().err
    assert files_under(tmp_path / "o") == []


def test_generate_usage_errors(models, songs, tmp_path, capsys) -> None:
    assert generate(models, [songs["wav"]], tmp_path / "o", "--format", "npz,gif") == 2
    assert "npz,bvh,mp4" in capsys.readouterr().err
    assert generate(models, [songs["wav"]], tmp_path / "o", "--temperature", "0") == 2
    assert generate(models, [songs["wav"]], tmp_path / "o", "--repeat-penalty", "-1") == 2
    assert "finite number >= 0" in capsys.readouterr().err
    assert generate(models, [songs["wav"]], tmp_path / "o", "--genre-guidance", "-1") == 2
    assert "--genre-guidance" in capsys.readouterr().err
    assert generate(models, [songs["wav"]], tmp_path / "o", "--music-guidance", "nan") == 2
    assert "--music-guidance" in capsys.readouterr().err
    assert generate(models, [songs["wav"]], tmp_path / "o", "--genre-guidance-steps", "-2") == 2
    assert "integer >= 0" in capsys.readouterr().err
    assert generate(models, [songs["wav"], songs["wav"]], tmp_path / "o") == 2  # same output name twice
    assert "same output name" in capsys.readouterr().err
    assert files_under(tmp_path / "o") == []


# ----------------------------------------------------------------------------------------------
# evaluate
# ----------------------------------------------------------------------------------------------


def dance(rng: np.random.Generator, frames: int = 240) -> np.ndarray:
    """(T, 24, 3) joints of smooth random SMPL poses."""
    t = np.linspace(0, 4 * np.pi, frames)[:, None]
    poses = 0.3 * np.sin(t * rng.uniform(0.5, 2.0, 72) + rng.uniform(0, 6, 72))
    trans = np.concatenate([0.2 * np.sin(t), 0.9 + 0.05 * np.cos(3 * t), 0.1 * t], axis=1)
    return forward_kinematics(poses, trans).astype(np.float32)


@pytest.fixture(scope="module")
def evaluation_tables(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("eval")
    rng = np.random.default_rng(0)
    names = [f"gBR_sBM_cAll_d0{i}_mBR0_ch01" for i in range(6)]
    paths = {k: root / f"{k}.parquet" for k in ("joints", "sequences", "gt", "music60")}
    groups = (tables.frame_table("sequence", n, "joints", dance(rng).reshape(-1, 72)) for n in names)
    tables.write_grouped_table(paths["joints"], groups)
    tables.write_table(paths["sequences"], pa.table({"sequence": names}))
    write_gt_features(paths["joints"], paths["sequences"], paths["gt"], ("bailando", "corrected"))
    features = rng.normal(size=(300, 438)).astype(np.float32)
    features[:, BEAT_COLUMN] = (np.arange(300) % 30 == 0).astype(np.float32)
    tables.write_grouped_table(
        paths["music60"], [tables.frame_table("music_id", "mBR0", "features", features)]
    )
    predictions = root / "predictions"
    for i in range(3):
        write_dance(predictions / f"piece {i}.npz", dance(rng), "mBR0")
    paths["predictions"] = predictions
    return paths


def test_evaluate_prints_the_table_and_writes_json(evaluation_tables, tmp_path, capsys) -> None:
    paths = evaluation_tables
    args = ["evaluate", str(paths["predictions"]), "--gt-features", str(paths["gt"])]
    args += ["--music-60fps", str(paths["music60"]), "--json", str(tmp_path / "m.json")]
    assert main([*args, "--protocol", "corrected"]) == 0
    out = capsys.readouterr().out
    assert "### Protocol `corrected`" in out and "bailando`" not in out
    assert "- `corrected`: no verdict: no model row" in out  # a plain folder has no model / sham rows
    rows = [line for line in out.splitlines() if line.startswith("| predictions | 3 |")]
    assert len(rows) == 2  # the rhythm table and the FID table
    report = json.loads((tmp_path / "m.json").read_text())
    assert list(report) == ["corrected", "protocol"]
    values = report["corrected"]["predictions"]
    assert {"fid_k", "fid_g", "div_k", "div_g", "bas", "bas_excess", "phase_lock_r", "pfc"} <= set(values)
    assert "fid_k_testref" not in values  # the predictions are not named after sequences with features
    assert all(math.isfinite(v) for v in values.values())
    assert report["protocol"]["config"]["protocols"] == "corrected"
    assert report["protocol"]["rows"]["predictions"]["n_pieces"] == 3


def test_evaluate_refuses_bad_folders(evaluation_tables, tmp_path, capsys) -> None:
    paths = evaluation_tables
    tables_args = ["--gt-features", str(paths["gt"]), "--music-60fps", str(paths["music60"])]
    (tmp_path / "empty").mkdir()
    assert main(["evaluate", str(tmp_path / "empty"), *tables_args]) == 2
    assert "no .npz predictions" in capsys.readouterr().err
    unknown = tmp_path / "unknown"
    write_dance(unknown / "a.npz", np.zeros((64, 24, 3)), "mBR0")
    write_dance(unknown / "b.npz", np.zeros((64, 24, 3)), "mXX9")
    assert main(["evaluate", str(unknown), *tables_args]) == 2
    err = capsys.readouterr().err
    assert str(unknown / "b.npz") in err and "mXX9" in err
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.npz").write_bytes(b"not a zip")
    assert main(["evaluate", str(tmp_path / "bad"), *tables_args]) == 2
    assert "x.npz" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------
# convert-checkpoint
# ----------------------------------------------------------------------------------------------


def official_layout(state: dict[str, torch.Tensor], stack: str) -> dict[str, torch.Tensor]:
    """Our state dict in the released naming: DataParallel prefix, mask buffers, unused ln_f / PRE parts."""
    official = {f"module.{k}": v.clone() for k, v in state.items()}
    blocks = {k.rsplit(".attn.", 1)[0] for k in state if ".attn." in k}
    for block in blocks:
        official[f"module.{block}.attn.mask"] = torch.tril(torch.ones(1, 1, 8, 8))
    if stack == "danceba":
        official["module.gpt_head.ln_f.weight"] = torch.ones(32)
        official["module.gpt_head.ln_f.bias"] = torch.zeros(32)
        official["module.gpt_base.pos_emb.pos_emb_1.linear1.weight"] = torch.zeros(32, 257)
        official["module.gpt_base.pos_emb.pos_emb_1.bn1.running_mean"] = torch.zeros(32)
    return official


@pytest.mark.parametrize("stack", ["danceba", "bailando"])
def test_convert_checkpoint_round_trip_reports_unmatched_keys(tmp_path, capsys, stack) -> None:
    config = dataclasses.replace(TINY_GPT, stack=stack)
    torch.manual_seed(1)
    state = build_gpt(config).state_dict()
    official = official_layout(state, stack)
    official["module.gpt_head.bogus.weight"] = torch.zeros(3)
    torch.save({"model": official, "epoch": 300, "optimizer": {"state": {}}}, tmp_path / "official.pt")
    fields = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    (tmp_path / "tiny.json").write_text(json.dumps(fields))
    args = ["convert-checkpoint", str(tmp_path / "official.pt"), str(tmp_path / "ours.pt"), "--stack", stack]
    assert main([*args, "--config-from", str(tmp_path / "tiny.json")]) == 0
    out = capsys.readouterr().out
    assert "unexpected (in the file, not in the model; ignored): 1\n  gpt_head.bogus.weight" in out
    assert "missing (in the model, not in the file): 0" in out
    converted = load_gpt(tmp_path / "ours.pt").state_dict()
    assert converted.keys() == state.keys()
    assert all(torch.equal(converted[k], state[k]) for k in state)
    assert main([*args, "--config-from", str(tmp_path / "tiny.json")]) == 2  # never silently overwritten


def official_training_config(config: GPTConfig) -> EasyDict:
    """The official trainer's config (an EasyDict of its YAML), with this GPT's structure."""
    base = {
        "embd_pdrop": config.embd_pdrop,
        "resid_pdrop": config.resid_pdrop,
        "attn_pdrop": config.attn_pdrop,
        "vocab_size_up": config.vocab_up,
        "vocab_size_down": config.vocab_down,
        "block_size": config.block_size,
        "n_layer": config.n_layer_base,
        "n_head": config.n_head,
        "n_embd": config.n_embd,
        "n_music": config.n_music,
        "n_music_emb": config.n_embd,
    }
    head = {**base, "n_layer": config.n_layer_head, "vocab_size": config.vocab_up}
    return EasyDict(
        {
            "structure_generate": {
                "name": "CrossCondGPT2",
                "block_size": config.block_size,
                "base": base,
                "head": head,
            },
            "optimizer": {"type": "Adam", "kwargs": {"lr": 0.0003, "betas": [0.5, 0.999]}},
            "batch_size": 32,
            "need_not_train_data": True,
        }
    )


@pytest.mark.parametrize("stack", ["danceba", "bailando"])
def test_convert_checkpoint_reads_a_file_saved_the_official_way(tmp_path, capsys, stack) -> None:
    """``{'model': state_dict, 'config': EasyDict, 'epoch': n}``: the config builds the matching GPT."""
    config = GPTConfig(
        stack=stack,
        n_embd=16,
        n_head=2,
        n_layer_base=1,
        n_layer_head=2,
        block_size=8,
        vocab_up=24,
        vocab_down=20,
    )
    torch.manual_seed(2)
    state = build_gpt(config).state_dict()
    torch.save(
        {"model": official_layout(state, stack), "config": official_training_config(config), "epoch": 300},
        tmp_path / "epoch_300.pt",
    )
    args = ["convert-checkpoint", str(tmp_path / "epoch_300.pt"), str(tmp_path / "ours.pt"), "--stack", stack]
    assert main(args) == 0
    assert "GPT config from the checkpoint's structure_generate" in capsys.readouterr().err
    converted = load_gpt(tmp_path / "ours.pt")
    assert converted.config == config
    assert all(torch.equal(converted.state_dict()[k], state[k]) for k in state)
    assert load_weights_only(tmp_path / "ours.pt")["provenance"]["epoch"] == 300


def test_convert_checkpoint_admits_only_the_easydict_config(tmp_path, capsys) -> None:
    config = GPTConfig(stack="bailando", n_embd=16, n_head=2, n_layer_base=1, n_layer_head=1, block_size=8)
    state = official_layout(build_gpt(config).state_dict(), "bailando")
    hostile = official_training_config(config)
    hostile.data_root = Path("/etc")  # any other object inside the config stays refused
    torch.save({"model": state, "config": hostile, "epoch": 1}, tmp_path / "hostile.pt")
    assert (
        main(
            [
                "convert-checkpoint",
                str(tmp_path / "hostile.pt"),
                str(tmp_path / "a.pt"),
                "--stack",
                "bailando",
            ]
        )
        == 2
    )
    assert "non-tensor objects" in capsys.readouterr().err
    odd = official_training_config(config)
    odd.structure_generate.base.n_music_emb = 32
    torch.save({"model": state, "config": odd, "epoch": 1}, tmp_path / "odd.pt")
    assert (
        main(["convert-checkpoint", str(tmp_path / "odd.pt"), str(tmp_path / "b.pt"), "--stack", "bailando"])
        == 2
    )
    assert "n_music_emb 32 differs from n_embd 16" in capsys.readouterr().err
    assert not (tmp_path / "a.pt").exists() and not (tmp_path / "b.pt").exists()


def test_convert_checkpoint_refuses_pickled_objects_and_missing_weights(tmp_path, capsys) -> None:
    state = build_gpt(TINY_GPT).state_dict()
    (tmp_path / "tiny.json").write_text(json.dumps({"n_embd": 32, "n_head": 2, "n_layer_base": 1}))
    torch.save({"model": official_layout(state, "danceba"), "args": Path("x")}, tmp_path / "pickled.pt")
    args = ["--stack", "danceba", "--config-from", str(tmp_path / "tiny.json")]
    assert main(["convert-checkpoint", str(tmp_path / "pickled.pt"), str(tmp_path / "a.pt"), *args]) == 2
    assert "non-tensor objects" in capsys.readouterr().err
    fields = {f.name: getattr(TINY_GPT, f.name) for f in dataclasses.fields(TINY_GPT)}
    (tmp_path / "tiny.json").write_text(json.dumps(fields))
    partial = {k: v for k, v in official_layout(state, "danceba").items() if "head_up" not in k}
    torch.save(partial, tmp_path / "partial.pt")  # a bare state dict
    assert main(["convert-checkpoint", str(tmp_path / "partial.pt"), str(tmp_path / "b.pt"), *args]) == 2
    assert "gpt_head.head_up.weight" in capsys.readouterr().out
    assert not (tmp_path / "a.pt").exists() and not (tmp_path / "b.pt").exists()
    wrong = dataclasses.replace(TINY_GPT, n_embd=64)
    (tmp_path / "wrong.json").write_text(
        json.dumps({f.name: getattr(wrong, f.name) for f in dataclasses.fields(wrong)})
    )
    wrong_args = ["--stack", "danceba", "--config-from", str(tmp_path / "wrong.json")]
    assert (
        main(["convert-checkpoint", str(tmp_path / "partial.pt"), str(tmp_path / "c.pt"), *wrong_args]) == 2
    )
    assert "weights do not fit" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------
# lineage, --version
# ----------------------------------------------------------------------------------------------


def test_lineage_prints_the_chain(monkeypatch, tmp_path, capsys) -> None:
    import danceba.lineage

    producer = ProducerRun("3f2a1b9c00", "evaluate", "1a2b3c4d5e6f", "false", "FINISHED", "0", {})
    links = [LineageLink(0, "reports/metrics.json", "abcdef0123", producer, "abcdef0123", False, False)]
    calls = []
    monkeypatch.setattr(danceba.lineage, "lineage", lambda *a, **k: calls.append((a, k)) or links)
    assert main(["lineage", "3f2a1b9c00", "--project-root", str(tmp_path)]) == 0
    assert calls == [(("3f2a1b9c00", tmp_path), {"against": "workspace"})]
    assert "reports/metrics.json [md5 abcdef01…] ← run 3f2a1b9c (evaluate" in capsys.readouterr().out

    def unknown(*args, **kwargs):
        raise ValueError("run 'nope': not found in the tracking store")

    monkeypatch.setattr(danceba.lineage, "lineage", unknown)
    assert main(["lineage", "nope"]) == 2
    assert capsys.readouterr().err.startswith("danceba: error: run 'nope'")


def test_console_script_version() -> None:
    script = Path(sys.executable).parent / "danceba"
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, cwd=ROOT, check=False)
    assert result.returncode == 0 and result.stdout.strip() == "danceba 0.1.0"
    assert main(["--version"]) == 0
