"""The ``ablation`` flow: every variant of :data:`danceba.ablation.VARIANTS` under each seed, on the
experiment machinery of :mod:`pipelines.sweep_flow` (see :mod:`pipelines.flows`)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from danceba.ablation import Variant, select_variants, variant_fingerprint, variant_records_dir
from danceba.ablation_markdown import KEY_COLUMNS, format_ablation_markdown
from danceba.ablation_report import ablation_report, protocols
from danceba.atomic import write_text_atomic
from danceba.sweep import SeedRun, read_seed_records, seeds_to_run, sweep_seeds
from danceba.tracking import NullStageRun, StageRun
from pipelines.dvc_graph import dvc_stages
from pipelines.flow_runs import tracked_run
from pipelines.reproduce_flow import repro_in_order
from pipelines.sweep_flow import (
    METRICS_FILE,
    REPORTS_DIR,
    SEED_PARAMS,
    current_fingerprint,
    fitting_jobs,
    project_param,
    run_seed_runs,
    split_stages,
)

DEFAULT_ABLATION_SEEDS = 3


def ablation_runs(
    variants: Sequence[Variant],
    seeds: Sequence[int],
    fingerprints: Mapping[str, str],
    reports_root: Path,
    rerun: bool,
) -> list[SeedRun]:
    """Every (variant, seed) to run, variant by variant; without ``rerun``, those not finished yet."""
    runs = []
    for variant in variants:
        records_dir = variant_records_dir(reports_root, variant)
        fingerprint = fingerprints[variant.name]
        todo = seeds if rerun else seeds_to_run(seeds, read_seed_records(records_dir), fingerprint)
        overrides = tuple(variant.override_args())
        runs += [SeedRun(s, fingerprint, str(records_dir), variant.name, overrides) for s in todo]
    return runs


@flow(name="danceba-ablation", task_runner=ThreadPoolTaskRunner())  # `jobs` limits the runs at once
def ablation(
    project_root: str = ".",
    seeds: int | list[int] = DEFAULT_ABLATION_SEEDS,
    variants: list[str] | None = None,
    jobs: int | None = None,
    seed_retries: int = 1,
    seed_retry_delay_s: float = 5.0,
    rerun: bool = False,
    seed_params: list[str] | None = None,
    metrics_file: str = METRICS_FILE,
    reports_dir: str = REPORTS_DIR,
    download_retries: int = 3,
    download_retry_delay_s: float = 10.0,
) -> dict[str, Any]:
    """The paper's ablation: every variant of ``danceba.ablation.VARIANTS`` (or ``variants``) under each seed.

    Each (variant, seed) is the DVC experiment ``<variant>-seed-<s>`` (the variant's overrides and the
    seed's) and an MLflow child run of the ``ablation`` parent run; the upstream stages run once, first.
    Returns the report written to ``<reports>/ablation.json`` (and ``ablation.md``).
    """
    started = time.monotonic()
    root = Path(project_root).resolve()
    keys = list(seed_params or SEED_PARAMS)
    seed_list = sweep_seeds(seeds) if isinstance(seeds, int) else [int(s) for s in seeds]
    chosen = select_variants(variants)
    jobs = fitting_jobs(root, jobs)
    override_keys = list(dict.fromkeys(key for variant in chosen for key in variant.keys()))
    varied, upstream = split_stages(dvc_stages(root), [*keys, *override_keys], "seed and variant")
    reports_root = root / reports_dir
    params = {
        "seeds": seed_list,
        "variants": [v.name for v in chosen],
        "jobs": jobs,
        "seed_params": keys,
        "varied_stages": sorted(varied),
    }
    with tracked_run(root, "ablation", tags={"danceba.flow": "ablation"}, params=params) as parent:
        repro_in_order(root, upstream, parent.run_id, download_retries, download_retry_delay_s)
        base = current_fingerprint(root, upstream, keys)
        fingerprints = {v.name: variant_fingerprint(base, v) for v in chosen}
        runs = ablation_runs(chosen, seed_list, fingerprints, reports_root, rerun)
        run_seed_runs(
            root,
            runs,
            jobs=jobs,
            retries=seed_retries,
            retry_delay_s=seed_retry_delay_s,
            seed_params=keys,
            metrics_file=metrics_file,
            flow_name="ablation",
            parent_run_id=parent.run_id,
        )
        records = {v.name: read_seed_records(variant_records_dir(reports_root, v)) for v in chosen}
        report = ablation_report(
            chosen,
            seed_list,
            records,
            fingerprints,
            keys,
            wall_time_s=time.monotonic() - started,
            data_source=str(project_param(root, "data.source") or ""),
        )
        ran = {(run.variant, run.seed) for run in runs}
        report["skipped"] = {v.name: [s for s in seed_list if (v.name, s) not in ran] for v in chosen}
        json_path, md_path = write_ablation_reports(reports_root, report)
        log_ablation_summary(parent, report, json_path, md_path)
    return report


def write_ablation_reports(reports_dir: Path, report: Mapping[str, Any]) -> tuple[Path, Path]:
    """``<reports>/ablation.json`` and ``<reports>/ablation.md``."""
    json_path, md_path = reports_dir / "ablation.json", reports_dir / "ablation.md"
    write_text_atomic(json_path, json.dumps(report, indent=2) + "\n")
    write_text_atomic(md_path, format_ablation_markdown(report))
    return json_path, md_path


def log_ablation_summary(run: StageRun | NullStageRun, report: Mapping[str, Any], *paths: Path) -> None:
    """The Markdown table's metrics (``<variant>.<protocol>.<row>.<metric>.mean`` ...), run statuses as
    tags (``ablation.<variant>.seed.<s>``), the reports as artifacts (every other metric is in the JSON)."""
    metrics = {
        "ablation.n_ok": report["n_ok"],
        "ablation.n_failed": report["n_failed"],
        "ablation.wall_time_s": report["wall_time_s"],
    }
    tags = {}
    for name, part in report["variants"].items():
        for protocol in protocols(report):
            for row, metric, _ in KEY_COLUMNS:
                stats = part["summary"]["metrics"].get(f"{protocol}.{row}.{metric}") or {}
                for stat in ("mean", "std", "ci_low", "ci_high"):
                    if stats.get(stat) is not None:
                        metrics[f"{name}.{protocol}.{row}.{metric}.{stat}"] = stats[stat]
        tags |= {f"ablation.{name}.seed.{seed}": entry["status"] for seed, entry in part["seeds"].items()}
    run.log_metrics(metrics)
    run.set_tags(tags)
    for path in paths:
        run.log_artifact(path)
