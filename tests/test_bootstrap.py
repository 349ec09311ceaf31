"""Bootstrap intervals over pieces: they contain the mean, narrow with more pieces, are reproducible."""

from __future__ import annotations

import numpy as np
import pytest

from danceba.bootstrap import (
    bootstrap_circular_mean,
    bootstrap_indices,
    bootstrap_mean,
    bootstrap_statistic,
    percentile_interval,
)


def test_indices_are_seeded_and_in_range() -> None:
    a, b = bootstrap_indices(7, 50, seed=3), bootstrap_indices(7, 50, seed=3)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (50, 7) and a.min() >= 0 and a.max() < 7
    assert not np.array_equal(a, bootstrap_indices(7, 50, seed=4))
    with pytest.raises(ValueError, match="at least 1 piece"):
        bootstrap_indices(0, 10, 0)
    with pytest.raises(ValueError, match="at least 1 resample"):
        bootstrap_indices(5, 0, 0)


def test_the_interval_contains_the_mean_and_narrows_with_more_pieces() -> None:
    rng = np.random.default_rng(0)
    widths = []
    for n in (10, 40, 160):
        values = rng.normal(0.3, 0.1, n)
        mean, low, high = bootstrap_mean(values, bootstrap_indices(n, 1000, 0))
        assert mean == pytest.approx(values.mean())
        assert low < mean < high
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2]
    assert widths[1] == pytest.approx(2 * 1.96 * 0.1 / np.sqrt(40), rel=0.3)  # ≈ the normal interval


def test_nan_pieces_are_left_out() -> None:
    values = np.array([1.0, np.nan, 3.0, 2.0])
    mean, low, high = bootstrap_mean(values, bootstrap_indices(4, 200, 1))
    assert mean == pytest.approx(2.0) and 1.0 <= low <= high <= 3.0
    assert np.isnan(bootstrap_mean(np.full(3, np.nan), bootstrap_indices(3, 20, 0))).all()
    with pytest.raises(ValueError, match=r"indices must be \(B, 4\)"):
        bootstrap_mean(values, bootstrap_indices(3, 20, 0))


def test_circular_mean_interval_does_not_wrap_round_the_circle() -> None:
    phases = np.array([0.48, -0.49, 0.47, -0.48, 0.49, -0.47])  # all close to half a beat
    mean, low, high = bootstrap_circular_mean(phases, np.ones(6), bootstrap_indices(6, 500, 0))
    assert abs(mean) == pytest.approx(0.5, abs=0.01)
    assert low <= mean <= high and high - low < 0.05


def test_statistic_interval_and_level() -> None:
    values = np.arange(20.0)
    low, high = bootstrap_statistic(lambda i: float(np.median(values[i])), bootstrap_indices(20, 300, 0))
    assert low < np.median(values) < high
    assert percentile_interval(np.arange(101.0), 0.9) == pytest.approx((5.0, 95.0))
    with pytest.raises(ValueError, match="level"):
        percentile_interval(np.arange(3.0), 1.0)
