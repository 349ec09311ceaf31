"""Bootstrap intervals over pieces: resample the N pieces of a row with replacement, recompute the
statistic, report the percentile interval. Pure numpy; the resamples are one (B, N) index array, so
every metric of a row uses the same resamples (paired), and rows of the same size the same ones.

Per-piece values that are NaN (a metric undefined on that piece, e.g. no motion beat inside the music's
beat grid) are left out of each resample's mean.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np

from danceba.rhythm_metrics import circular_mean_phase, wrap_phase


def bootstrap_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n) int64 indices into n pieces, drawn with replacement by ``default_rng(seed)``."""
    if n < 1:
        raise ValueError(f"bootstrap: need at least 1 piece, got {n}")
    if resamples < 1:
        raise ValueError(f"bootstrap: need at least 1 resample, got {resamples}")
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def percentile_interval(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` percentile interval of bootstrap samples (B,); NaN samples are left out."""
    if not 0 < level < 1:
        raise ValueError(f"bootstrap: level must be in (0, 1), got {level}")
    samples = np.asarray(samples, dtype=np.float64).ravel()
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return float("nan"), float("nan")
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def _nanmean(x: np.ndarray, axis: int) -> np.ndarray:
    with warnings.catch_warnings():  # an all-NaN resample is NaN, and says so by being NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(x, axis=axis)


def bootstrap_mean(
    values: np.ndarray, indices: np.ndarray, level: float = 0.95
) -> tuple[float, float, float]:
    """(mean, interval low, interval high) of per-piece values (N,) under resamples ``indices`` (B, N)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    _check_indices(indices, values.size)
    low, high = percentile_interval(_nanmean(values[indices], axis=1), level)
    return float(_nanmean(values, axis=0)), low, high


def bootstrap_circular_mean(
    phases: np.ndarray, weights: np.ndarray, indices: np.ndarray, level: float = 0.95
) -> tuple[float, float, float]:
    """(weighted circular mean, low, high) in beats of per-piece phases (N,) with weights (N,).

    The interval is the percentile interval of the resamples' deviations from the full-sample mean,
    wrapped to [-0.5, 0.5) beats and added back (so it may extend past ±0.5 rather than wrap)."""
    phases = np.asarray(phases, dtype=np.float64).ravel()
    weights = np.asarray(weights, dtype=np.float64).ravel()
    if weights.shape != phases.shape:
        raise ValueError(f"bootstrap: weights {weights.shape} do not match phases {phases.shape}")
    _check_indices(indices, phases.size)
    mean = float(circular_mean_phase(phases, weights))
    deviations = wrap_phase(circular_mean_phase(phases[indices], weights[indices]) - mean)
    low, high = percentile_interval(deviations, level)
    return mean, mean + low, mean + high


def bootstrap_statistic(
    statistic: Callable[[np.ndarray], float], indices: np.ndarray, level: float = 0.95
) -> tuple[float, float]:
    """Percentile interval of ``statistic(piece_indices (N,))`` over the resamples ``indices`` (B, N),
    for statistics of a whole set (e.g. FID) that do not reduce to a mean over pieces."""
    samples = np.array([statistic(row) for row in np.asarray(indices)], dtype=np.float64)
    return percentile_interval(samples, level)


def _check_indices(indices: np.ndarray, n: int) -> None:
    indices = np.asarray(indices)
    if indices.ndim != 2 or indices.shape[1] != n:
        raise ValueError(f"bootstrap: indices must be (B, {n}), got {indices.shape}")
