"""The ablation's JSON report: per variant, the sweep report of its seeds with a 95 % interval over seeds.

Every variant's part is :func:`danceba.sweep.sweep_report` of its records (status per seed, and per
metric of ``reports/metrics.json`` mean, sample std, min, max over the ``ok`` seeds), with one more pair
per metric: ``ci_low`` / ``ci_high``, a Student-t interval of the mean over seeds,
``mean ± t_{(1 + level) / 2, n - 1} · std / √n`` (level 0.95). Over 3-5 seeds a bootstrap over seeds
would only ever resample 3-5 numbers (its interval is too narrow); the t-interval assumes the seed
means are roughly normal and widens properly for small n. It needs n ≥ 2 (``None`` otherwise).
Plain Python on JSON-like data; ``pipelines/flows.py`` runs the experiments and calls it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from danceba.ablation import Variant
from danceba.sweep import STATUS_FAILED, STATUS_OK, SeedRecord, describe, sweep_report

CI_LEVEL = 0.95
INTERVAL_METHOD = "student-t over seeds"


def t_interval(mean: float, std: float | None, n: int, level: float = CI_LEVEL) -> tuple[float, float] | None:
    """``mean ± t_{(1 + level) / 2, n - 1} · std / √n``; None for fewer than 2 values."""
    if n < 2 or std is None:
        return None
    from scipy.stats import t

    half = float(t.ppf((1.0 + level) / 2.0, n - 1)) * std / math.sqrt(n)
    return mean - half, mean + half


def describe_over_seeds(values: Sequence[float], level: float = CI_LEVEL) -> dict[str, Any]:
    """:func:`danceba.sweep.describe` plus ``ci_low`` / ``ci_high`` (:func:`t_interval`, finite values)."""
    stats = describe(values)
    interval = t_interval(stats["mean"], stats["std"], stats["n"], level) if stats["n"] else None
    low, high = interval if interval else (None, None)
    return {**stats, "ci_low": low, "ci_high": high}


def ablation_report(
    variants: Sequence[Variant],
    seeds: Sequence[int],
    records: Mapping[str, Mapping[int, SeedRecord]],
    fingerprints: Mapping[str, str],
    seed_params: Sequence[str],
    *,
    wall_time_s: float,
    data_source: str = "",
) -> dict[str, Any]:
    """The whole ablation: ``{variants: {name: sweep report + overrides}, n_runs, n_ok, n_failed, ...}``.

    ``records`` / ``fingerprints``: per variant name. ``wall_time_s``: this invocation of the flow, from
    its start to the report; ``run_seconds`` adds up the recorded time of every ok or failed run of the
    current fingerprints (including runs a restart skipped). A run is not ok when failed, stale (recorded under another
    fingerprint) or missing.
    """
    parts = {}
    for variant in variants:
        part = sweep_report(
            seeds, records.get(variant.name, {}), fingerprints[variant.name], seed_params, describe_over_seeds
        )
        parts[variant.name] = {"overrides": variant.override_args(), "description": variant.description}
        parts[variant.name] |= part
    entries = [entry for part in parts.values() for entry in part["seeds"].values()]
    current = [e for e in entries if e["status"] in (STATUS_OK, STATUS_FAILED)]  # not stale, not missing
    return {
        "flow": "ablation",
        "seeds": [int(s) for s in dict.fromkeys(seeds)],
        "seed_params": list(seed_params),
        "interval": {"method": INTERVAL_METHOD, "level": CI_LEVEL, "ddof": 1},
        "data_source": data_source,
        "wall_time_s": round(float(wall_time_s), 3),
        "run_seconds": round(sum(float(e.get("seconds") or 0.0) for e in current), 3),
        "n_runs": len(entries),
        "n_ok": sum(e["status"] == STATUS_OK for e in entries),
        "n_failed": sum(e["status"] != STATUS_OK for e in entries),
        "variants": parts,
    }


def metric_stats(report: Mapping[str, Any], variant: str, path: str) -> dict[str, Any] | None:
    """The statistics of metric ``<protocol>.<row>.<metric>`` for ``variant``; None when absent."""
    part = report["variants"].get(variant)
    return None if part is None else part["summary"]["metrics"].get(path)


def protocols(report: Mapping[str, Any]) -> list[str]:
    """The evaluation protocols found in any variant's summary, in first-seen order."""
    found: dict[str, None] = {}
    for part in report["variants"].values():
        for path in part["summary"]["metrics"]:
            if path.count(".") >= 2:
                found.setdefault(path.rsplit(".", 2)[0], None)
    return list(found)
