"""Seed sweeps: per-seed records, which seeds are done, and the mean ± std summary of their metrics.

A sweep trains, generates and evaluates the same configuration under N seeds (the paper's protocol: 5)
and reports every metric as mean ± std over the seeds that finished. Everything here is plain Python
on JSON-like data; ``pipelines/flows.py`` runs the seeds and calls it.

Bookkeeping: each seed leaves one record, ``<records_dir>/seed-<s>.json`` (written atomically), with
its status (``ok`` / ``failed``), attempts, metrics (the ``reports/metrics.json`` of its DVC
experiment), the experiment's name and git rev, and the sweep *fingerprint*: a hash of everything
the result depends on except the seed (git commit, uncommitted code changes, params without the seed
keys, the upstream stages' locked hashes). A restarted sweep skips exactly the seeds whose record is
``ok`` with the current fingerprint; a failed seed, or one recorded under other code/params/data,
runs again. The records (not ``dvc exp show``) are the source of truth for skipping: they survive
``dvc exp gc`` and say why a seed failed; the DVC experiment rev in each record links to the outputs.
The ablation (``danceba.ablation``) reuses all of it: a :class:`SeedRun` is one experiment, a seed
under a variant's extra overrides (``<variant>-seed-<s>``), with one records folder per variant.

Metrics: ``reports/metrics.json`` is ``{protocol: {row: {metric: value}}}`` plus the protocol card
under the top-level key ``"protocol"`` (``danceba.evaluation.PROTOCOL_CARD_KEY``), which records choices,
not results: :func:`metric_values` drops it before anything is summarised or logged. The Markdown table
leaves out the per-seed bootstrap bounds (``*_ci_low`` / ``*_ci_high``; they stay in the JSON summary):
across seeds, the spread of the means is the interval that matters.

Statistics: ``std`` is the *sample* standard deviation (``ddof = 1``, the usual "mean ± std over 5
seeds" in papers); it is ``None`` for a single value. Non-finite values (NaN/inf) are left out of the
statistics and counted in ``nonfinite``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from danceba.atomic import write_text_atomic
from danceba.nested import number_leaves

DDOF = 1
PROTOCOL_CARD_KEY = "protocol"  # = danceba.evaluation.PROTOCOL_CARD_KEY (not imported: keeps this light)
INTERVAL_SUFFIXES = ("_ci_low", "_ci_high")
STATUS_OK = "ok"
STATUS_FAILED = "failed"
SeedStatus = Literal["ok", "failed"]
_RECORD_NAME = re.compile(r"^seed-(-?\d+)\.json$")


# ---------------------------------------------------------------------------------------------
# Per-seed records
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedRecord:
    """What one seed of a sweep left behind (one JSON file per seed)."""

    seed: int
    status: SeedStatus
    attempts: int
    fingerprint: str
    metrics: dict[str, Any] | None = None
    experiment: str = ""
    rev: str = ""
    error: str = ""
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    variant: str = ""

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON-ready dict."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class SeedRun:
    """One experiment to run: ``seed``, under a variant's ``overrides`` (none in a plain sweep).

    ``fingerprint``: what its record must carry to count as done; ``records_dir``: where the record
    (``seed-<s>.json``) and the log (``<name>.log``) go.
    """

    seed: int
    fingerprint: str
    records_dir: str
    variant: str = ""
    overrides: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The DVC experiment (and MLflow run) name: ``seed-<s>`` or ``<variant>-seed-<s>``."""
        return experiment_name(self.seed, self.variant)

    def all_overrides(self, seed_params: Sequence[str]) -> list[str]:
        """The ``-S`` overrides of this experiment: the variant's, then every seed key set to the seed."""
        return [*self.overrides, *seed_overrides(self.seed, seed_params)]


def experiment_name(seed: int, variant: str = "") -> str:
    """The DVC experiment name of a seed: ``seed-<s>``, or ``<variant>-seed-<s>`` for a variant."""
    return f"{variant}-seed-{int(seed)}" if variant else f"seed-{int(seed)}"


def seed_overrides(seed: int, seed_params: Sequence[str]) -> list[str]:
    """``["<key>=<seed>", ...]``: the ``dvc exp run -S`` overrides that set every seed key to ``seed``."""
    if not seed_params:
        raise ValueError("seed_params: at least one params.yaml key must carry the seed")
    return [f"{key}={int(seed)}" for key in seed_params]


def seed_record_path(records_dir: str | Path, seed: int) -> Path:
    """``<records_dir>/seed-<s>.json``."""
    return Path(records_dir) / f"{experiment_name(seed)}.json"


def write_seed_record(records_dir: str | Path, record: SeedRecord) -> Path:
    """Write ``record`` atomically to its file; returns the path."""
    path = seed_record_path(records_dir, record.seed)
    write_text_atomic(path, json.dumps(record.to_json(), indent=2, allow_nan=True) + "\n")
    return path


def read_seed_record(path: str | Path) -> SeedRecord:
    """Load one record; a file that is not a seed record raises ValueError naming it."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        known = {f.name for f in dataclasses.fields(SeedRecord)}
        if not isinstance(data, dict) or not {"seed", "status", "attempts", "fingerprint"} <= set(data):
            raise ValueError("missing one of seed, status, attempts, fingerprint")
        if data["status"] not in (STATUS_OK, STATUS_FAILED):
            raise ValueError(f"status {data['status']!r} is neither {STATUS_OK!r} nor {STATUS_FAILED!r}")
        return SeedRecord(**{k: v for k, v in data.items() if k in known})
    except (json.JSONDecodeError, TypeError, ValueError) as error:
        raise ValueError(f"{path}: not a readable seed record ({error})") from error


def read_seed_records(records_dir: str | Path) -> dict[int, SeedRecord]:
    """``{seed: record}`` of every ``seed-<s>.json`` in ``records_dir`` ({} if the folder is missing)."""
    records_dir = Path(records_dir)
    if not records_dir.is_dir():
        return {}
    records = {}
    for path in sorted(records_dir.iterdir()):
        match = _RECORD_NAME.match(path.name)
        if match:
            record = read_seed_record(path)
            if record.seed != int(match.group(1)):
                raise ValueError(f"{path}: holds seed {record.seed}, its name says {match.group(1)}")
            records[record.seed] = record
    return records


def finished_seeds(records: Mapping[int, SeedRecord], fingerprint: str) -> set[int]:
    """Seeds recorded ``ok`` under ``fingerprint`` (a failure, or another fingerprint, is not done)."""
    return {s for s, r in records.items() if r.status == STATUS_OK and r.fingerprint == fingerprint}


def seeds_to_run(seeds: Iterable[int], records: Mapping[int, SeedRecord], fingerprint: str) -> list[int]:
    """The requested ``seeds`` (in order, without repeats) that are not finished yet."""
    done = finished_seeds(records, fingerprint)
    return [s for s in dict.fromkeys(int(s) for s in seeds) if s not in done]


def sweep_seeds(n_seeds: int, first: int = 0) -> list[int]:
    """The default seed list ``[first, first + 1, ..., first + n_seeds - 1]``."""
    if n_seeds < 1:
        raise ValueError(f"seeds: need at least 1 seed, got {n_seeds}")
    return list(range(first, first + n_seeds))


def sweep_fingerprint(
    baseline_rev: str,
    code_diff: str,
    params: Mapping[str, Any],
    seed_params: Sequence[str],
    upstream_lock: Mapping[str, Any],
) -> str:
    """sha256 of what a seed's result depends on, apart from the seed.

    ``baseline_rev``: the git commit the experiments branch from; ``code_diff``: uncommitted changes
    to tracked files (``git diff HEAD`` without dvc.lock/params.yaml); ``params``: the parsed
    params.yaml (the ``seed_params`` keys are dropped); ``upstream_lock``: the dvc.lock entries of the
    stages the sweep shares (so regenerated data changes the fingerprint).
    """
    payload = {
        "baseline_rev": baseline_rev,
        "code_diff": hashlib.sha256(code_diff.encode("utf-8")).hexdigest(),
        "params": without_keys(params, seed_params),
        "upstream_lock": upstream_lock,
    }
    text = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def without_keys(params: Mapping[str, Any], dotted_keys: Iterable[str]) -> dict[str, Any]:
    """A deep copy of ``params`` with the dotted keys (``a.b.c``) removed (missing keys are ignored)."""
    copy = json.loads(json.dumps(params, default=str))
    for key in dotted_keys:
        *parents, leaf = key.split(".")
        node: Any = copy
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    return copy


# ---------------------------------------------------------------------------------------------
# Summary
# ---------------------------------------------------------------------------------------------


def metric_values(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """A ``metrics.json`` without its protocol card (the choices, not the results)."""
    return {key: value for key, value in metrics.items() if key != PROTOCOL_CARD_KEY}


def describe(values: Sequence[float]) -> dict[str, Any]:
    """``{mean, std, min, max, n, nonfinite}`` of ``values`` (std: sample, ddof 1; None when n < 2)."""
    array = np.asarray(values, dtype=np.float64)
    finite = array[np.isfinite(array)]
    n = int(finite.size)
    if n == 0:
        return {"mean": None, "std": None, "min": None, "max": None, "n": 0, "nonfinite": int(array.size)}
    return {
        "mean": float(finite.mean()),
        "std": float(finite.std(ddof=DDOF)) if n > DDOF else None,
        "min": float(finite.min()),
        "max": float(finite.max()),
        "n": n,
        "nonfinite": int(array.size - n),
    }


def summarize(
    results: Mapping[int, Mapping[str, Any]], stats: Callable[[Sequence[float]], dict[str, Any]] = describe
) -> dict[str, Any]:
    """Statistics over seeds of every numeric metric (``stats``: :func:`describe` or a superset of it).

    ``results``: ``{seed: metrics}``, each ``metrics`` the nested JSON of one seed's
    ``reports/metrics.json`` (``{protocol: {row: {metric: value}}}``; a protocol card is skipped).
    Returns ``{"seeds": [...], "ddof": 1, "metrics": {"<protocol>.<row>.<metric>": stats(...)}}``,
    metric paths in the order they first appear. A metric missing from some seeds is described over the seeds that have it.
    """
    seeds = sorted(int(s) for s in results)
    values: dict[str, list[float]] = {}
    for seed in seeds:
        for path, value in number_leaves(metric_values(results[seed])).items():
            values.setdefault(path, []).append(value)
    return {"seeds": seeds, "ddof": DDOF, "metrics": {path: stats(v) for path, v in values.items()}}


def sweep_report(
    seeds: Sequence[int],
    records: Mapping[int, SeedRecord],
    fingerprint: str,
    seed_params: Sequence[str],
    stats: Callable[[Sequence[float]], dict[str, Any]] = describe,
) -> dict[str, Any]:
    """The sweep's JSON report: status per requested seed and the summary (``stats``) over the ``ok`` ones.

    A seed's status is its record's (``ok`` / ``failed``), ``stale`` when the record is from another
    fingerprint, ``missing`` without a record. ``n_failed`` counts every seed that is not ``ok``.
    """
    status = {}
    for seed in dict.fromkeys(int(s) for s in seeds):
        record = records.get(seed)
        if record is None:
            status[str(seed)] = {"status": "missing"}
            continue
        status[str(seed)] = {
            "status": record.status if record.fingerprint == fingerprint else "stale",
            "attempts": record.attempts,
            "experiment": record.experiment,
            "rev": record.rev,
            "error": record.error,
            "seconds": record.seconds,
        }
    ok = {
        s: records[s].metrics or {} for s in (int(k) for k, v in status.items() if v["status"] == STATUS_OK)
    }
    return {
        "fingerprint": fingerprint,
        "seed_params": list(seed_params),
        "seeds": status,
        "n_ok": len(ok),
        "n_failed": sum(v["status"] != STATUS_OK for v in status.values()),  # failed, missing or stale
        "summary": summarize(ok, stats),
    }


# ---------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------


def decimals_for(value: float, significant: int = 4) -> int:
    """Decimals that show ``value`` with ``significant`` digits (28.16 -> 2, 0.2332 -> 4, 1234 -> 0)."""
    if value == 0 or not math.isfinite(value):
        return significant - 1
    return min(12, max(0, significant - 1 - math.floor(math.log10(abs(value)))))


def format_cell(stats: Mapping[str, Any], significant: int = 4) -> str:
    """``mean ± std [min, max]``, all with the decimals that give the mean ``significant`` digits.

    A single seed gives ``mean [min, max]`` (no std); no finite value gives ``—``.
    """
    if stats["n"] == 0:
        return "—"
    decimals = decimals_for(stats["mean"], significant)
    cell = f"{stats['mean']:.{decimals}f}"
    if stats["std"] is not None:
        cell += f" ± {stats['std']:.{decimals}f}"
    return f"{cell} [{stats['min']:.{decimals}f}, {stats['max']:.{decimals}f}]"


def split_metric_path(path: str) -> tuple[str, str, str]:
    """``"a.b.row.metric"`` -> ``("a.b", "row", "metric")``; shorter paths get empty parts."""
    parts = path.split(".")
    metric = parts[-1]
    row = parts[-2] if len(parts) >= 2 else ""
    return ".".join(parts[:-2]), row, metric


def format_sweep_table(summary: Mapping[str, Any], significant: int = 4) -> str:
    """Markdown: one table per protocol, a row per result row, a column per metric.

    Cells are ``mean ± std [min, max]`` over the seeds in ``summary`` (from :func:`summarize`); the
    per-seed bootstrap bounds (``*_ci_low``, ``*_ci_high``) are not shown.
    """
    groups: dict[str, dict[str, dict[str, Mapping[str, Any]]]] = {}
    for path, stats in summary["metrics"].items():
        group, row, metric = split_metric_path(path)
        if metric.endswith(INTERVAL_SUFFIXES):
            continue
        groups.setdefault(group, {}).setdefault(row, {})[metric] = stats
    seeds = ", ".join(str(s) for s in summary["seeds"]) or "none"
    lines = [
        f"Mean ± sample std (ddof={summary['ddof']}) [min, max] over {len(summary['seeds'])} seeds ({seeds}).",
        "",
    ]
    if not groups:
        return "\n".join([*lines, "No finished seeds: nothing to summarise.", ""])
    for group, rows in groups.items():
        metrics = list(dict.fromkeys(m for cells in rows.values() for m in cells))
        if group:
            lines += [f"### {group}", ""]
        lines.append("| " + " | ".join(["row", *metrics]) + " |")
        lines.append("|" + "---|" * (len(metrics) + 1))
        for row, cells in rows.items():
            values = [format_cell(cells[m], significant) if m in cells else "—" for m in metrics]
            lines.append("| " + " | ".join([row or "value", *values]) + " |")
        lines.append("")
    return "\n".join(lines)


def format_status_table(report: Mapping[str, Any]) -> str:
    """Markdown: one line per seed with its status, attempts, experiment and error."""
    lines = ["| seed | status | attempts | experiment | error |", "|---|---|---|---|---|"]
    for seed, entry in report["seeds"].items():
        error = str(entry.get("error", "")).replace("|", "\\|").replace("\n", " ")[:200]
        lines.append(
            f"| {seed} | {entry['status']} | {entry.get('attempts', '')} | {entry.get('experiment', '')} | {error} |"
        )
    return "\n".join(lines) + "\n"


def format_sweep_markdown(report: Mapping[str, Any], significant: int = 4) -> str:
    """The whole ``sweep.md``: a title, the status per seed, then :func:`format_sweep_table`."""
    title = f"# Seed sweep: {report['n_ok']} ok, {report['n_failed']} not ok\n\n"
    return title + format_status_table(report) + "\n" + format_sweep_table(report["summary"], significant)
