"""Hostile or mistaken params.yaml files: every problem is refused at load, one line each naming the file
and the key, all of them at once; a stage given such a file fails cleanly and writes nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from danceba.config import ConfigError, load_params
from danceba.params_checks import consistency_problems
from tests.project_files import EMBEDDED_PARAMS, ROOT

PROJECT_TEXT = EMBEDDED_PARAMS.read_text()


def with_changes(tmp_path: Path, **changes: object) -> Path:
    """The project's params with dotted ``changes`` (``joints__fps=0`` sets ``joints.fps``)."""
    params = yaml.safe_load(PROJECT_TEXT)
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        section = params
        for name in parents:
            section = section[name]
        section[leaf] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_params(path)
    lines = str(caught.value).splitlines()
    assert lines == caught.value.problems and all(line.startswith(f"{path}: ") for line in lines)
    return [line.removeprefix(f"{path}: ") for line in lines]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"train_gpt__optim__lr": float("inf")}, "train_gpt.optim.lr: expected a finite number, got inf"),
        (
            {"train_vqvae__stage1__optim__gamma": float("inf")},
            "train_vqvae.stage1.optim.gamma: expected a finite",
        ),
        ({"train_gpt__optim__weight_decay": float("nan")}, "train_gpt.optim.weight_decay: expected a finite"),
        ({"train_gpt__optim__grad_clip": float("nan")}, "train_gpt.optim.grad_clip: expected a finite"),
        ({"joints__fps": 0}, "joints.fps: expected a value >= 1, got 0"),
        ({"train_gpt__model__pre_n_fft": 0}, "train_gpt.model.pre_n_fft: expected a value >= 1, got 0"),
        ({"tokenize__stride": -1}, "tokenize.stride: expected a value >= 1, got -1"),
        ({"tokenize__window": 0}, "tokenize.window: expected a value >= 1, got 0"),
        ({"train_gpt__max_eval_windows": 0}, "train_gpt.max_eval_windows: expected a value >= 1, got 0"),
        ({"train_gpt__model__embd_pdrop": 1.0}, "train_gpt.model.embd_pdrop: expected a value >= 0 and < 1"),
        ({"evaluate__protocols": ["bailando", "edge"]}, "evaluate.protocols[1]: expected one of"),
        ({"train_gpt__train_splits": ["trian"]}, "train_gpt.train_splits[0]: expected one of"),
        ({"generate__splits": ["val", "holdout"]}, "generate.splits[1]: expected one of"),
        (
            {"train_gpt__model__vocab_up": 64},
            "train_gpt.model.vocab_up: derived from train_vqvae.model.l_bins; remove it from the file",
        ),
        ({"train_gpt__model__n_music": 21}, "train_gpt.model.n_music: derived from music_features.kind"),
        ({"train_gpt__model__block_size": 29}, "train_gpt.model.block_size: derived from tokenize.window"),
        ({"tokenize__window": 244}, "tokenize.window: 244 frames is not a multiple of the VQ-VAE's 8"),
        ({"tokenize__window": 8}, "tokenize.window: 8 frames is not a multiple of the VQ-VAE's 8 frames"),
        ({"train_vqvae__model__down_t": 2}, "train_vqvae.model: stride_t ** down_t is 4 frames per code"),
        (
            {"train_gpt__model__pre_mode": "official"},  # with the 21 derived rhythm columns
            "train_gpt.model: GPTConfig: official PRE needs n_music >= pre_hop_length",
        ),
        ({"data__download_dir": "../../x"}, "data.download_dir: '../../x' leaves the project"),
        ({"joints__drop_ignored": "yes"}, "joints.drop_ignored: expected true/false, got 'yes'"),
        ({"joints": None}, "joints: the section is empty (null)"),
    ],
)
def test_each_bad_value_is_one_line_naming_file_and_key(tmp_path: Path, changes: dict, expected: str) -> None:
    problems = problems_of(with_changes(tmp_path, **changes))
    assert len(problems) == 1 and problems[0].startswith(expected), problems


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = with_changes(tmp_path, joints__fps=0, tokenize__stride=0, train_gpt__optim__lr=float("nan"))
    problems = problems_of(path)
    assert [p.split(":")[0] for p in problems] == ["joints.fps", "tokenize.stride", "train_gpt.optim.lr"]


def test_a_size_beyond_this_machine_is_refused_with_the_estimate(tmp_path: Path) -> None:
    path = with_changes(
        tmp_path,
        train_vqvae__model__l_bins=10**10,  # the GPT's vocabularies follow it
    )
    problems = problems_of(path)
    assert len(problems) == 2 and all("more than this machine's" in p for p in problems)
    assert problems[0].startswith("train_vqvae.model: about 1.92e+12 parameters need about")
    params = load_params(ROOT / "configs" / "paper.yaml")  # the paper's size fits a 24 GiB machine
    assert consistency_problems(params, memory_bytes=24 * 2**30) == []


@pytest.mark.parametrize(
    ("changes", "derived"),
    [
        ({}, {"vocab_up": 64, "vocab_down": 64, "n_music": 21, "block_size": 29}),
        ({"train_vqvae__model__l_bins": 32}, {"vocab_up": 32, "vocab_down": 32}),
        ({"music_features__token_rhythm": "append"}, {"n_music": 459}),
        ({"music_features__token_rhythm": "none"}, {"n_music": 438}),
        ({"tokenize__window": 120}, {"block_size": 14}),
    ],
)
def test_the_gpt_sizes_follow_the_sections_they_derive_from(
    tmp_path: Path, changes: dict, derived: dict
) -> None:
    model = load_params(with_changes(tmp_path, **changes)).train_gpt.model
    assert {name: getattr(model, name) for name in derived} == derived


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the file is empty"),
        ("# only a comment\n", "the file is empty"),
        (
            "compute:\n  threads: 1\n  threads: 2\n",
            "not valid YAML: duplicate key 'threads' (line 3; first on line 2)",
        ),
        (
            "a: !!python/object/apply:os.system ['true']\n",
            "not valid YAML: could not determine a constructor",
        ),
        ("[1, 2]\n", "params: expected a mapping"),
    ],
)
def test_malformed_files_are_one_line(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    problems = problems_of(path)
    assert len(problems) == 1 and problems[0].startswith(expected), problems


def test_a_missing_section_is_refused(tmp_path: Path) -> None:
    params = yaml.safe_load(PROJECT_TEXT)
    del params["evaluate"], params["train_gpt"]["optim"]
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    assert sorted(problems_of(path)) == ["evaluate: missing section", "train_gpt.optim: missing section"]


def test_a_stage_given_bad_params_fails_in_one_line_and_writes_nothing(tmp_path: Path) -> None:
    params = with_changes(tmp_path, joints__fps=0)
    out = tmp_path / "raw"
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.fetch", "--params", str(params), "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert f"{params}: joints.fps: expected a value >= 1, got 0" in done.stderr
    assert not out.exists()
