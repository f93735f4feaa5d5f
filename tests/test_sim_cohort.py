"""Tests of the simulated HYPER cohort: shapes, SNR, misalignment, and the Bayes-optimal ceiling."""

from __future__ import annotations

import numpy as np
import pytest

from bci.sim import SimulatedCohort


def _corr_rows(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over rows of the Pearson correlation between matching rows."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    return float(np.mean((a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))))


def _corr_cols(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over columns of the Pearson correlation between matching columns."""
    return _corr_rows(a.T, b.T)


@pytest.fixture(scope="module")
def small() -> SimulatedCohort:
    return SimulatedCohort(n_subjects=2, n_voxels=[300, 200], latent_dim=8, random_state=0)


def test_shapes_and_dtype(small: SimulatedCohort) -> None:
    z = np.random.default_rng(0).standard_normal((7, 8)).astype(np.float32)
    both = small.trial_responses(z, seed=1)
    assert isinstance(both, list) and [x.shape for x in both] == [(7, 300), (7, 200)]
    assert all(x.dtype == np.float32 for x in both)
    one = small.trial_responses(z, subject=1, seed=1)
    assert isinstance(one, np.ndarray) and one.shape == (7, 200) and one.dtype == np.float32
    assert small.signal(z, 0).shape == (7, 300) and small.signal(z, 0).dtype == np.float32
    assert small.n_common == 200 and small.common_map.shape == (8, 200)
    assert small.loadings(0).shape == (8, 300) and small.noise_var[1].shape == (200,)
    assert all(np.all(g > 0) for g in small.gains)


def test_reproducible_with_seed() -> None:
    z = np.random.default_rng(0).standard_normal((5, 4))
    a = SimulatedCohort(n_voxels=50, latent_dim=4, random_state=3)
    b = SimulatedCohort(n_voxels=50, latent_dim=4, random_state=3)
    np.testing.assert_array_equal(a.loadings(1), b.loadings(1))
    for xa, xb in zip(a.trial_responses(z), b.trial_responses(z), strict=True):
        np.testing.assert_array_equal(xa, xb)  # same default noise stream
    np.testing.assert_array_equal(a.trial_responses(z, 0, seed=9), b.trial_responses(z, 0, seed=9))
    assert not np.array_equal(a.trial_responses(z, 0, seed=9), a.trial_responses(z, 0, seed=10))
    c = SimulatedCohort(n_voxels=50, latent_dim=4, random_state=4)
    assert not np.allclose(a.loadings(0), c.loadings(0))


def test_measured_snr_matches_configured() -> None:
    snr = 0.5
    cohort = SimulatedCohort(n_subjects=1, n_voxels=400, latent_dim=16, snr=snr, random_state=1)
    z = np.random.default_rng(2).standard_normal((4000, 16))
    x1 = cohort.trial_responses(z, 0, seed=3).astype(np.float64)
    x2 = cohort.trial_responses(z, 0, seed=4).astype(np.float64)
    x1 -= x1.mean(0)
    x2 -= x2.mean(0)
    signal_var = np.mean(x1 * x2, axis=0)  # repeats share the signal only
    noise_var = np.mean((x1 - x2) ** 2, axis=0) / 2
    assert np.mean(signal_var / noise_var) == pytest.approx(snr, rel=0.05)
    assert np.mean(noise_var / cohort.noise_var[0]) == pytest.approx(1.0, rel=0.02)


@pytest.mark.parametrize(("n_voxels", "n_common"), [(64, None), (96, 40)])
def test_rotation_is_orthogonal(n_voxels: int, n_common: int | None) -> None:
    cohort = SimulatedCohort(n_voxels=n_voxels, latent_dim=5, n_common=n_common, random_state=0)
    for s in range(2):
        r = cohort.rotation(s)
        assert r.shape == (n_common or n_voxels, n_voxels)
        np.testing.assert_allclose(r @ r.T, np.eye(r.shape[0]), atol=1e-5)
        expected = cohort.common_map @ r * cohort.gains[s]
        np.testing.assert_allclose(cohort.loadings(s), expected, atol=1e-10)
    assert not np.allclose(cohort.rotation(0), cohort.rotation(1))


def test_subjects_misaligned_until_rotations_undone() -> None:
    cohort = SimulatedCohort(n_voxels=256, latent_dim=32, snr=1000.0, random_state=5)
    z = np.random.default_rng(6).standard_normal((1000, 32))
    x0, x1 = cohort.trial_responses(z, seed=7)
    assert abs(_corr_cols(x0, x1)) < 0.05  # same voxel index, correlated across trials
    c0, c1 = cohort.unmix(x0, 0), cohort.unmix(x1, 1)
    assert _corr_cols(c0, c1) > 0.99
    np.testing.assert_allclose(c0, z @ cohort.common_map, atol=0.25)


def _naive_posterior_mean(cohort: SimulatedCohort, xs: list[np.ndarray], ids: list[int]):
    w = np.concatenate([cohort.loadings(i) for i in ids], axis=1)
    d = np.diag(np.concatenate([cohort.noise_var[i] for i in ids]))
    x = np.concatenate([np.asarray(v, dtype=np.float64) for v in xs], axis=1)
    cov_x = w.T @ w + d  # voxel x voxel
    return x @ np.linalg.inv(cov_x) @ w.T


def test_bayes_matches_brute_force_on_tiny_cohort() -> None:
    cohort = SimulatedCohort(n_voxels=[12, 9], latent_dim=3, n_common=7, snr=0.3, random_state=2)
    z = np.random.default_rng(0).standard_normal((6, 3))
    xs = cohort.trial_responses(z, seed=1)
    joint = cohort.bayes_optimal_latents(xs, dtype=np.float64)
    np.testing.assert_allclose(joint, _naive_posterior_mean(cohort, xs, [0, 1]), rtol=0, atol=1e-8)
    single = cohort.bayes_optimal_latents(xs[1], subjects=1, dtype=np.float64)
    np.testing.assert_allclose(single, _naive_posterior_mean(cohort, [xs[1]], [1]), atol=1e-8)
    as_list = cohort.bayes_optimal_latents([xs[1]], subjects=[1], dtype=np.float64)
    np.testing.assert_array_equal(single, as_list)
    assert cohort.bayes_optimal_latents(xs).dtype == np.float32


def test_bayes_beats_least_squares_and_two_subjects_beat_one() -> None:
    cohort = SimulatedCohort(n_voxels=256, latent_dim=16, snr=0.05, random_state=8)
    rng = np.random.default_rng(9)
    z_train, z_test = rng.standard_normal((600, 16)), rng.standard_normal((300, 16))
    x_train = cohort.trial_responses(z_train, 0, seed=10)
    x_test = cohort.trial_responses(z_test, seed=11)
    weights = np.linalg.lstsq(x_train.astype(np.float64), z_train, rcond=None)[0]
    r_ols = _corr_rows(x_test[0] @ weights, z_test)
    r_one = _corr_rows(cohort.bayes_optimal_latents(x_test[0], 0), z_test)
    r_two = _corr_rows(cohort.bayes_optimal_latents(x_test), z_test)
    assert r_ols < r_one - 0.1
    assert r_one < r_two - 0.05
    assert 0.55 < r_one < 0.8  # analytic: 1 / sqrt(1 + 16 / (0.05 * 256)) = 0.67


def test_default_cohort_ceiling_is_high_but_not_perfect() -> None:
    cohort = SimulatedCohort(random_state=0)
    assert cohort.n_voxels == [4096, 4096] and cohort.n_common == 4096
    z = np.random.default_rng(1).standard_normal((150, 32))
    xs = cohort.trial_responses(z)
    r_one = _corr_rows(cohort.bayes_optimal_latents(xs[0], 0), z)
    r_two = _corr_rows(cohort.bayes_optimal_latents(xs), z)
    assert 0.6 < r_one < 0.85 and r_one < r_two < 0.92


def test_errors(small: SimulatedCohort) -> None:
    z = np.zeros((3, 8))
    with pytest.raises(ValueError, match=r"^latents have width 5, expected latent_dim=8$"):
        small.trial_responses(np.zeros((3, 5)))
    bad = z.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"^latents contain NaN or infinite values$"):
        small.signal(bad)
    with pytest.raises(
        ValueError, match=r"^latents must be 2-D \(n, latent_dim\), got shape \(8,\)$"
    ):
        small.trial_responses(np.zeros(8))
    msg = r"^subject index 2 out of range for a cohort of 2 subjects$"
    with pytest.raises(IndexError, match=msg):
        small.trial_responses(z, subject=2)
    with pytest.raises(IndexError, match=msg):
        small.bayes_optimal_latents(np.zeros((3, 300)), subjects=2)
    with pytest.raises(IndexError, match=r"^subject index -1 out of range"):
        small.rotation(-1)
    with pytest.raises(
        ValueError, match=r"^responses of subject 1 have shape \(3, 300\), expected"
    ):
        small.bayes_optimal_latents([np.zeros((3, 300)), np.zeros((3, 300))])
    with pytest.raises(ValueError, match=r"^got responses for 1 subjects but 2 subject ids$"):
        small.bayes_optimal_latents(np.zeros((3, 300)), subjects=[0, 1])
    with pytest.raises(ValueError, match=r"^subject 1 has 4 trials, expected 3$"):
        small.bayes_optimal_latents([np.zeros((3, 300)), np.zeros((4, 200))])
    with pytest.raises(ValueError, match=r"^n_common must be in \[1, 200\]"):
        SimulatedCohort(n_voxels=[300, 200], n_common=250)
