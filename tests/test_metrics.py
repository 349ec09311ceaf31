"""FID, diversity, BAS and their protocol choices, on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from danceba.metrics import (
    BAILANDO,
    CORRECTED,
    MetricProtocol,
    beat_align_score,
    compute_metrics,
    diversity,
    frechet_distance,
    metric_protocol,
    motion_beat_align_score,
    normalise_for_protocol,
    normalize_with_gt_stats,
    resampled_frechet_distances,
    resolve_complex_covmean,
)

MINT = MetricProtocol(name="mint", complex_handling="mint")


def samples_with_exact_stats(rng: np.random.Generator, n: int, mu: np.ndarray, var: np.ndarray) -> np.ndarray:
    """(n, D) samples whose sample mean is mu and whose (N-1) sample covariance is exactly diag(var)."""
    z = rng.normal(size=(n, len(mu)))
    q, _ = np.linalg.qr(z - z.mean(axis=0))  # orthonormal, still centred columns
    return mu + np.sqrt(n - 1) * q * np.sqrt(var)


# ---------------------------------------------------------------- normalisation


def test_normalize_uses_gt_mean_and_population_std() -> None:
    gt = np.array([[0.0, 5.0], [2.0, 5.0]])
    pred = np.array([[3.0, 6.0]])
    gt_n, pred_n = normalize_with_gt_stats(gt, pred)
    np.testing.assert_allclose(gt_n, [[-1.0, 0.0], [1.0, 0.0]])
    np.testing.assert_allclose(pred_n, [[2.0, 1e10]], rtol=1e-9)  # constant column: std 0 + eps 1e-10
    _, pred_n1 = normalize_with_gt_stats(gt, pred, ddof=1)
    assert pred_n1[0, 0] == pytest.approx(2.0 / np.sqrt(2.0))
    with pytest.raises(ValueError, match="feature dims"):
        normalize_with_gt_stats(gt, np.zeros((1, 3)))


# ---------------------------------------------------------------- FID


@pytest.mark.parametrize("protocol", [BAILANDO, CORRECTED])
def test_fid_of_a_set_with_itself_is_zero(rng: np.random.Generator, protocol) -> None:
    x = rng.normal(size=(200, 16)) @ rng.normal(size=(16, 16))
    assert abs(frechet_distance(x, x, protocol)) < 1e-6


@pytest.mark.parametrize("protocol", [BAILANDO, CORRECTED, MINT])
def test_fid_matches_closed_form_for_diagonal_covariances(rng: np.random.Generator, protocol) -> None:
    d = 6
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    v1, v2 = rng.uniform(0.2, 3.0, size=d), rng.uniform(0.2, 3.0, size=d)
    a = samples_with_exact_stats(rng, 50, mu1, v1)
    b = samples_with_exact_stats(rng, 400, mu2, v2)
    want = np.sum((mu1 - mu2) ** 2) + np.sum(v1 + v2 - 2 * np.sqrt(v1 * v2))
    assert frechet_distance(a, b, protocol) == pytest.approx(want, rel=1e-9)


def test_fid_rank_deficient_prediction_set_reports_finite_real(rng: np.random.Generator) -> None:
    pred = rng.normal(size=(6, 12))  # covariance of rank 5 in 12 dims, as 40 predictions vs 72 dims
    gt = rng.normal(size=(300, 12)) * 1.5 + 0.3
    reported = frechet_distance(pred, gt, BAILANDO)
    assert isinstance(reported, float) and np.isfinite(reported)
    assert reported == pytest.approx(frechet_distance(pred, gt, CORRECTED), rel=1e-6)


def test_complex_covmean_rules() -> None:
    tiny = np.diag([1.0 + 1e-6j, 2.0])  # diagonal imaginary part within atol 1e-3
    kept = resolve_complex_covmean(tiny, BAILANDO)
    assert np.iscomplexobj(kept) and np.trace(kept).imag == pytest.approx(1e-6)  # the published quirk
    assert not np.iscomplexobj(resolve_complex_covmean(tiny, MINT))
    large = np.diag([1.0 + 0.1j, 2.0])
    np.testing.assert_array_equal(resolve_complex_covmean(large, BAILANDO), [[1.0, 0.0], [0.0, 2.0]])
    with pytest.raises(ValueError, match="imaginary component"):
        resolve_complex_covmean(large, MINT)
    real = np.eye(2)
    assert resolve_complex_covmean(real, BAILANDO) is real


def test_fid_retries_with_eps_on_the_diagonals(monkeypatch, rng: np.random.Generator) -> None:
    calls = []
    real_sqrtm = scipy.linalg.sqrtm

    def flaky_sqrtm(m):
        calls.append(m)
        return np.full_like(m, np.nan) if len(calls) == 1 else real_sqrtm(m)

    monkeypatch.setattr(scipy.linalg, "sqrtm", flaky_sqrtm)
    a, b = rng.normal(size=(30, 3)), rng.normal(size=(40, 3))
    frechet_distance(a, b, MetricProtocol(name="eps", sqrtm_eps=0.5))
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    assert len(calls) == 2
    np.testing.assert_allclose(calls[1], (s1 + 0.5 * np.eye(3)) @ (s2 + 0.5 * np.eye(3)))


@pytest.mark.parametrize("protocol", [BAILANDO, CORRECTED])
def test_resampled_fid_recomputes_the_prediction_side_only(rng: np.random.Generator, protocol) -> None:
    pred, gt = rng.normal(size=(12, 5)) + 0.5, rng.normal(size=(200, 5))
    identity, shuffled = np.arange(12), rng.permutation(12)
    resamples = np.stack([identity, shuffled, np.r_[identity[:6], identity[:6]]])
    got = resampled_frechet_distances(pred, gt, resamples, protocol)
    assert got[0] == pytest.approx(frechet_distance(pred, gt, protocol), rel=1e-9)
    assert got[1] == pytest.approx(got[0], rel=1e-9)  # the order of pieces does not matter
    doubled = frechet_distance(pred[resamples[2]], gt, protocol)  # duplicates count as pieces
    assert got[2] == pytest.approx(doubled, rel=1e-9) and got[2] != pytest.approx(got[0])
    with pytest.raises(ValueError, match=r"indices must be \(B, 12\)"):
        resampled_frechet_distances(pred, gt, resamples[:, :5], protocol)


def test_normalise_for_protocol_follows_the_protocol(rng: np.random.Generator) -> None:
    gt, pred = rng.normal(size=(30, 3)) * 2 + 1, rng.normal(size=(5, 3))
    np.testing.assert_array_equal(
        normalise_for_protocol(gt, pred, BAILANDO)[1], normalize_with_gt_stats(gt, pred)[1]
    )
    raw = MetricProtocol(name="raw", normalisation="none")
    assert normalise_for_protocol(gt, pred, raw)[1] is pred


# ---------------------------------------------------------------- diversity


@pytest.mark.parametrize("method", ["gram", "pdist"])
def test_diversity_unit_square_corners(method) -> None:
    corners = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    assert diversity(corners, method) == pytest.approx((4 * 1.0 + 2 * np.sqrt(2.0)) / 6, rel=1e-12)


@pytest.mark.parametrize("method", ["gram", "pdist"])
def test_diversity_matches_double_loop(rng: np.random.Generator, method) -> None:
    x = rng.normal(size=(25, 7)) * 3 + 10
    pairs = [np.linalg.norm(x[i] - x[j]) for i in range(25) for j in range(i + 1, 25)]
    assert diversity(x, method, block=60) == pytest.approx(np.mean(pairs), rel=1e-11)  # 3 row blocks
    with pytest.raises(ValueError, match="N >= 2"):
        diversity(x[:1], method)


def test_diversity_gram_handles_duplicates_and_identical_sets(rng: np.random.Generator) -> None:
    x = rng.normal(size=(30, 72)) * 5
    x[10:20] = x[0]  # many coincident pairs
    assert diversity(x, "gram") == pytest.approx(diversity(x, "pdist"), rel=1e-9)
    assert diversity(np.repeat(x[:1], 8, axis=0), "gram") == 0.0


# ---------------------------------------------------------------- BAS


def test_bas_constant_shift_exact_and_monotone() -> None:
    music = np.array([10, 40, 70, 100])
    scores = [beat_align_score(music, music + d) for d in range(6)]
    assert scores[0] == 1.0
    np.testing.assert_allclose(scores, np.exp(-(np.arange(6) ** 2) / 18.0), rtol=1e-12)
    assert np.all(np.diff(scores) < 0)
    assert beat_align_score(music, music - 2, sigma=1.0) == pytest.approx(np.exp(-2.0))


def test_bas_averages_over_music_beats_by_default() -> None:
    music, motion = np.array([10, 50]), np.array([10])
    assert beat_align_score(music, motion) == pytest.approx((1 + np.exp(-1600 / 18)) / 2)
    assert beat_align_score(music, motion, average_over="motion") == 1.0
    with pytest.raises(ValueError, match="no motion beats"):
        beat_align_score(music, np.array([], dtype=int))
    with pytest.raises(ValueError, match="no music beats"):
        beat_align_score(np.array([], dtype=int), motion)


def test_motion_bas_truncates_music_beats_to_motion_length() -> None:
    speed = 1.5 + np.cos(2 * np.pi * np.arange(200) / 40)  # motion beats at 20, 60, 100, 140, 180
    p = np.zeros((201, 24, 3))
    p[:, :, 0] = np.concatenate([[0.0], np.cumsum(speed)])[:, None]
    onehot = np.zeros(300)
    onehot[[20, 62, 100, 250]] = 1  # 250 lies beyond the 200 speed frames and is dropped
    assert motion_beat_align_score(p, onehot) == pytest.approx((2 + np.exp(-4 / 18)) / 3)


# ---------------------------------------------------------------- protocols and the full metric set


def test_protocol_lookup_and_validation() -> None:
    assert metric_protocol("bailando") is BAILANDO and metric_protocol("corrected") is CORRECTED
    assert BAILANDO.sqrtm_eps == 1e-5 and BAILANDO.bas_sigma == 3.0 and BAILANDO.normalisation == "gt_stats"
    with pytest.raises(ValueError, match="unknown metric protocol"):
        metric_protocol("edge")
    with pytest.raises(ValueError, match="complex_handling"):
        MetricProtocol(name="bad", complex_handling="ignore")


def test_compute_metrics_composes_normalisation_fid_and_diversity(rng: np.random.Generator) -> None:
    gt_k, gt_g = rng.normal(size=(120, 72)) * 3 + 1, rng.uniform(size=(120, 32))
    pred_k, pred_g = rng.normal(size=(10, 72)) * 3, rng.uniform(size=(10, 32))
    m = compute_metrics(pred_k, pred_g, gt_k, gt_g, BAILANDO)
    assert set(m) == {"fid_k", "fid_g", "div_k", "div_g", "div_k_gt", "div_g_gt"}
    gt_n, pred_n = normalize_with_gt_stats(gt_k, pred_k)
    assert m["fid_k"] == frechet_distance(pred_n, gt_n, BAILANDO)
    assert m["div_k"] == diversity(pred_n) and m["div_k_gt"] == diversity(gt_n)
    raw = compute_metrics(pred_k, pred_g, gt_k, gt_g, MetricProtocol(name="raw", normalisation="none"))
    assert raw["div_k"] == pytest.approx(diversity(pred_k)) and raw["div_k"] != pytest.approx(m["div_k"])
    assert compute_metrics(pred_k, pred_g, gt_k, gt_g, CORRECTED)["fid_g"] == pytest.approx(
        m["fid_g"], rel=1e-6
    )


def test_a_feature_constant_over_the_ground_truth() -> None:
    """The published normalisation divides it by 1e-10 (FID explodes); ``corrected`` keeps its scale."""
    rng = np.random.default_rng(0)
    gt = rng.normal(size=(50, 3))
    gt[:, 2] = 0.0  # e.g. a geometric feature no reference motion shows
    pred = rng.normal(size=(20, 3))
    pred[:, 2] = 0.5
    _, pred_eps = normalize_with_gt_stats(gt, pred)
    _, pred_unit = normalize_with_gt_stats(gt, pred, constant_features="unit")
    assert pred_eps[0, 2] == pytest.approx(0.5e10)
    assert pred_unit[0, 2] == pytest.approx(0.5)
    np.testing.assert_allclose(pred_unit[:, :2], pred_eps[:, :2])
    assert compute_metrics(pred, pred, gt, gt, BAILANDO)["fid_g"] > 1e19
    assert compute_metrics(pred, pred, gt, gt, CORRECTED)["fid_g"] < 100
