"""Tests of the canonical HRF and the BOLD simulator (batch, incremental, trial cutting)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import trapezoid

from bci.sim import (
    BoldStream,
    cut_trials,
    event_response,
    hrf,
    hrf_kernel,
    peak_time,
    simulate_bold,
    trial_window,
)
from bci.sim.hrf import hrf_integral


def _hand_hrf(t: float) -> float:
    """SPM's canonical HRF by hand: gamma(6, 1) density minus gamma(16, 1) density / 6."""
    if t <= 0:
        return 0.0
    return t**5 * math.exp(-t) / math.factorial(5) - t**15 * math.exp(-t) / math.factorial(15) / 6


def test_hrf_kernel_matches_spm_hrf() -> None:
    kernel = hrf_kernel(2.0, oversampling=1)  # == spm_hrf(2)
    hand = np.array([_hand_hrf(2.0 * k) for k in range(17)])
    assert kernel.shape == (17,)
    np.testing.assert_allclose(kernel, hand / hand.sum(), rtol=1e-12, atol=1e-15)
    spm_printed = [0.0, 0.0866, 0.3749, 0.3849, 0.2161, 0.0769, 0.0016, -0.0306, -0.0373, -0.0308]
    np.testing.assert_allclose(kernel[:10], spm_printed, atol=6e-5)
    assert kernel.sum() == pytest.approx(1.0)
    fine = hrf_kernel(2.0, oversampling=16)
    assert fine.shape == (257,) and fine.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(fine[::16] / fine[::16].sum(), kernel, atol=1e-12)


def test_hrf_values_peak_and_integral() -> None:
    t = np.array([-1.0, 0.0, 1.0, 5.0, 10.0, 15.0, 32.0, 33.0])
    np.testing.assert_allclose(hrf(t), [_hand_hrf(x) if x <= 32 else 0.0 for x in t], atol=1e-15)
    grid = np.arange(0.0, 32.0, 1e-4)
    peak = grid[np.argmax(hrf(grid))]
    # the response gamma's mode is 5 s; the rising undershoot pulls the peak ~1.5 ms earlier
    assert 4.997 < peak < 5.0
    assert peak_time() == pytest.approx(peak, abs=1e-4)
    total = hrf_integral(32.0)
    assert total == pytest.approx(trapezoid(hrf(grid), grid), abs=1e-6)
    assert total == pytest.approx(1 - 1 / 6, abs=1e-3)  # two unit-mass gammas, almost all of it


def test_event_response_scaled_to_peak() -> None:
    assert event_response(peak_time()) == pytest.approx(1.0)
    assert np.max(event_response(np.arange(0, 40, 0.01))) == pytest.approx(1.0, abs=1e-6)
    assert event_response(-0.5) == 0.0 and event_response(0.0) == 0.0
    block = event_response(np.arange(0, 45, 0.01), duration_s=4.0)
    assert block.max() == pytest.approx(1.0, abs=1e-6)
    assert peak_time(4.0) > peak_time() + 1.5


def test_ar1_noise_autocorrelation_and_std() -> None:
    rho, sd = 0.6, 2.0
    stream = BoldStream(200, 1.0, noise_std=sd, ar_rho=rho, drift_std=0.0, baseline=0.0, seed=0)
    raw = stream.volumes_until(1999.0)
    assert raw.shape == (2000, 200) and raw.dtype == np.float32
    x = raw - raw.mean(axis=0, dtype=np.float64)
    lag1 = np.sum(x[1:] * x[:-1], axis=0) / np.sum(x * x, axis=0)
    assert np.mean(lag1) == pytest.approx(rho, abs=0.02)
    assert np.mean(x.std(axis=0)) == pytest.approx(sd, rel=0.03)


def test_drift_amplitude_and_baseline() -> None:
    stream = BoldStream(300, 2.0, noise_std=0.0, drift_std=1.5, baseline=50.0, seed=1)
    x = stream.volumes_until(2.0 * 3999).astype(np.float64)
    assert np.mean(x) == pytest.approx(50.0, abs=0.2)
    assert np.mean(x.var(axis=0)) == pytest.approx(1.5**2, rel=0.2)


def _events(n_trials: int, n_voxels: list[int], seed: int):
    rng = np.random.default_rng(seed)
    onsets = np.cumsum(rng.uniform(3.0, 9.0, n_trials))
    patterns = [rng.standard_normal((n_trials, n)).astype(np.float32) for n in n_voxels]
    return onsets, patterns


def test_incremental_equals_batch() -> None:
    onsets, patterns = _events(12, [40, 25], seed=2)
    kwargs = {"duration_s": 1.0, "noise_std": 0.5, "ar_rho": 0.4, "drift_std": 0.3, "seed": 5}
    batch = simulate_bold(onsets, patterns, 50, 1.5, **kwargs)
    assert [b.shape for b in batch] == [(50, 40), (50, 25)] and batch[0].dtype == np.float32
    stream = BoldStream([40, 25], 1.5, **kwargs)
    chunks: list[list[np.ndarray]] = []
    k = 0
    for now in [0.0, 0.1, 4.4, 4.5, 4.5, 20.0, 31.49, 47.0, 60.0, 73.5]:
        while k < len(onsets) and onsets[k] <= now:  # markers arrive as the clock passes them
            stream.add_event(onsets[k], [p[k] for p in patterns])
            k += 1
        chunks.append(stream.volumes_until(now))
    assert stream.n_emitted == 50 and chunks[4][0].shape == (0, 40)
    for s in range(2):
        np.testing.assert_array_equal(np.concatenate([c[s] for c in chunks]), batch[s])
    again = simulate_bold(onsets, patterns, 50, 1.5, **kwargs)
    np.testing.assert_array_equal(again[1], batch[1])
    other = simulate_bold(onsets, patterns, 50, 1.5, **{**kwargs, "seed": 6})
    assert not np.allclose(other[0], batch[0])


def test_trial_window() -> None:
    assert trial_window(10.0, 2.0) == slice(7, 9)  # volumes at 14 s and 16 s
    assert trial_window(10.0, 2.0, delay_s=-4.0, duration_s=4.0) == slice(3, 5)
    assert trial_window(0.5, 1.0, delay_s=4.0, duration_s=2.0, start_s=0.25) == slice(5, 7)


@pytest.mark.parametrize("per_voxel_baseline", [False, True])
def test_cut_trials_recover_patterns(per_voxel_baseline: bool) -> None:
    n_trials, n_voxels, tr, iti = 15, 300, 2.0, 20.0
    rng = np.random.default_rng(3)
    onsets = 10.0 + iti * np.arange(n_trials)
    patterns = rng.standard_normal((n_trials, n_voxels))
    base = 100.0 + 20.0 * rng.standard_normal(n_voxels) if per_voxel_baseline else 100.0
    n_volumes = int((onsets[-1] + iti) / tr)
    bold = simulate_bold(
        onsets, patterns, n_volumes, tr, noise_std=0.1, drift_std=0.2, baseline=base, seed=4
    )
    cut = cut_trials(bold, onsets, tr, baseline_s=4.0 if per_voxel_baseline else 0.0)
    assert cut.shape == (n_trials, n_voxels) and cut.dtype == np.float32
    for k in range(n_trials):
        assert np.corrcoef(cut[k], patterns[k])[0, 1] > 0.9


def test_bold_errors() -> None:
    stream = BoldStream([10, 5], 2.0, seed=0)
    with pytest.raises(ValueError, match=r"^pattern has shape \(4,\), expected \(5,\)$"):
        stream.add_event(1.0, [np.zeros(10), np.zeros(4)])
    with pytest.raises(ValueError, match=r"^got 1 patterns for 2 subjects$"):
        stream.add_event(1.0, [np.zeros(10)])
    with pytest.raises(ValueError, match=r"^trial at 30.0 s needs volumes 17:19 of 10$"):
        cut_trials(np.zeros((10, 3)), [30.0], 2.0)
