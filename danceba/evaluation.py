"""The paper's evaluation (FIDk, FIDg, Divk, Divg, BAS) and the metrics that tell whether a dance
follows the music, of sets of dances ("rows"), under named protocols.

A *protocol* pairs a motion-feature protocol (``danceba.features.motion``) with a metric protocol
(``danceba.metrics``) of the same name: ``bailando`` reproduces the published code, quirks included
(kinetic acceleration precedence bug, 1/120 s velocities in the geometric features, prediction capped
at 1200 frames, ground-truth reference set = every non-ignored motion, features z-scored with
ground-truth statistics, BAS averaged over music beats with σ = 3 frames); ``corrected`` fixes the
defects and always returns a real FID. The ground-truth features are computed once per protocol by
the ``gt_features`` stage.

Every row is scored by :func:`score_dances`: FIDk/FIDg against two reference sets (all non-ignored
motions as published: ``fid_k``; the ground truth of the evaluated pieces only: ``fid_k_testref``) with
bootstrap intervals, Divk/Divg, and per piece the rhythm metrics (:mod:`danceba.rhythm_metrics`: BAS in
both directions, its chance level and excess, beat phase locking) and the physical ones
(:mod:`danceba.physical_metrics`: PFC, foot skating, mean joint speed), reported as the mean over pieces
with a bootstrap interval (:mod:`danceba.bootstrap`). Interval bounds are ``<metric>_ci_low`` /
``<metric>_ci_high``.

Predictions on disk (``danceba evaluate PRED_DIR``): one ``<sequence>.npz`` per piece holding
``joints`` (T, 24, 3) float32 — SMPL joint positions in metres, y-up, 60 fps — and ``music_id`` (str):
the music the dance is scored against (for a sham-music control, optionally ``condition_music_id``:
the music the model was fed instead).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from danceba import tables
from danceba.atomic import atomic_path
from danceba.bootstrap import bootstrap_circular_mean, bootstrap_indices, bootstrap_mean, percentile_interval
from danceba.data.aistpp import FPS
from danceba.evaluate_config import EvaluateConfig
from danceba.features.columns import BEAT_COLUMN
from danceba.features.motion import extract_motion_features, motion_protocol
from danceba.metrics import (
    compute_metrics,
    frechet_distance,
    metric_protocol,
    normalise_for_protocol,
    resampled_frechet_distances,
)
from danceba.physical_metrics import PHYSICAL_METRICS, physical_scores
from danceba.rhythm_metrics import RHYTHM_METRICS, rhythm_scores

METRIC_NAMES = ("fid_k", "fid_g", "div_k", "div_g", "bas")  # the paper's five
PAPER_DANCEBA = {"fid_k": 11.67, "fid_g": 11.90, "div_k": 8.52, "div_g": 7.55, "bas": 0.2714}
PAPER_GROUND_TRUTH = {"fid_k": 17.10, "fid_g": 10.60, "div_k": 8.19, "div_g": 7.45, "bas": 0.2374}
PIECE_METRICS = (*RHYTHM_METRICS, *PHYSICAL_METRICS)
REFERENCE_SETS = {  # FID key suffix -> reference set
    "": "all non-ignored ground-truth motions (train, val and test; the published code's reference)",
    "_testref": "the ground truth of the evaluated pieces' sequences only (rows of gt_features whose "
    "sequence is in evaluate.splits)",
}
CI_LOW, CI_HIGH = "_ci_low", "_ci_high"
PROTOCOL_CARD_KEY = "protocol"  # top-level key of metrics.json holding the protocol card


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
    ``joints``), for each protocol, to ``out`` (columns: protocol, sequence, kinetic[72], geometric[32]).

    The motions are streamed row group by row group (read once per protocol), so memory holds one
    feature chunk, not every motion (AIST++: 1.1 M frames, ~320 MB as float32)."""
    names = pq.read_table(sequences, columns=["sequence"]).column("sequence").to_pylist()
    reader = tables.GroupReader(joints)

    def motions(protocol: str) -> Iterator[np.ndarray]:
        for name in tqdm(names, desc=f"gt features ({protocol})", unit="seq"):
            yield reader.read(name, "joints").reshape(-1, 24, 3)

    parts = []
    for name in protocols:
        kinetic, geometric = extract_motion_features(motions(name), motion_protocol(name), prediction=False)
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


def read_gt_features(
    path: Path, protocol: str, sequences: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(N, 72) kinetic and (N, 32) geometric ground-truth features of one protocol; with ``sequences``,
    only those sequences' rows (a test-only reference)."""
    table = pq.read_table(path)
    table = table.filter(pa.compute.equal(table.column("protocol"), protocol))
    if table.num_rows == 0:
        raise ValueError(f"{path}: no ground-truth features for protocol {protocol!r}; re-run gt_features")
    if sequences is not None:
        table = table.filter(pa.compute.is_in(table.column("sequence"), value_set=pa.array(list(sequences))))
        if table.num_rows < 2:
            raise ValueError(
                f"{path}: {table.num_rows} of the {len(sequences)} requested sequences have ground-truth "
                "features; a reference set needs at least 2"
            )
    return tables.fixed_list_to_numpy(table, "kinetic"), tables.fixed_list_to_numpy(table, "geometric")


def gt_feature_sequences(path: Path) -> set[str]:
    """The sequence names that have ground-truth features."""
    return set(pq.read_table(path, columns=["sequence"]).column("sequence").to_pylist())


# ----------------------------------------------------------------------------------------------
# Scoring
# ----------------------------------------------------------------------------------------------


def music_beat_onehots(music_60fps: Path, music_ids: Iterable[str]) -> dict[str, np.ndarray]:
    """{music id: (T,) beat one-hot} from column 53 of the 60 fps features."""
    return {
        mid: tables.read_group(music_60fps, mid, "features")[:, BEAT_COLUMN] for mid in sorted(set(music_ids))
    }


def _per_piece(dances: Sequence[Dance], score) -> dict[str, np.ndarray]:
    """{metric: (N,) values} from ``score(dance) -> {metric: value}``; errors name the piece."""
    values: dict[str, list[float]] = {}
    for dance in dances:
        try:
            scores = score(dance)
        except ValueError as error:
            raise ValueError(f"{dance.name}: {error}") from error
        for key, value in scores.items():
            values.setdefault(key, []).append(value)
    return {key: np.asarray(v, dtype=np.float64) for key, v in values.items()}


def rhythm_piece_scores(
    dances: Sequence[Dance], beats: Mapping[str, np.ndarray], protocol: str, config: EvaluateConfig
) -> dict[str, np.ndarray]:
    """{rhythm metric: (N,) per-piece values} of a row under one protocol."""
    metric = metric_protocol(protocol)
    return _per_piece(
        dances,
        lambda d: rhythm_scores(
            d.joints,
            beats[d.music_id],
            metric,
            n_shifts=config.chance_shifts,
            min_shift_frames=config.min_shift_frames,
        ),
    )


def physical_piece_scores(dances: Sequence[Dance], config: EvaluateConfig) -> dict[str, np.ndarray]:
    """{physical metric: (N,) per-piece values} of a row (protocol-independent)."""
    return _per_piece(
        dances,
        lambda d: physical_scores(
            d.joints, fps=FPS, pfc_fps=config.pfc_fps, contact_height_m=config.contact_height_m
        ),
    )


def summarise_pieces(values: Mapping[str, np.ndarray], indices: np.ndarray, level: float) -> dict[str, float]:
    """Mean and bootstrap interval of each per-piece metric (N,): ``{m, m_ci_low, m_ci_high}``.

    ``phase_lock_mean_phase`` is a circular mean weighted by each piece's ``phase_lock_r``."""
    out = {}
    for key, piece_values in values.items():
        if key == "phase_lock_mean_phase":
            mean, low, high = bootstrap_circular_mean(piece_values, values["phase_lock_r"], indices, level)
        else:
            mean, low, high = bootstrap_mean(piece_values, indices, level)
        out |= {key: mean, key + CI_LOW: low, key + CI_HIGH: high}
    return out


def fid_scores(
    kinetic: np.ndarray,
    geometric: np.ndarray,
    reference: tuple[np.ndarray, np.ndarray],
    protocol: str,
    indices: np.ndarray | None,
    level: float,
    suffix: str = "",
) -> dict[str, float]:
    """``fid_k<suffix>``, ``fid_g<suffix>`` of pred features (M, 72), (M, 32) against a reference
    (N, 72), (N, 32), each with its bootstrap interval over resamples ``indices`` (B, M) of the
    predictions (the reference stays fixed); None: no interval."""
    metric = metric_protocol(protocol)
    out = {}
    for tag, pred, gt in (("k", kinetic, reference[0]), ("g", geometric, reference[1])):
        gt_n, pred_n = normalise_for_protocol(gt, pred, metric)
        key = f"fid_{tag}{suffix}"
        out[key] = frechet_distance(pred_n, gt_n, metric)
        if indices is not None:
            low, high = percentile_interval(resampled_frechet_distances(pred_n, gt_n, indices, metric), level)
            out |= {key + CI_LOW: low, key + CI_HIGH: high}
    return out


def score_dances(
    dances: Sequence[Dance],
    references: Mapping[str, tuple[np.ndarray, np.ndarray]],
    beats: Mapping[str, np.ndarray],
    protocol: str,
    config: EvaluateConfig,
    physical: Mapping[str, np.ndarray] | None = None,
) -> dict[str, float]:
    """Every metric of one row of dances under one protocol.

    ``references``: {FID key suffix (see :data:`REFERENCE_SETS`): (kinetic (N, 72), geometric (N, 32))};
    the ``""`` reference (all motions) is required and is also the one Divk/Divg are normalised with.
    ``physical``: the row's :func:`physical_piece_scores` when already computed."""
    if len(dances) < 2:
        raise ValueError(f"need at least 2 dances to score (FID and diversity), got {len(dances)}")
    if "" not in references:
        raise ValueError("score_dances: the all-motions reference (suffix '') is required")
    kinetic, geometric = extract_motion_features(
        [d.joints for d in dances], motion_protocol(protocol), prediction=True
    )
    fid_indices = (
        bootstrap_indices(len(dances), config.fid_bootstrap, config.bootstrap_seed)
        if config.fid_bootstrap
        else None
    )
    out: dict[str, float] = {}
    for suffix, reference in references.items():
        out |= fid_scores(kinetic, geometric, reference, protocol, fid_indices, config.ci_level, suffix)
    published = compute_metrics(kinetic, geometric, *references[""], metric_protocol(protocol))
    out |= {"div_k": published["div_k"], "div_g": published["div_g"]}
    per_piece = {**rhythm_piece_scores(dances, beats, protocol, config)}
    per_piece |= physical if physical is not None else physical_piece_scores(dances, config)
    indices = bootstrap_indices(len(dances), config.bootstrap, config.bootstrap_seed)
    out |= summarise_pieces(per_piece, indices, config.ci_level)
    return {key: float(value) for key, value in out.items()}


def evaluation_report(
    rows: Mapping[str, Sequence[Dance]],
    gt_features: Path,
    music_60fps: Path,
    config: EvaluateConfig,
    test_sequences: Sequence[str] | None = None,
) -> dict[str, dict[str, dict[str, float]]]:
    """{protocol: {row: {metric: value}}} for every named set of dances (same code for every row).

    With ``test_sequences`` the FIDs are also computed against those sequences' ground truth only
    (``fid_k_testref``, ``fid_g_testref``)."""
    music_ids = {d.music_id for dances in rows.values() for d in dances}
    beats = music_beat_onehots(music_60fps, music_ids)
    physical = {row: physical_piece_scores(dances, config) for row, dances in rows.items()}
    report = {}
    for protocol in config.protocols:
        references = {"": read_gt_features(gt_features, protocol)}
        if test_sequences is not None:
            references["_testref"] = read_gt_features(gt_features, protocol, test_sequences)
        report[protocol] = {
            row: score_dances(dances, references, beats, protocol, config, physical[row])
            for row, dances in tqdm(rows.items(), desc=f"score ({protocol})", unit="row")
        }
    return report


# ----------------------------------------------------------------------------------------------
# Prediction folders and reports
# ----------------------------------------------------------------------------------------------


def write_dance(path: Path, joints: np.ndarray, music_id: str, condition_music_id: str | None = None) -> None:
    """Write one prediction in the documented ``.npz`` format, atomically. ``condition_music_id``: the
    music the model was fed, when it is not ``music_id`` (the sham-music control)."""
    joints = np.asarray(joints, dtype=np.float32)
    if joints.ndim != 3 or joints.shape[1:] != (24, 3):
        raise ValueError(f"{path}: joints must be (T, 24, 3), got {joints.shape}")
    extra = {} if condition_music_id is None else {"condition_music_id": np.array(condition_music_id)}
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, joints=joints, music_id=np.array(music_id), fps=np.array(FPS), **extra)


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
