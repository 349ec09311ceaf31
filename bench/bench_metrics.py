"""Benchmark: motion features and metrics against per-frame loops and the reference figures.

    OMP_NUM_THREADS=1 .venv/bin/python -m bench.bench_metrics --out bench/out/metrics.json

Times (wall clock, best of several runs where cheap) kinetic and geometric features of one 1200-frame
sequence against an in-bench per-frame loop transcription and the reference code's figures
(performance-targets.md: 1.06 s and 0.40 s), diversity over 1,363 x 72 features against a Python double
loop, and a full metric run (40 predictions + ~1,363 ground-truth random-walk sequences, ~1.1 M frames)
from scratch and with ground-truth features cached.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable

import numpy as np

from danceba.atomic import write_text_atomic
from danceba.features.motion import (
    BAILANDO,
    BODY_SCALES,
    GEOMETRIC_FEATURES,
    SMPL_JOINT_NAMES,
    extract_motion_features,
    geometric_features,
    kinetic_features,
)
from danceba.metrics import BAILANDO as BAILANDO_METRICS
from danceba.metrics import compute_metrics, diversity

REFERENCE_SECONDS = {"kinetic_1200": 1.06, "geometric_1200": 0.40, "diversity_1363": 1.3, "full_run": 1418.0}
TARGETS = {"kinetic_speedup": 100.0, "geometric_speedup": 100.0, "diversity_s": 0.020, "full_run_s": 15.0}


def best_time(fn: Callable[[], object], repeat: int) -> float:
    """Smallest wall time of ``repeat`` calls, in seconds."""
    return min(timed(fn)[1]["wall_s"] for _ in range(repeat))


def timed(fn: Callable[[], object]) -> tuple[object, dict[str, float]]:
    """Run fn once; return its result and {"wall_s", "cpu_s"} (process CPU time: robust to a busy host)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}


def random_walk_dance(rng: np.random.Generator, frames: int) -> np.ndarray:
    """(frames, 24, 3) float32: a random body shape, each joint on a small random walk, a drifting root."""
    body = rng.normal(scale=0.3, size=(1, 24, 3))
    jitter = np.cumsum(rng.normal(scale=0.004, size=(frames, 24, 3)), axis=0)
    drift = np.cumsum(rng.normal(scale=0.01, size=(frames, 1, 3)), axis=0)
    return (body + jitter + drift).astype(np.float32)


def loop_kinetic(p: np.ndarray, bug: bool = True, ft: float = 1 / 60, w: int = 2) -> np.ndarray:
    """Per joint, per frame loop over the published kinetic formulas (y up): the baseline."""
    T, out = len(p), []
    for j in range(p.shape[1]):
        kh = kv = ee = 0.0
        for i in range(1, T):
            v, n = np.zeros(3), 0
            for k in range(-w, w + 1):
                if 0 <= i + k - 1 and i + k < T:
                    v += p[i + k, j] - p[i + k - 1, j]
                    n += 1
            v = v / (n * ft)
            kh, kv = kh + v[0] ** 2 + v[2] ** 2, kv + v[1] ** 2
            a, n = np.zeros(3), 0
            for k in range(-w, w + 1):
                if 0 <= i + k - 1 and i + k + 1 < T:
                    v1 = p[i + k, j] - p[i + k - 1, j] / ft if bug else (p[i + k, j] - p[i + k - 1, j]) / ft
                    a += ((p[i + k + 1, j] - p[i + k, j]) / ft - v1) / ft
                    n += 1
            ee += np.linalg.norm(a / n)
        out += [kh / (T - 1), kv / (T - 1), ee / (T - 1)]
    return np.array(out, dtype=np.float32)


def loop_geometric(p: np.ndarray, tpf: float = 1 / 120) -> np.ndarray:
    """Per frame, per feature loop over the 32 geometric features (y up): the baseline."""
    index = {n: i for i, n in enumerate(SMPL_JOINT_NAMES)}
    rows = []
    for t in range(1, len(p)):
        virtual = {
            "zero": np.zeros(3),
            "y_unit": np.array([0.0, 1, 0]),
            "minus_y_unit": np.array([0.0, -1, 0]),
        }
        virtual["y_min"] = np.array([0.0, p[t, :, 1].min(), 0.0])
        row = []
        for kind, names, arg in GEOMETRIC_FEATURES:
            a, b, c, d = (virtual[n] if n in virtual else p[t, index[n]] for n in names)
            pa, pc, pd = (p[t - 1, index[n]] if n in index else None for n in (names[0], names[2], names[3]))
            with np.errstate(invalid="ignore", divide="ignore"):
                if kind == "angle":
                    u, v = b - a, d - c
                    ang = np.degrees(np.arccos(np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v))))
                    row.append(arg[0] < ang < arg[1])
                    continue
                th = arg[0] * BODY_SCALES[arg[1]]
                if kind == "fast":
                    row.append(np.linalg.norm(a - pa) / tpf > th)
                elif kind in ("move", "nmove"):
                    vel = (c - a - (pc - pa)) if kind == "move" else (d - a - (pd - pa))
                    direction = b - a if kind == "move" else np.cross(c - a, b - a)
                    row.append(np.dot(vel, direction) / np.linalg.norm(direction) / tpf > th)
                elif kind == "plane":
                    normal = np.cross(c - a, b - a)
                    row.append(np.dot(normal, d - a) / np.linalg.norm(normal) > th)
                else:
                    row.append(np.dot(b - a, d - c) / np.linalg.norm(b - a) > th)
        rows.append(row)
    return np.array(rows, dtype=np.float32).mean(axis=0)


def loop_diversity(x: np.ndarray) -> float:
    """Python double loop over pairs i < j: the baseline."""
    n, total = len(x), 0.0
    for i in range(n):
        for j in range(i + 1, n):
            total += np.linalg.norm(x[i] - x[j])
    return total / (n * (n - 1) / 2)


def bench_single_sequence(rng: np.random.Generator, repeat: int) -> dict:
    p = random_walk_dance(rng, 1200).astype(np.float64)
    out = {}
    for name, fast, loop, ref in (
        ("kinetic", lambda: kinetic_features(p), lambda: loop_kinetic(p), REFERENCE_SECONDS["kinetic_1200"]),
        (
            "geometric",
            lambda: geometric_features(p),
            lambda: loop_geometric(p),
            REFERENCE_SECONDS["geometric_1200"],
        ),
    ):
        t_fast = best_time(fast, repeat)
        start = time.perf_counter()
        want = loop()
        t_loop = time.perf_counter() - start
        err = np.abs(fast() - want) / np.maximum(np.abs(want), 1.0)
        out[name] = {
            "vectorised_s": t_fast,
            "loop_s": t_loop,
            "speedup_vs_loop": t_loop / t_fast,
            "speedup_vs_reference": ref / t_fast,
            "max_rel_diff_vs_loop": float(err.max()),
        }
    return out


def bench_diversity(rng: np.random.Generator, repeat: int) -> dict:
    x = rng.normal(size=(1363, 72))
    t_fast = best_time(lambda: diversity(x), repeat)
    t_cpu = min(timed(lambda: diversity(x))[1]["cpu_s"] for _ in range(repeat))
    t_pdist = best_time(lambda: diversity(x, "pdist"), repeat)
    start = time.perf_counter()
    want = loop_diversity(x)
    t_loop = time.perf_counter() - start
    return {
        "vectorised_s": t_fast,
        "vectorised_cpu_s": t_cpu,
        "pdist_s": t_pdist,
        "loop_s": t_loop,
        "speedup_vs_loop": t_loop / t_fast,
        "rel_diff": abs(diversity(x) - want) / want,
    }


def bench_full_run(rng: np.random.Generator, n_gt: int, mean_gt_frames: int, n_pred: int) -> dict:
    lengths = rng.integers(mean_gt_frames // 2, 3 * mean_gt_frames // 2 + 1, size=n_gt)
    gt = [random_walk_dance(rng, int(n)) for n in lengths]
    preds = [random_walk_dance(rng, 1320) for _ in range(n_pred)]  # capped to 1200 by the protocol
    (gt_k, gt_g), t_gt = timed(lambda: extract_motion_features(gt, BAILANDO, prediction=False))
    (pred_k, pred_g), t_pred = timed(lambda: extract_motion_features(preds, BAILANDO, prediction=True))
    metrics, t_metrics = timed(lambda: compute_metrics(pred_k, pred_g, gt_k, gt_g, BAILANDO_METRICS))
    out = {"gt_sequences": n_gt, "gt_frames": int(lengths.sum()), "pred_sequences": n_pred}
    for clock in ("wall_s", "cpu_s"):
        out[f"gt_features_{clock}"] = t_gt[clock]
        out[f"pred_features_{clock}"] = t_pred[clock]
        out[f"metrics_{clock}"] = t_metrics[clock]
        out[f"from_scratch_{clock}"] = t_gt[clock] + t_pred[clock] + t_metrics[clock]
        out[f"gt_cached_{clock}"] = t_pred[clock] + t_metrics[clock]
    out["metrics"] = metrics
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench/out/metrics.json", help="JSON file to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=20, help="runs per fast measurement (best kept)")
    parser.add_argument("--gt-sequences", type=int, default=1363)
    parser.add_argument("--mean-gt-frames", type=int, default=810)
    parser.add_argument("--pred-sequences", type=int, default=40)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    single = bench_single_sequence(rng, args.repeat)
    div = bench_diversity(rng, max(1, args.repeat // 2))
    full = bench_full_run(rng, args.gt_sequences, args.mean_gt_frames, args.pred_sequences)
    result = {
        "threads": os.environ.get("OMP_NUM_THREADS"),
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],  # wall times are only comparable on an idle host
        "reference_seconds": REFERENCE_SECONDS,
        "targets": TARGETS,
        "single_sequence_1200": single,
        "diversity_1363x72": div,
        "full_run": full,
        "meets_targets": {
            "kinetic": single["kinetic"]["speedup_vs_reference"] >= TARGETS["kinetic_speedup"],
            "geometric": single["geometric"]["speedup_vs_reference"] >= TARGETS["geometric_speedup"],
            "diversity": div["vectorised_s"] <= TARGETS["diversity_s"],
            "full_run": full["from_scratch_wall_s"] <= TARGETS["full_run_s"],
            "full_run_cpu": full["from_scratch_cpu_s"] <= TARGETS["full_run_s"],
        },
    }
    write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
