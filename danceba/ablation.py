"""The paper's ablation: named variants of the configuration and the paper's numbers for them.

A :class:`Variant` is a name and a set of ``params.yaml`` overrides, applied to a DVC experiment exactly
like the seed (``dvc exp run -S key=value``). :data:`VARIANTS` is the one list of them; the ablation flow
(``python -m pipelines.flows ablation``) runs every variant under every seed as experiment
``<variant>-seed-<s>`` and keeps its records in ``reports/ablation/<variant>/``.

Override values are written as ``-S`` takes them (Hydra's override grammar, then DVC rewrites
params.yaml as YAML 1.2 and the strict loader reads it back as YAML 1.1): ``false`` becomes a boolean,
``none``, ``single``, ``bailando`` and ``exact`` stay strings. A bare ``off`` or ``no`` would come back
as a boolean, so no variant uses one (``tests/test_ablation.py`` checks the round trip through DVC's own
rewrite).

:data:`PAPER_TABLE2`: the paper's Table 2 (AIST++; ``None`` where the paper gives no number), each row
beside the variant (or result row) of ours that corresponds to it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ABLATION_DIR = "ablation"  # records: <reports>/ablation/<variant>/seed-<s>.json


@dataclass(frozen=True)
class Variant:
    """One configuration of the ablation: ``overrides`` are ``(params key, -S value)`` pairs."""

    name: str
    overrides: tuple[tuple[str, str], ...] = ()
    description: str = ""

    def override_args(self) -> list[str]:
        """The ``-S`` arguments: ``["train_gpt.model.pre=false", ...]``."""
        return [f"{key}={value}" for key, value in self.overrides]

    def keys(self) -> list[str]:
        """The params.yaml keys this variant sets."""
        return [key for key, _ in self.overrides]


VARIANTS: tuple[Variant, ...] = (
    Variant("danceba", (), "params.yaml as it is (Danceba: PRE, gated TGCA, PMMM)"),
    Variant("no_pre", (("train_gpt.model.pre", "false"),), "w/o PRE (no phase-based rhythm extraction)"),
    Variant("no_tgca", (("train_gpt.model.tgca_gate", "false"),), "w/o TGCA (attention without its gate)"),
    Variant("no_pmmm", (("train_gpt.model.pmmm", "none"),), "w/o PMMM (no Mamba motion modelling)"),
    Variant(
        "single_pmmm",
        (("train_gpt.model.pmmm", "single"), ("generate.decode", "exact")),
        "Danceba-Single (one Mamba for both body halves; decodes exact, the only decoder it supports)",
    ),
    Variant("bailando", (("train_gpt.model.stack", "bailando"),), "Bailando's cross-conditional GPT"),
)


def select_variants(names: Sequence[str] | None, variants: Sequence[Variant] = VARIANTS) -> list[Variant]:
    """The variants called ``names`` (in that order, without repeats); all of them for None or empty.

    An unknown name raises ValueError listing the known ones.
    """
    by_name = {variant.name: variant for variant in variants}
    if not names:
        return list(variants)
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise ValueError(f"variants {unknown}: unknown (known: {', '.join(by_name)})")
    return [by_name[name] for name in dict.fromkeys(names)]


def parse_variant_list(text: str) -> list[str]:
    """``"no_pre, no_tgca"`` -> ``["no_pre", "no_tgca"]`` (the Makefile's ``VARIANTS=a,b``)."""
    return [name.strip() for name in text.split(",") if name.strip()]


def variant_fingerprint(base_fingerprint: str, variant: Variant) -> str:
    """sha256 of the workspace fingerprint and the variant's overrides (a changed override re-runs)."""
    payload = {"base": base_fingerprint, "variant": variant.name, "overrides": variant.override_args()}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def variant_records_dir(reports_dir: str | Path, variant: Variant) -> Path:
    """``<reports>/ablation/<variant>``: the variant's per-seed records and logs."""
    return Path(reports_dir) / ABLATION_DIR / variant.name


# ---------------------------------------------------------------------------------------------
# The paper's Table 2
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaperRow:
    """One row of the paper's Table 2 and where ours is: ``variant``'s result row ``row``."""

    label: str
    variant: str
    row: str
    fid_k: float | None
    div_k: float | None
    bas: float | None


PAPER_TABLE2: tuple[PaperRow, ...] = (
    PaperRow("Ground Truth", "danceba", "ground_truth", 13.85, 7.82, 0.2374),
    PaperRow("w/o TGCA", "no_tgca", "model", 33.22, 6.74, None),
    PaperRow("w/o PMMM", "no_pmmm", "model", 25.24, 5.78, None),
    PaperRow("w/o PRE", "no_pre", "model", 20.62, 6.53, 0.2474),
    PaperRow("Danceba", "danceba", "model", 14.53, 7.67, 0.2779),
    PaperRow("Danceba-Single", "single_pmmm", "model", 82.50, None, None),
    PaperRow("Danceba-Parallel", "danceba", "model", 15.48, None, None),
)
