"""The params.yaml loader: the project's file loads, and bad keys fail with the key's name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from danceba.config import ConfigError, Params, load_params
from danceba.evaluate_config import EvaluateConfig
from danceba.generation.config import SamplingConfig
from danceba.models.gpt_config import GPTConfig
from danceba.nested import to_plain_config
from danceba.strict_dataclass import annotation_problems
from danceba.train.train_config import OptimConfig, TrainConfig
from danceba.trainers.configs import TrainGPTConfig
from tests.project_files import EMBEDDED_PARAMS, ROOT


def _merged(base: dict, changes: dict) -> dict:
    merged = dict(base)
    for key, value in changes.items():
        both_mappings = isinstance(value, dict) and isinstance(base.get(key), dict)
        merged[key] = _merged(base[key], value) if both_mappings else value
    return merged


def _write(tmp_path: Path, changes: dict) -> Path:
    """The project's params.yaml with ``changes`` merged in (a nested dict replaces leaf by leaf)."""
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(_merged(yaml.safe_load(EMBEDDED_PARAMS.read_text()), changes)))
    return path


def test_project_params_load() -> None:
    """params.yaml loads whichever named configuration `make config` last wrote; the embedded one is the
    mini dataset."""
    assert isinstance(load_params(ROOT / "params.yaml"), Params)
    params = load_params(EMBEDDED_PARAMS)
    assert params.data.source == "mini"
    assert isinstance(params.data.mini.genres, tuple)


@pytest.mark.parametrize("path", [ROOT / "params.yaml", *sorted((ROOT / "configs").glob("*.yaml"))], ids=str)
def test_every_default_section_is_written_in_params_yaml(path: Path) -> None:
    """params.yaml and every named configuration spell out every key, so `dvc params diff` shows every
    change."""
    raw = yaml.safe_load(path.read_text())
    defaults = to_plain_config(Params())
    assert set(raw) == set(defaults)
    for name, section in defaults.items():
        assert set(raw[name]) == set(section), name


def test_unknown_key_is_rejected_with_its_name(tmp_path: Path) -> None:
    path = _write(tmp_path, {"data": {"mini": {"seed": 1, "sede": 2}}})
    with pytest.raises(ConfigError, match=r"unknown key data\.mini\.sede"):
        load_params(path)


def test_unknown_section_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown key trian_gpt"):
        load_params(_write(tmp_path, {"trian_gpt": {}}))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"data": {"mini": {"seed": "zero"}}}, r"data\.mini\.seed: expected int"),
        ({"data": {"mini": {"seconds": True}}}, r"data\.mini\.seconds: expected float"),
        ({"data": {"source": "youtube"}}, r"data\.source: expected one of \['mini', 'aistpp'\]"),
        ({"joints": {"drop_ignored": "yes"}}, r"joints\.drop_ignored: expected true/false"),
        ({"data": {"mini": {"genres": "gBR"}}}, r"data\.mini\.genres: expected a list"),
        ({"joints": 3}, r"joints: expected a mapping"),
    ],
)
def test_mistyped_values_are_rejected(tmp_path: Path, data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_params(_write(tmp_path, data))


def test_ints_are_accepted_for_floats_and_missing_keys_take_defaults(tmp_path: Path) -> None:
    raw = yaml.safe_load(EMBEDDED_PARAMS.read_text())
    raw["data"]["mini"]["seconds"] = 4
    del raw["data"]["mini"]["seed"]
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    params = load_params(path)
    assert params.data.mini.seconds == 4.0 and isinstance(params.data.mini.seconds, float)
    assert params.data.mini.seed == Params().data.mini.seed


def test_missing_file_and_bad_yaml_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: file not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML"):
        load_params(bad)


def test_params_survive_dvc_rewriting_them(tmp_path: Path) -> None:
    """`dvc exp run -S` rewrites params.yaml (YAML 1.2, unquoted strings); values such as a bare `off`
    would then read back as booleans. Every value must load unchanged after DVC's own rewrite."""
    from dvc.utils.serialize import modify_yaml

    path = tmp_path / "params.yaml"
    path.write_text(EMBEDDED_PARAMS.read_text())
    with modify_yaml(path) as data:
        data["train_gpt"]["train"]["seed"] = 7
    rewritten = load_params(path)
    original = load_params(EMBEDDED_PARAMS)
    assert rewritten.train_gpt.train.seed == 7
    assert to_plain_config(rewritten.train_vqvae) == to_plain_config(original.train_vqvae)
    assert to_plain_config(rewritten.train_gpt.model) == to_plain_config(original.train_gpt.model)


# ----------------------------------------------------------------------------------------------
# One rule per field: the annotation checks a section built in code as the loader checks params.yaml
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (lambda: GPTConfig(pmmm="both"), "GPTConfig.pmmm: expected one of ['parallel', 'single', 'none']"),
        (lambda: GPTConfig(n_head=0), "GPTConfig.n_head: expected a value >= 1, got 0"),
        (lambda: GPTConfig(embd_pdrop=1.0), "GPTConfig.embd_pdrop: expected a value >= 0 and < 1"),
        (lambda: TrainConfig(max_steps=2.5), "train.max_steps: expected int, got 2.5"),
        (lambda: TrainConfig(seed=True), "train.seed: expected int, got True"),
        (lambda: TrainConfig(max_steps="10"), "train.max_steps: expected int, got '10'"),
        (lambda: TrainConfig(deterministic="yes"), "train.deterministic: expected true/false, got 'yes'"),
        (lambda: TrainConfig(best_metric=3), "train.best_metric: expected string, got 3"),
        (lambda: OptimConfig(lr=float("inf")), "optim.lr: expected a finite number, got inf"),
        (lambda: OptimConfig(betas=(0.9, 1.0)), "optim.betas[1]: expected a value >= 0 and < 1"),
        (lambda: OptimConfig(betas=(0.9,)), "optim.betas: expected 2 items, got 1"),
        (lambda: OptimConfig(milestones=(0, 5)), "optim.milestones[0]: expected a value >= 1"),
        (lambda: SamplingConfig(top_k=0), "SamplingConfig.top_k: expected a value >= 1, got 0"),
        (lambda: TrainGPTConfig(code_noise=1.0), "train_gpt.code_noise: expected a value >= 0 and < 1"),
        (lambda: EvaluateConfig(still_noise_m=0.0), "evaluate.still_noise_m: expected a value > 0"),
    ],
)
def test_a_section_built_in_code_breaks_the_same_annotated_rules(build, expected: str) -> None:
    with pytest.raises(ValueError) as caught:
        build()
    assert str(caught.value).startswith(expected), str(caught.value)


def test_valid_values_pass_the_annotated_rules() -> None:
    assert (
        annotation_problems(SamplingConfig(top_k=None, seed=-3)) == []
    )  # None is allowed, a seed may be negative
    assert annotation_problems(TrainConfig(seed=np.int64(7))) == []  # numpy integers are ints
    assert annotation_problems(OptimConfig(milestones=(10, 20), betas=(0.0, 0.5))) == []
