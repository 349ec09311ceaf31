"""Named configurations (configs/embedded.yaml, configs/paper.yaml) and switching params.yaml between them."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from danceba.config import ConfigError, Params, load_params
from danceba.configs import available_configs, current_config, use_config
from danceba.models.gpt import parameter_counts
from danceba.models.vqvae import SepVQVAE, count_parameters
from danceba.nested import to_plain_config
from danceba.params_checks import DERIVED_GPT_FIELDS
from tests.project_files import ROOT

GPT_STEPS_PER_EPOCH = 2300  # the assumption written in configs/paper.yaml


def _keys(tree: Any, prefix: str = "") -> set[str]:
    """Dotted paths of every leaf of a nested mapping."""
    if not isinstance(tree, dict):
        return {prefix}
    return set().union(*(_keys(v, f"{prefix}.{k}" if prefix else k) for k, v in tree.items()))


def _raw(name: str) -> dict:
    return yaml.safe_load((ROOT / "configs" / f"{name}.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def paper() -> Params:
    return load_params(ROOT / "configs" / "paper.yaml")


def test_both_configs_load_strictly_and_spell_out_every_key_but_the_derived() -> None:
    assert {"embedded", "paper", "scale"} <= set(available_configs(ROOT))
    derived = {f"train_gpt.model.{name}" for name in DERIVED_GPT_FIELDS}
    every_key = _keys(to_plain_config(Params())) - derived
    for name in ("embedded", "paper", "scale"):
        assert isinstance(load_params(ROOT / "configs" / f"{name}.yaml"), Params)
        assert _keys(_raw(name)) == every_key, name
    assert _keys(_raw("embedded")) == _keys(_raw("paper"))


def test_params_yaml_is_one_of_the_named_configs() -> None:
    """params.yaml holds the embedded default (or another named config after `make config`)."""
    assert current_config(ROOT) is not None, "params.yaml matches no file under configs/"


def test_embedded_config_is_the_mini_default() -> None:
    embedded = load_params(ROOT / "configs" / "embedded.yaml")
    assert embedded.data.source == "mini"
    assert embedded.train_gpt.model.n_embd < 768 and embedded.train_vqvae.model.width < 512


def test_scale_config_is_the_embedded_default_with_aistpp_sized_data() -> None:
    """configs/scale.yaml differs from configs/embedded.yaml in data.mini only (tests/test_mini.py checks
    the shape it generates)."""
    embedded, scale = _raw("embedded"), _raw("scale")
    assert scale["data"]["mini"] != embedded["data"]["mini"]
    scale["data"]["mini"] = embedded["data"]["mini"]
    assert scale == embedded
    assert load_params(ROOT / "configs" / "scale.yaml").data.source == "mini"


def test_paper_sizes_give_the_reference_parameter_counts(paper: Params) -> None:
    model = paper.train_gpt.model
    assert model.stack == "danceba"
    assert parameter_counts(model)["total"] == 250_725_889
    assert parameter_counts(dataclasses.replace(model, stack="bailando"))["total"] == 87_032_832
    with torch.device("meta"):
        assert count_parameters(SepVQVAE(paper.train_vqvae.model)) == 51_683_400
    assert model.vocab_up == model.vocab_down == paper.train_vqvae.model.l_bins == 512


def test_paper_schedule_is_the_reference_one_in_steps(paper: Params) -> None:
    gpt = paper.train_gpt
    assert paper.data.source == "aistpp"
    assert (gpt.optim.lr, gpt.optim.betas, gpt.train.batch_size, gpt.train.seed) == (
        3e-4,
        (0.5, 0.999),
        32,
        42,
    )
    assert gpt.train.max_steps == 300 * GPT_STEPS_PER_EPOCH
    assert gpt.optim.milestones == (250 * GPT_STEPS_PER_EPOCH, 400 * GPT_STEPS_PER_EPOCH)
    stage1, stage2 = paper.train_vqvae.stage1, paper.train_vqvae.stage2
    assert (stage1.optim.lr, stage1.optim.betas, stage1.train.batch_size, stage1.stride) == (
        3e-5,
        (0.5, 0.999),
        32,
        40,
    )
    assert (stage2.optim.lr, stage2.optim.betas, stage2.train.batch_size, stage2.stride) == (
        5e-5,
        (0.9, 0.999),
        8,
        8,
    )
    for phase in (stage1, stage2):  # 500 epochs, milestones at epochs 100 and 200
        steps_per_epoch = phase.train.max_steps // 500
        assert phase.optim.milestones == (100 * steps_per_epoch, 200 * steps_per_epoch)
    assert {gpt.train.amp, stage1.train.amp, stage2.train.amp} == {"bf16"}


def _project(tmp_path: Path, paper_text: str | None = None) -> Path:
    (tmp_path / "configs").mkdir()
    for name in ("embedded", "paper"):
        (tmp_path / "configs" / f"{name}.yaml").write_bytes((ROOT / "configs" / f"{name}.yaml").read_bytes())
    if paper_text is not None:
        (tmp_path / "configs" / "paper.yaml").write_text(paper_text, encoding="utf-8")
    (tmp_path / "params.yaml").write_bytes((ROOT / "configs" / "embedded.yaml").read_bytes())
    return tmp_path


def test_use_config_copies_the_file_byte_for_byte(tmp_path: Path) -> None:
    root = _project(tmp_path)
    assert current_config(root) == "embedded"
    params = use_config("paper", root)
    assert (root / "params.yaml").read_bytes() == (root / "configs" / "paper.yaml").read_bytes()
    assert params == load_params(root / "params.yaml")
    assert current_config(root) == "paper"
    assert [p.name for p in root.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def test_use_config_refuses_a_broken_file_and_keeps_params(tmp_path: Path) -> None:
    broken = (
        (ROOT / "configs" / "paper.yaml").read_text(encoding="utf-8").replace("n_head: 12", "n_heads: 12")
    )
    root = _project(tmp_path, broken)
    before = (root / "params.yaml").read_bytes()
    with pytest.raises(ConfigError, match=r"paper\.yaml.*train_gpt\.model\.n_heads"):
        use_config("paper", root)
    assert (root / "params.yaml").read_bytes() == before


def test_unknown_config_name_lists_the_choices(tmp_path: Path) -> None:
    root = _project(tmp_path)
    with pytest.raises(ConfigError, match=r"available: embedded, paper"):
        use_config("papper", root)
    with pytest.raises(ConfigError, match="plain name"):
        use_config("../params", root)
