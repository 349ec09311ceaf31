"""AIST++ scale without AIST++: the data stages, gt_features and evaluate on configs/scale.yaml, stage by stage.

    .venv/bin/python -m bench.bench_scale --out bench/out/scale.json                      # full scale
    .venv/bin/python -m bench.bench_scale --fraction 0.05 --out /tmp/scale.json           # a quick look
    .venv/bin/python -m bench.bench_scale --tokenize --tokenize-limit 100 --out ...       # + paper tokenize
    .venv/bin/python -m bench.bench_scale --train-vqvae-steps 3 --out ...                 # + paper VQ-VAE

In a temporary project folder (``--workdir`` to keep one): ``params.yaml`` = ``configs/scale.yaml``
(``--fraction`` scales its dataset, ``--threads`` sets ``compute.threads``), then every stage's command
from ``dvc.yaml`` (``fetch``, ``joints``, ``music_features``, ``gt_features``, ``evaluate``) is
run as its own process, as ``dvc repro`` would run it, with MLflow tracking off; each reports wall and CPU
seconds and its peak resident memory (``ru_maxrss`` of that process, from ``os.wait4``). The targets on 2
cores (issue 13): these stages together <= 10 minutes, none over 4 GiB.

``evaluate`` needs the ``generate`` stage's dances, which need trained models; they are stood in for by
the ground truth: every row folder (``model``, ``model_sham_music``, ``reconstruction``,
``random_codes``) holds the ground-truth dances of the ``evaluate.splits`` pieces (written in-process,
reported under ``stand_in``). Evaluate's cost depends on how many dances there are and how long they are,
not on how they move, so its timing stands; its metrics mean nothing.

``--tokenize``: the ``tokenize`` stage at the paper's VQ-VAE size (``configs/paper.yaml``: 51.7 M
parameters, untrained, seeded codebook; the paper's tokenize section: stride 8, no tempo copies), reported
apart from the total. ``--tokenize-limit N`` tokenizes the first N sequences of its splits only and
extrapolates to all of them from the measured windows per second (process start and model load
included, so the extrapolation errs long).

``--train-vqvae-steps N``: the ``train_vqvae`` stage at the paper's size (``configs/paper.yaml``'s
section: 240-frame windows, stride 40 in phase 1 and 8 in phase 2) for N steps per phase, validated on
``--eval-windows`` held-out windows at the end of each: its time and peak memory, beside what an array of
every training window would take (the stage cuts windows on demand: ``data/windows.MotionWindows``).

``--fraction F`` (for quick runs and the test): F of the training and no-split sequences and of the
ignore-list entries, and round(10 F) genres (at least 2, so that evaluate can pair other music); val and
test keep their 4 sequences per kept genre.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("fetch", "joints", "music_features", "gt_features", "evaluate")
STAND_IN_ROWS = ("model", "model_sham_music", "reconstruction", "random_codes")
TARGET_SECONDS = 600.0
TARGET_PEAK_MIB = 4096.0  # 4 GiB per stage


# ----------------------------------------------------------------------------------------------
# The temporary project
# ----------------------------------------------------------------------------------------------


def scaled_mini(mini: dict, fraction: float) -> dict:
    """``data.mini`` of configs/scale.yaml with its sequence counts scaled by ``fraction`` (docstring)."""
    if fraction == 1.0:
        return dict(mini)
    valtest = 2 * mini["dancers_per_music"] * len(mini["genres"])
    other = mini["sequences"] - mini["train_sequences"] - valtest
    genres = list(mini["genres"])[: max(2, round(len(mini["genres"]) * fraction))]
    train = max(2, round(mini["train_sequences"] * fraction))
    other = round(other * fraction)
    return {
        **mini,
        "genres": genres,
        "train_sequences": train,
        "sequences": train + other + 2 * mini["dancers_per_music"] * len(genres),
        "ignored_train": min(round(mini["ignored_train"] * fraction), train - 1),
        "ignored_other": min(round(mini["ignored_other"] * fraction), other),
    }


def write_project(workdir: Path, fraction: float, threads: int | None, tokenize: bool) -> dict:
    """Write ``workdir/params.yaml`` (configs/scale.yaml, scaled; with ``tokenize``, the paper's tokenize
    section) and return it as a dict. Validated by the strict loader."""
    from danceba.config import load_params

    params = yaml.safe_load((ROOT / "configs" / "scale.yaml").read_text(encoding="utf-8"))
    params["data"]["mini"] = scaled_mini(params["data"]["mini"], fraction)
    if threads is not None:
        params["compute"]["threads"] = threads
    if tokenize:
        paper = yaml.safe_load((ROOT / "configs" / "paper.yaml").read_text(encoding="utf-8"))
        params["tokenize"] = paper["tokenize"]
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    load_params(workdir / "params.yaml")
    return params


def stage_command(stage: str) -> list[str]:
    """The stage's command from dvc.yaml, run by this interpreter."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    argv = shlex.split(stages[stage]["cmd"])
    if argv[0] != "python":
        raise ValueError(f"dvc.yaml: stage {stage} does not start with `python`: {argv[0]!r}")
    return [sys.executable, *argv[1:]]


def stage_env() -> dict[str, str]:
    """The environment of every stage process: this project importable, offline and quiet, no MLflow."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))
    env |= {"DANCEBA_TRACKING": "off", "DO_NOT_TRACK": "true", "DVC_NO_ANALYTICS": "1"}
    env |= {"MLFLOW_DISABLE_TELEMETRY": "true", "TQDM_DISABLE": "1"}
    return env


def run_measured(name: str, argv: list[str], workdir: Path) -> dict:
    """Run one stage process in ``workdir``; its wall and CPU seconds and peak RSS (MiB). Its output goes
    to ``workdir/logs/<name>.log``; a failure raises with the log's tail."""
    log_path = workdir / "logs" / f"{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        start = time.perf_counter()
        process = subprocess.Popen(argv, cwd=workdir, env=stage_env(), stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        tail = log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise RuntimeError(f"stage {name} exited with {process.returncode}; {log_path}:\n{tail}")
    return {
        "seconds": round(seconds, 3),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),  # Linux: kilobytes
    }


# ----------------------------------------------------------------------------------------------
# Stand-ins for what the model stages would write
# ----------------------------------------------------------------------------------------------


def write_stand_in_dances(workdir: Path, splits: list[str]) -> int:
    """The ground truth of the ``splits`` pieces as every generated row (module docstring); returns the count."""
    import pyarrow.parquet as pq

    from danceba import tables
    from danceba.evaluation import write_dance

    index = pq.read_table(workdir / "data" / "sequences.parquet", columns=["sequence", "split", "music_id"])
    reader = tables.GroupReader(workdir / "data" / "joints.parquet")
    pieces = [row for row in index.to_pylist() if row["split"] in splits]
    for row in pieces:
        joints = reader.read(row["sequence"], "joints").reshape(-1, 24, 3)
        for folder in STAND_IN_ROWS:
            write_dance(
                workdir / "data" / "generated" / folder / f"{row['sequence']}.npz", joints, row["music_id"]
            )
    return len(pieces)


def write_paper_vqvae(path: Path, seed: int = 0) -> int:
    """An untrained paper-size VQ-VAE export (seeded weights, codebooks drawn N(0, 1)); the parameters of
    its SepVQVAE (51,683,400: the encoders tokenize uses, the decoders and codebooks; without the root
    decoder, which is exported too)."""
    import torch

    from danceba.config import load_params
    from danceba.models.vqvae import EMACodebook, SepVQVAER, count_parameters
    from danceba.train.export import save_export

    config = load_params(ROOT / "configs" / "paper.yaml").train_vqvae.model
    torch.manual_seed(seed)
    model = SepVQVAER(config).eval()
    for module in model.modules():
        if isinstance(module, EMACodebook):
            module.codebook.normal_()
            module.initialised.fill_(True)
    save_export(path, "SepVQVAER", model, config, {}, {"note": "untrained: bench_scale tokenize timing"})
    return count_parameters(model) - count_parameters(model.root_decoder)


def tokenize_windows(workdir: Path, splits: list[str], window: int, stride: int) -> dict[str, int]:
    """{sequence: windows} of the ``splits`` sequences (before the music-length check), in index order."""
    import pyarrow.parquet as pq

    index = pq.read_table(workdir / "data" / "sequences.parquet", columns=["sequence", "split", "n_frames"])
    return {
        row["sequence"]: max(0, (row["n_frames"] - window) // stride + 1)
        for row in index.to_pylist()
        if row["split"] in splits
    }


def run_tokenize(workdir: Path, params: dict, limit: int) -> dict:
    """The tokenize stage at the paper's VQ-VAE size on all (or the first ``limit``) sequences."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from danceba import tables

    section = params["tokenize"]
    n_parameters = write_paper_vqvae(workdir / "data" / "models" / "vqvae.pt")
    windows = tokenize_windows(workdir, section["splits"], section["window"], section["stride"])
    index_path = workdir / "data" / "sequences.parquet"
    if limit and limit < len(windows):
        full_index = workdir / "data" / "sequences_all.parquet"
        index_path.rename(full_index)
        table = pq.read_table(full_index)
        keep = pc.is_in(table.column("sequence"), value_set=pa.array(list(windows)[:limit]))
        tables.write_table(index_path, table.filter(keep), tables.file_metadata(full_index))
    try:
        measured = run_measured("tokenize", stage_command("tokenize"), workdir)
    finally:
        if limit and limit < len(windows):
            index_path.unlink()
            (workdir / "data" / "sequences_all.parquet").rename(index_path)
    done = json.loads((workdir / "reports" / "tokens.json").read_text(encoding="utf-8"))["windows"]
    measured_windows = sum(done.values())
    all_windows = sum(windows.values())
    rate = measured_windows / measured["seconds"]
    return {
        **measured,
        "sepvqvae_parameters": n_parameters,
        "sequences": min(limit, len(windows)) if limit else len(windows),
        "windows": measured_windows,
        "windows_per_second": round(rate, 2),
        "all_sequences": len(windows),
        "all_windows": all_windows,
        "extrapolated_seconds_all": round(all_windows / rate, 1),
        "tokenize_section": section,
    }


def paper_vqvae_section(steps: int, eval_windows: int) -> dict:
    """``configs/paper.yaml``'s ``train_vqvae`` for ``steps`` steps per phase, one validation at the end."""
    section = yaml.safe_load((ROOT / "configs" / "paper.yaml").read_text(encoding="utf-8"))["train_vqvae"]
    for phase in ("stage1", "stage2"):
        train = section[phase]["train"]
        train.update(max_steps=steps, log_every=1, eval_every=steps, checkpoint_every=steps)
        section[phase]["optim"]["milestones"] = []
    section["max_eval_windows"] = eval_windows
    return section


def run_train_vqvae(workdir: Path, params: dict, steps: int, eval_windows: int) -> dict:
    """The train_vqvae stage at the paper's size for ``steps`` steps per phase (module docstring)."""
    section = paper_vqvae_section(steps, eval_windows)
    params = {**params, "train_vqvae": section}
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    measured = run_measured("train_vqvae", stage_command("train_vqvae"), workdir)
    windows, arrays = {}, {}
    for phase, copies in (("stage1", 1), ("stage2", 2)):  # phase 2's array also had a root-velocity copy
        cut = section[phase]
        windows[phase] = sum(
            tokenize_windows(workdir, section["train_splits"], cut["window"], cut["stride"]).values()
        )
        arrays[phase] = round(copies * windows[phase] * cut["window"] * 72 * 4 / 2**20, 1)
    return {
        **measured,
        "steps_per_phase": steps,
        "eval_windows": eval_windows,
        "training_windows": windows,
        "all_windows_as_arrays_mib": arrays,  # what the stage no longer builds
    }


# ----------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------


def run(
    workdir: Path,
    fraction: float,
    threads: int | None,
    tokenize: bool,
    tokenize_limit: int,
    vqvae_steps: int = 0,
    eval_windows: int = 32,
) -> dict:
    """Every measurement as a JSON-ready dict."""
    params = write_project(workdir, fraction, threads, tokenize)
    stages: dict[str, dict] = {}
    stand_in: dict = {}
    for stage in STAGES:
        if stage == "evaluate":
            start = time.perf_counter()
            pieces = write_stand_in_dances(workdir, params["evaluate"]["splits"])
            stand_in = {
                "seconds": round(time.perf_counter() - start, 3),
                "pieces": pieces,
                "rows": STAND_IN_ROWS,
            }
        stages[stage] = run_measured(stage, stage_command(stage), workdir)
        print(
            f"{stage:<16}{stages[stage]['seconds']:>9.1f} s{stages[stage]['peak_rss_mib']:>9.0f} MiB",
            flush=True,
        )
    dataset = json.loads((workdir / "reports" / "dataset.json").read_text(encoding="utf-8"))
    total = sum(s["seconds"] for s in stages.values())
    peak = max(s["peak_rss_mib"] for s in stages.values())
    results = {
        "config": "configs/scale.yaml",
        "fraction": fraction,
        "data_mini": params["data"]["mini"],
        "compute_threads": params["compute"]["threads"],
        "cpus": os.cpu_count(),
        "dataset": dataset,
        "stages": stages,
        "stand_in": stand_in,
        "total_seconds": round(total, 3),
        "max_peak_rss_mib": peak,
        "targets": {
            "total_seconds": TARGET_SECONDS,
            "peak_rss_mib": TARGET_PEAK_MIB,
            "met": total <= TARGET_SECONDS and peak <= TARGET_PEAK_MIB,
            "note": "the targets are for the full scale (fraction 1) on 2 cores",
        },
    }
    if tokenize:
        results["tokenize"] = run_tokenize(workdir, params, tokenize_limit)
        row = results["tokenize"]
        print(f"{'tokenize (paper)':<16}{row['seconds']:>9.1f} s{row['peak_rss_mib']:>9.0f} MiB", flush=True)
    if vqvae_steps:
        results["train_vqvae"] = run_train_vqvae(workdir, params, vqvae_steps, eval_windows)
        row = results["train_vqvae"]
        print(f"{'train_vqvae':<16}{row['seconds']:>9.1f} s{row['peak_rss_mib']:>9.0f} MiB", flush=True)
    return results


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench/out/scale.json", help="where to write the JSON results")
    parser.add_argument("--fraction", type=float, default=1.0, help="of AIST++'s size (default: 1)")
    parser.add_argument("--threads", type=int, default=None, help="compute.threads (default: the config's)")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="keep the project here (default: a temp folder)"
    )
    parser.add_argument(
        "--tokenize", action="store_true", help="also time tokenize at the paper's VQ-VAE size"
    )
    parser.add_argument(
        "--tokenize-limit", type=int, default=0, help="tokenize the first N sequences (0 = all)"
    )
    parser.add_argument(
        "--train-vqvae-steps", type=int, default=0, help="also train the paper's VQ-VAE N steps per phase"
    )
    parser.add_argument(
        "--eval-windows", type=int, default=32, help="held-out windows of that run's validation"
    )
    args = parser.parse_args(argv)
    if not 0 < args.fraction <= 1:
        parser.error(f"--fraction: expected a value in (0, 1], got {args.fraction}")
    with tempfile.TemporaryDirectory(prefix="bench_scale_") as folder:
        workdir = args.workdir or Path(folder)
        results = run(
            workdir.resolve(),
            args.fraction,
            args.threads,
            args.tokenize,
            args.tokenize_limit,
            args.train_vqvae_steps,
            args.eval_windows,
        )
    print(f"{'total':<16}{results['total_seconds']:>9.1f} s{results['max_peak_rss_mib']:>9.0f} MiB (max)")
    from danceba.atomic import write_text_atomic

    write_text_atomic(args.out, json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return results


if __name__ == "__main__":
    main()
