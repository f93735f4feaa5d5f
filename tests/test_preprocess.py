"""Online preprocessing: drift basis, cumulative GLM, scaling, censoring, the per-volume API."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bci.preprocess import (
    CleanVolume,
    PreprocessSettings,
    VolumePreprocessor,
    framewise_displacement,
)
from bci.preprocess.censor import MIN_JUMPS, Censor
from bci.preprocess.drift import DriftBasis, n_cosines
from bci.preprocess.glm import CumulativeGLM
from bci.preprocess.global_signal import GlobalSignalRegression
from bci.preprocess.highpass import ExponentialHighPass, ema_decay
from bci.preprocess.scaling import RunningScaler

TR = 2.0


def test_drift_basis_is_spm_dct_set() -> None:
    # SPM: K = fix(2 N TR / cutoff): 200 volumes of 2 s with a 128 s cutoff -> 6 cosines
    assert n_cosines(200, 2.0, 128.0) == 6
    assert n_cosines(64, 2.0, 128.0) == 2 and n_cosines(10, 2.0, 0.0) == 0
    basis = DriftBasis(200, 2.0, 128.0)
    x = basis.matrix(200)
    n = np.arange(200)
    assert x.shape == (200, 8)
    np.testing.assert_allclose(x[:, 0], 1.0)
    np.testing.assert_allclose(x[:, 1], n / 200)
    for k in range(1, 7):
        np.testing.assert_allclose(x[:, 1 + k], np.cos(np.pi * k * (2 * n + 1) / 400), atol=1e-12)
        period_s = 2 * 200 * 2.0 / k
        assert period_s >= 128.0
    # the cosines are orthogonal over the horizon, as SPM's are
    gram = x[:, 2:].T @ x[:, 2:]
    np.testing.assert_allclose(gram, np.eye(6) * 100, atol=1e-9)
    # past the horizon the rows stay defined (the run went on longer than scheduled)
    assert np.all(np.isfinite(basis.row(450)))
    assert [basis.n_active_cosines(v, 2.0, 128.0) for v in (1, 31, 32, 64, 500)] == [0, 0, 1, 2, 6]


def test_cumulative_glm_equals_refitting_the_run_so_far() -> None:
    rng = np.random.default_rng(0)
    x = np.column_stack([np.ones(40), rng.standard_normal((40, 3))])
    y = rng.standard_normal((40, 7))
    glm = CumulativeGLM(np.zeros(4), 7)
    for t in range(40):
        residual = glm.update(x[t], y[t])
        beta = np.linalg.lstsq(x[: t + 1], y[: t + 1], rcond=None)[0]
        np.testing.assert_allclose(residual, y[t] - x[t] @ beta, atol=1e-9)
    np.testing.assert_allclose(glm.coefficients(), beta, atol=1e-9)
    assert glm.n_used == 40


def test_cumulative_glm_ridge_spares_the_constant_and_subsets_join_later() -> None:
    rng = np.random.default_rng(1)
    x = np.column_stack([np.ones(30), rng.standard_normal((30, 2))])
    y = 50.0 + rng.standard_normal((30, 3))
    glm = CumulativeGLM([0.0, 5.0, 5.0], 3)
    for t in range(30):
        active = np.array([True, True, t >= 10])
        residual = glm.update(x[t], y[t], active)
        cols = np.flatnonzero(active)
        a = x[: t + 1, cols].T @ x[: t + 1, cols] + np.diag([0.0] + [5.0] * (cols.size - 1))
        beta = np.linalg.solve(a, x[: t + 1, cols].T @ y[: t + 1])
        np.testing.assert_allclose(residual, y[t] - x[t, cols] @ beta, atol=1e-9)
    # the unpenalised constant takes the baseline of 50 whole
    assert np.all(np.abs(glm.coefficients()[0] - 50.0) < 1.0)


def test_scaling_zscore_and_psc_use_the_run_so_far() -> None:
    rng = np.random.default_rng(2)
    raw = 200.0 + rng.standard_normal((20, 4))
    residual = rng.standard_normal((20, 4))
    z, psc = RunningScaler("zscore", 4), RunningScaler("psc", 4)
    for t in range(20):
        got_z = z.scale(raw[t], residual[t])
        got_psc = psc.scale(raw[t], residual[t])
        sd = residual[: t + 1].std(axis=0)
        np.testing.assert_allclose(got_z, residual[t] / sd if t else 0.0, atol=1e-12)
        np.testing.assert_allclose(got_psc, 100 * residual[t] / raw[: t + 1].mean(axis=0))
    assert np.isnan(RunningScaler("psc", 1).scale(np.array([-1.0]), np.array([0.5]))[0])
    with pytest.raises(ValueError, match="scaling must be one of zscore, psc, none, got 'x'"):
        RunningScaler("x", 3)


def test_framewise_displacement_power() -> None:
    fd = framewise_displacement([0, 0, 0, 0, 0, 0], [0.1, -0.2, 0.3, 1.0, 0.0, -1.0])
    assert fd == pytest.approx(0.6 + 50 * math.radians(2.0))
    with pytest.raises(ValueError, match="6 values, got 5 and 6"):
        framewise_displacement(np.zeros(5), np.zeros(6))


def drifting_run(n: int = 300, n_voxels: int = 50, seed: int = 0) -> tuple[np.ndarray, ...]:
    """baseline + slow drift + a fast evoked-like signal + noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) * TR
    baseline = rng.uniform(500, 1500, n_voxels)
    drift = np.outer(t / t[-1], rng.normal(0, 20, n_voxels))
    drift += np.outer(np.cos(2 * np.pi * t / 400 + 1.0), rng.normal(0, 20, n_voxels))
    signal = np.outer(np.sin(2 * np.pi * t / 12.0), rng.normal(0, 3, n_voxels))
    noise = rng.normal(0, 1.0, (n, n_voxels))
    return baseline + drift + signal + noise, signal, drift


def test_preprocessor_removes_drift_and_keeps_the_signal() -> None:
    data, signal, _ = drifting_run()
    # One signal time course in every voxel: the global signal step would take it for shared
    # drift (test_global_signal_* covers that step). A drift 7x the signal: ridge 0 and SPM's
    # 128 s cutoff (clean r 0.85; 0.63 at 256 s; 0.28 with the defaults, made for realistic
    # drifts in runs of a few minutes).
    settings = PreprocessSettings(scaling="none", ridge=0.0, global_signal=False, cutoff_s=128.0)
    pre = VolumePreprocessor(data.shape[1], TR, settings)
    pre.start_run(n_volumes=data.shape[0])
    clean = np.stack([pre.update(v).values for v in data])
    late = slice(100, None)  # once the drift cosines have joined the fit
    raw_r = np.corrcoef((data - data.mean(0))[late].ravel(), signal[late].ravel())[0, 1]
    clean_r = np.corrcoef(clean[late].ravel(), signal[late].ravel())[0, 1]
    assert raw_r < 0.3 and clean_r > 0.75
    assert np.abs(clean[late] - signal[late]).std() < 1.6  # noise sd 1, drift sd 20
    assert pre.summary() == {
        "method": "glm",
        "runs": 1,
        "volumes": 300,
        "censored": 0,
        "censored_by_reason": {"non-finite": 0, "motion": 0, "intensity": 0},
    }


def test_preprocessor_is_causal_and_runs_start_afresh() -> None:
    data, _, _ = drifting_run(n=80, n_voxels=5)
    other = data.copy()
    other[40:] += 1000.0  # a different future
    outs = []
    for series in (data, other):
        pre = VolumePreprocessor(5, TR, PreprocessSettings())
        pre.start_run(n_volumes=80)
        outs.append(np.stack([pre.update(v).values for v in series]))
    np.testing.assert_array_equal(outs[0][:40], outs[1][:40])
    pre = VolumePreprocessor(5, TR, PreprocessSettings())
    pre.start_run(n_volumes=80)
    first = [pre.update(v).values for v in data[:20]]
    pre.start_run(n_volumes=80)
    again = [pre.update(v).values for v in data[:20]]
    np.testing.assert_array_equal(first, again)
    assert pre.n_runs == 2 and pre.run_volumes == 20 and pre.n_volumes == 40


def test_censoring_nan_spike_and_motion() -> None:
    data, _, _ = drifting_run(n=60, n_voxels=40, seed=3)
    data[30] *= 1.03  # a 3 % intensity spike
    data[40, 7] = np.nan
    motion = np.zeros((60, 6))
    motion[50:, 0] = 1.0  # a 1 mm jump at volume 50
    pre = VolumePreprocessor(40, TR, PreprocessSettings())
    pre.start_run(n_volumes=60, motion=True)
    out = [pre.update(v, m) for v, m in zip(data, motion, strict=True)]
    flagged = {i: o.reason for i, o in enumerate(out) if o.censored}
    assert flagged == {30: "intensity", 40: "non-finite", 50: "motion"}
    assert np.all(np.isnan(out[30].values)) and np.all(np.isfinite(out[31].values))
    assert out[50].fd_mm == pytest.approx(1.0) and out[51].fd_mm == 0.0
    assert pre.summary()["censored"] == 3
    assert pre.summary()["censored_by_reason"] == {"non-finite": 1, "motion": 1, "intensity": 1}


def test_censor_accepts_a_step_after_three_volumes_and_waits_for_history() -> None:
    censor = Censor(fd_threshold_mm=0.5, intensity_z=5.0)
    rng = np.random.default_rng(4)
    levels = [100 + 0.01 * rng.standard_normal() for _ in range(MIN_JUMPS + 5)] + [110.0] * 5
    reasons = [censor.check(np.full(10, v)) for v in levels]
    assert reasons[: MIN_JUMPS + 5] == [None] * (MIN_JUMPS + 5)
    assert reasons[MIN_JUMPS + 5 :] == ["intensity"] * 3 + [None, None]
    early = Censor(0.5, 5.0)  # too few jumps yet to know what a big one is
    assert [early.check(np.full(3, v)) for v in (1.0, 1.0, 5.0)] == [None, None, None]


def test_motion_regressors_remove_motion_locked_signal() -> None:
    rng = np.random.default_rng(5)
    n = 200
    motion = np.cumsum(rng.normal(0, 0.02, (n, 6)), axis=0)
    data = 1000.0 + motion @ rng.normal(0, 30, (6, 20)) + rng.normal(0, 1, (n, 20))
    results = {}
    for use in (False, True):
        settings = PreprocessSettings(
            scaling="none", motion_regressors=use, ridge=1.0, highpass="none"
        )
        pre = VolumePreprocessor(20, TR, settings)
        pre.start_run(n_volumes=n, motion=True)
        results[use] = np.stack(
            [pre.update(v, m).values for v, m in zip(data, motion, strict=True)]
        )
    assert results[True][50:].std() < 1.3 < 2.5 < results[False][50:].std()


def test_method_none_passes_volumes_through() -> None:
    pre = VolumePreprocessor(3, TR, PreprocessSettings(method="none"))
    volume = np.array([1.5, np.nan, 3.0])
    out = pre.update(volume)
    assert isinstance(out, CleanVolume) and not out.censored and out.values.dtype == np.float32
    np.testing.assert_array_equal(out.values, volume.astype(np.float32))
    assert pre.summary()["volumes"] == 1 and pre.summary()["censored"] == 0


def test_bad_input_one_line_errors() -> None:
    pre = VolumePreprocessor(4, TR, PreprocessSettings())
    with pytest.raises(ValueError, match="volume has 3 voxels, expected 4"):
        pre.update(np.zeros(3))
    pre.start_run(motion=True)
    with pytest.raises(ValueError, match="started with motion=True: every volume needs it"):
        pre.update(np.zeros(4))
    with pytest.raises(ValueError, match="motion must be 6 numbers"):
        pre.update(np.zeros(4), np.zeros(5))
    with pytest.raises(ValueError, match="method must be one of glm, none, got 'spm'"):
        PreprocessSettings(method="spm")
    with pytest.raises(ValueError, match="unknown \\[preprocess\\] key 'cutoff'"):
        PreprocessSettings.from_config({"cutoff": 100.0})
    assert PreprocessSettings.from_config({"cutoff_s": 100.0}).cutoff_s == 100.0


def test_unknown_motion_censors_the_volume() -> None:
    pre = VolumePreprocessor(3, TR, PreprocessSettings())
    pre.start_run(motion=True)
    pre.update(np.ones(3), np.zeros(6))
    out = pre.update(np.ones(3), np.full(6, np.nan))
    assert out.censored and out.reason == "motion" and out.fd_mm is None


def test_process_run_is_update_volume_by_volume() -> None:
    data, _, _ = drifting_run(n=40, n_voxels=6, seed=7)
    data[12, 0] = np.nan
    batch = VolumePreprocessor(6, TR, PreprocessSettings())
    values, censored = batch.process_run(data)
    online = VolumePreprocessor(6, TR, PreprocessSettings())
    online.start_run(n_volumes=40)
    expected = np.stack([online.update(v).values for v in data])
    np.testing.assert_array_equal(values, expected)
    assert censored.tolist() == [i == 12 for i in range(40)]
    with pytest.raises(ValueError, match="3 motion rows for 40 volumes"):
        batch.process_run(data, np.zeros((3, 6)))


def test_exponential_highpass_is_a_first_order_filter_at_the_cutoff() -> None:
    assert ema_decay(2.0, 128.0) == pytest.approx(math.exp(-2 * math.pi * 2.0 / 128.0))
    with pytest.raises(ValueError, match="need tr_s > 0 and a finite cutoff_s > 0; got 2.0, 0.0"):
        ema_decay(2.0, 0.0)
    t = np.arange(600) * TR
    slow = 20.0 * np.cos(2 * np.pi * t / 512.0 + 0.5)  # drift, 4x slower than the cutoff
    fast = 3.0 * np.sin(2 * np.pi * t / 12.0)  # the evoked band
    highpass = ExponentialHighPass(TR, 128.0, 2)
    pairs = zip(slow, fast, strict=True)
    out = np.stack([highpass.filter(np.array([s + f, 5.0])) for s, f in pairs])
    lam = ema_decay(TR, 128.0)
    # The level starts at zero: a constant decays as lambda ** t (the GLM before it leaves
    # none), and the first volume keeps lambda of itself.
    np.testing.assert_allclose(out[:, 1], 5.0 * lam ** np.arange(1, 601), rtol=1e-9, atol=1e-12)
    assert out[0, 0] == pytest.approx(lam * (slow[0] + fast[0]))
    late = slice(100, None)  # past the start-up

    def gain(period_s: float, amplitude: float) -> float:
        """Amplitude of the output at a period, relative to the input's."""
        basis = np.stack([np.cos(2 * np.pi * t / period_s), np.sin(2 * np.pi * t / period_s)], 1)
        coef = np.linalg.lstsq(basis[late], out[late, 0], rcond=None)[0]
        return float(np.hypot(*coef) / amplitude)

    # A first-order high-pass at the cutoff: y_t = x_t - (1 - l) sum_k l^k x_(t-k), so
    # H(w) = 1 - (1 - l) / (1 - l exp(-i w)) with w = 2 pi TR / period: 0.24 for the 512 s
    # drift, 0.95 for the 12 s response.
    for period, amplitude in ((512.0, 20.0), (12.0, 3.0)):
        expected = abs(1 - (1 - lam) / (1 - lam * np.exp(-2j * np.pi * TR / period)))
        assert gain(period, amplitude) == pytest.approx(expected, abs=0.01)
    assert gain(512.0, 20.0) < 0.3 < 0.9 < gain(12.0, 3.0)


def test_highpass_ema_runs_after_the_glm_and_can_be_switched_off() -> None:
    data, signal, drift = drifting_run(n=200, n_voxels=30, seed=6)
    errors = {}
    for highpass in ("ema", "none"):
        settings = PreprocessSettings(scaling="none", highpass=highpass)
        pre = VolumePreprocessor(30, TR, settings)
        values, _ = pre.process_run(data)
        errors[highpass] = np.std(values[20:] - signal[20:])
    assert errors["ema"] < 0.5 * errors["none"]
    with pytest.raises(ValueError, match="highpass must be one of ema, none, got 'iir'"):
        PreprocessSettings(highpass="iir")


def test_global_signal_regression_removes_a_shared_drift_and_keeps_the_rest() -> None:
    rng = np.random.default_rng(8)
    n, n_voxels = 150, 64
    shared = np.cumsum(rng.normal(0, 1, n))  # one time course, each voxel its own weight
    weights = rng.uniform(0.5, 2.0, n_voxels)
    patterns = rng.normal(0, 1, (n, n_voxels))  # what tells volumes apart
    patterns -= patterns.mean(axis=1, keepdims=True)
    gsr = GlobalSignalRegression(n_voxels)
    out = np.stack([gsr.remove(p + s * weights) for p, s in zip(patterns, shared, strict=True)])
    late = slice(30, None)
    assert np.std(out[late] - patterns[late]) < 0.1 * np.std(np.outer(shared, weights)[late])
    assert np.corrcoef(out[late].ravel(), patterns[late].ravel())[0, 1] > 0.98
    np.testing.assert_array_equal(GlobalSignalRegression(3).remove(np.zeros(3)), np.zeros(3))
