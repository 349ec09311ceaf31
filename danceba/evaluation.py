"""The paper's evaluation: FIDk, FIDg, Divk, Divg and BAS of sets of dances, under named protocols.

A *protocol* pairs a motion-feature protocol (``danceba.features.motion``) with a metric protocol
(``danceba.metrics``) of the same name: ``bailando`` reproduces the published code, quirks included
(kinetic acceleration precedence bug, 1/120 s velocities in the geometric features, prediction capped
at 1200 frames, ground-truth reference set = every non-ignored motion, features z-scored with
ground-truth statistics, BAS averaged over music beats with σ = 3 frames); ``corrected`` fixes the
defects and always returns a real FID. The ground-truth features are computed once per protocol by
the ``gt_features`` stage.

Predictions on disk (``danceba evaluate PRED_DIR``): one ``<sequence>.npz`` per piece holding
``joints`` (T, 24, 3) float32 — SMPL joint positions in metres, y-up, 60 fps — and ``music_id`` (str).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from danceba import tables
from danceba.atomic import atomic_path
from danceba.features.motion import extract_motion_features, motion_protocol
from danceba.features.music import BEAT_COLUMN
from danceba.metrics import compute_metrics, metric_protocol, motion_beat_align_score

METRIC_NAMES = ("fid_k", "fid_g", "div_k", "div_g", "bas")
PAPER_DANCEBA = {"fid_k": 11.67, "fid_g": 11.90, "div_k": 8.52, "div_g": 7.55, "bas": 0.2714}
PAPER_GROUND_TRUTH = {"fid_k": 17.10, "fid_g": 10.60, "div_k": 8.19, "div_g": 7.45, "bas": 0.2374}


@dataclass(frozen=True)
class Dance:
    """One dance to evaluate: joints (T, 24, 3) metres y-up 60 fps, and the music it dances to."""

    name: str
    joints: np.ndarray
    music_id: str


# ----------------------------------------------------------------------------------------------
# Ground-truth features (stage gt_features)
# ----------------------------------------------------------------------------------------------


def write_gt_features(joints: Path, sequences: Path, out: Path, protocols: Iterable[str]) -> int:
    """Kinetic and geometric features of every sequence in ``sequences`` (ignored ones were dropped by
    ``joints``), for each protocol, to ``out`` (columns: protocol, sequence, kinetic[72], geometric[32])."""
    names = pq.read_table(sequences, columns=["sequence"]).column("sequence").to_pylist()
    motions = [
        tables.read_group(joints, name, "joints").reshape(-1, 24, 3) for name in tqdm(names, desc="gt joints")
    ]
    parts = []
    for name in protocols:
        kinetic, geometric = extract_motion_features(motions, motion_protocol(name), prediction=False)
        parts.append(
            pa.table(
                {
                    "protocol": pa.array([name] * len(names), pa.string()),
                    "sequence": pa.array(names, pa.string()),
                    "kinetic": tables.vector_column(kinetic),
                    "geometric": tables.vector_column(geometric),
                }
            )
        )
    tables.write_table(out, pa.concat_tables(parts), {"units": "see danceba.features.motion"})
    return len(names)


def read_gt_features(path: Path, protocol: str) -> tuple[np.ndarray, np.ndarray]:
    """(N, 72) kinetic and (N, 32) geometric ground-truth features of one protocol."""
    table = pq.read_table(path)
    table = table.filter(pa.compute.equal(table.column("protocol"), protocol))
    if table.num_rows == 0:
        raise ValueError(f"{path}: no ground-truth features for protocol {protocol!r}; re-run gt_features")
    return tables.fixed_list_to_numpy(table, "kinetic"), tables.fixed_list_to_numpy(table, "geometric")


# ----------------------------------------------------------------------------------------------
# Scoring
# ----------------------------------------------------------------------------------------------


def music_beat_onehots(music_60fps: Path, music_ids: Iterable[str]) -> dict[str, np.ndarray]:
    """{music id: (T,) beat one-hot} from column 53 of the 60 fps features."""
    return {
        mid: tables.read_group(music_60fps, mid, "features")[:, BEAT_COLUMN] for mid in sorted(set(music_ids))
    }


def score_dances(
    dances: list[Dance],
    gt_kinetic: np.ndarray,
    gt_geometric: np.ndarray,
    beats: Mapping[str, np.ndarray],
    protocol: str,
) -> dict[str, float]:
    """FIDk, FIDg, Divk, Divg against the ground-truth features, and the mean BAS, of one set of dances."""
    if len(dances) < 2:
        raise ValueError(f"need at least 2 dances to score (FID and diversity), got {len(dances)}")
    kinetic, geometric = extract_motion_features(
        [d.joints for d in dances], motion_protocol(protocol), prediction=True
    )
    metrics = compute_metrics(kinetic, geometric, gt_kinetic, gt_geometric, metric_protocol(protocol))
    bas = [motion_beat_align_score(d.joints, beats[d.music_id], metric_protocol(protocol)) for d in dances]
    return {
        "fid_k": float(metrics["fid_k"]),
        "fid_g": float(metrics["fid_g"]),
        "div_k": float(metrics["div_k"]),
        "div_g": float(metrics["div_g"]),
        "bas": float(np.mean(bas)),
    }


def mismatched_dances(ground_truth: list[Dance], seed: int) -> list[Dance]:
    """The 'wrong music' baseline: each piece's music gets the ground-truth dance of a different music
    (a derangement over music ids, seeded)."""
    rng = np.random.default_rng(seed)
    order = list(range(len(ground_truth)))
    for _ in range(100):
        rng.shuffle(order)
        if all(ground_truth[i].music_id != ground_truth[j].music_id for i, j in enumerate(order)):
            break
    else:
        raise ValueError("cannot pair every piece with a dance of another music (only one music id?)")
    return [
        Dance(f"{gt.name}<-{ground_truth[j].name}", ground_truth[j].joints, gt.music_id)
        for gt, j in zip(ground_truth, order, strict=True)
    ]


# ----------------------------------------------------------------------------------------------
# Prediction folders and reports
# ----------------------------------------------------------------------------------------------


def write_dance(path: Path, joints: np.ndarray, music_id: str) -> None:
    """Write one prediction in the documented ``.npz`` format, atomically."""
    joints = np.asarray(joints, dtype=np.float32)
    if joints.ndim != 3 or joints.shape[1:] != (24, 3):
        raise ValueError(f"{path}: joints must be (T, 24, 3), got {joints.shape}")
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, joints=joints, music_id=np.array(music_id), fps=np.array(60))


def read_dance_folder(folder: Path) -> list[Dance]:
    """Every ``<sequence>.npz`` in ``folder`` (no pickles are loaded); errors name the bad file."""
    paths = sorted(Path(folder).glob("*.npz"))
    if not paths:
        raise ValueError(f"{folder}: no .npz predictions")
    dances = []
    for path in paths:
        try:
            with np.load(path, allow_pickle=False) as data:
                joints, music_id = np.asarray(data["joints"], dtype=np.float32), str(data["music_id"])
        except (OSError, ValueError, KeyError) as error:
            raise ValueError(
                f"{path}: not a prediction file (needs 'joints' and 'music_id'): {error}"
            ) from error
        if (
            joints.ndim != 3
            or joints.shape[1:] != (24, 3)
            or len(joints) < 16
            or not np.isfinite(joints).all()
        ):
            raise ValueError(f"{path}: joints must be finite (T >= 16, 24, 3), got {joints.shape}")
        dances.append(Dance(path.stem, joints, music_id))
    return dances


def markdown_table(report: Mapping[str, Mapping[str, Mapping[str, float]]]) -> str:
    """The paper-shaped table: one block per protocol, rows ground truth / model / baselines, plus the
    paper's reported values for reference."""
    lines = []
    for protocol, rows in report.items():
        lines += [
            f"### Protocol `{protocol}`",
            "",
            "| | FIDk ↓ | FIDg ↓ | Divk ↑ | Divg ↑ | BAS ↑ |",
            "|---|---|---|---|---|---|",
        ]
        for row, values in rows.items():
            cells = " | ".join(f"{values[m]:.4f}" if m == "bas" else f"{values[m]:.2f}" for m in METRIC_NAMES)
            lines.append(f"| {row} | {cells} |")
        lines.append("")
    lines += [
        "Paper (AIST++, Danceba Table 1): " + ", ".join(f"{m} {v}" for m, v in PAPER_DANCEBA.items()),
        "; ground truth: " + ", ".join(f"{m} {v}" for m, v in PAPER_GROUND_TRUTH.items()),
        "",
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class EvaluateConfig:
    """``evaluate`` in params.yaml: protocols reported side by side, test pieces, baselines, plots."""

    protocols: tuple[str, ...] = ("bailando", "corrected")
    splits: tuple[str, ...] = ("val", "test")
    baseline_seed: int = 0
    plot_pieces: int = 3


def evaluation_report(
    rows: Mapping[str, list[Dance]], gt_features: Path, music_60fps: Path, protocols: Iterable[str]
) -> dict[str, dict[str, dict[str, float]]]:
    """{protocol: {row: {metric: value}}} for every named set of dances (same code for every row)."""
    music_ids = {d.music_id for dances in rows.values() for d in dances}
    beats = music_beat_onehots(music_60fps, music_ids)
    report = {}
    for protocol in protocols:
        gt_kinetic, gt_geometric = read_gt_features(gt_features, protocol)
        report[protocol] = {
            row: score_dances(dances, gt_kinetic, gt_geometric, beats, protocol)
            for row, dances in rows.items()
        }
    return report
