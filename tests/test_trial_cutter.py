"""Trial windows cut out of buffered volumes, with synthetic time stamps (no LSL)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bci.nodes.simulate import VirtualScanner, ar1_mean_variance, window_weight
from bci.nodes.trial_cutter import TrialCutter, VolumeBuffer, bad_values_reason
from bci.sim import cut_trials

N_CH = 8
TOL = 0.01


def ramp(times: np.ndarray) -> np.ndarray:
    """Volume at time t: every channel equals t, channel c adds c (easy means to check)."""
    times = np.asarray(times, dtype=np.float64)
    return (times[:, None] + np.arange(N_CH)[None, :]).astype(np.float32)


def make_cutter(n_subjects: int = 1, period: float | None = None, **kwargs) -> TrialCutter:
    buffers = {s: VolumeBuffer(N_CH, period) for s in range(n_subjects)}
    kwargs.setdefault("tolerance_s", TOL)
    return TrialCutter(buffers, 4.0, 4.0, **kwargs)


def feed(cutter: TrialCutter, times, subject: int = 0, arrival: float | None = None) -> None:
    times = np.asarray(times, dtype=np.float64)
    data = ramp(times)
    cutter.buffers[subject].append(data, times, times.max() + 0.5 if arrival is None else arrival)


def test_exact_window_and_completion():
    cutter = make_cutter()
    cutter.add_trial(0, "face-0001", "train", onset=10.0, known_at=10.01)
    feed(cutter, np.arange(0.0, 18.0))  # up to 17: the window [14, 18) is not closed yet
    assert cutter.cut() == []
    feed(cutter, [18.0], arrival=18.25)
    [r] = cutter.cut()
    assert (r.trial.trial, r.trial.stimulus, r.trial.phase) == (0, "face-0001", "train")
    assert r.subject == 0
    assert r.n_volumes == 4 and r.bad is None
    np.testing.assert_allclose(r.pattern, ramp([15.5])[0])  # mean of 14, 15, 16, 17
    assert r.arrival == 18.25  # the volume that closed the window
    assert r.pattern.dtype == np.float32 and r.pattern.shape == (N_CH,)
    assert cutter.cut() == [] and cutter.n_pending == 0


def test_boundaries_start_inclusive_end_exclusive_with_tolerance():
    cutter = make_cutter()
    cutter.add_trial(0, "a", "train", onset=10.0)
    # 13.995 is within the tolerance of the start (in); 13.98 is not (out);
    # 17.995 is within the tolerance of the end (out, and it closes the window).
    feed(cutter, [13.98, 13.995, 16.0, 17.995])
    [r] = cutter.cut()
    assert r.n_volumes == 2
    np.testing.assert_allclose(r.pattern, ramp([(13.995 + 16.0) / 2])[0], rtol=1e-6)

    exact = make_cutter()
    exact.add_trial(0, "a", "train", onset=10.0)
    feed(exact, [14.0, 16.0, 18.0])
    [r] = exact.cut()
    assert r.n_volumes == 2  # 14 in, 18 out


def test_regular_stream_completes_one_volume_early():
    cutter = make_cutter(period=2.0)
    cutter.add_trial(0, "a", "train", onset=10.0)
    feed(cutter, [12.0, 14.0], arrival=14.3)
    assert cutter.cut() == []
    feed(cutter, [16.0], arrival=16.3)  # the next volume (18) would be outside [14, 18)
    [r] = cutter.cut()
    assert r.n_volumes == 2 and r.arrival == 16.3


def test_late_marker_is_cut_at_once_and_arrives_with_the_marker():
    cutter = make_cutter(retain_s=30.0)
    feed(cutter, np.arange(0.0, 40.0), arrival=40.0)
    cutter.add_trial(3, "a", "test", onset=20.0, known_at=41.5)
    [r] = cutter.cut()
    assert r.bad is None and r.n_volumes == 4
    np.testing.assert_allclose(r.pattern, ramp([25.5])[0])
    assert r.arrival == 41.5  # ready only when the marker came


def test_marker_later_than_the_buffer_is_bad():
    cutter = make_cutter(retain_s=5.0)
    feed(cutter, np.arange(0.0, 40.0))
    cutter.cut()  # nothing pending: trims to the last 5 s
    assert cutter.buffers[0].times[0] >= 34.0
    cutter.add_trial(1, "a", "train", onset=10.0, known_at=40.0)
    [r] = cutter.cut()
    assert r.bad == "window is older than the buffered data (marker arrived 30.0 s late)"
    assert r.n_volumes == 0 and not r.pattern.any()


@pytest.mark.parametrize(
    ("poison", "reason"),
    [
        ({1: np.nan, 3: np.nan, 5: np.nan}, "NaN in 3 of 8 voxels"),
        ({2: np.inf}, "Inf in 1 of 8 voxels"),
        ({2: np.nan, 4: -np.inf}, "NaN/Inf in 2 of 8 voxels"),
    ],
)
def test_non_finite_window_is_bad_and_the_next_trial_is_fine(poison, reason):
    cutter = make_cutter()
    cutter.add_trial(0, "a", "train", onset=10.0)
    cutter.add_trial(1, "b", "train", onset=20.0)
    times = np.arange(0.0, 30.0)
    data = ramp(times)
    for channel, value in poison.items():
        data[15, channel] = value  # t = 15, inside trial 0's window only
    cutter.buffers[0].append(data, times, 30.0)
    bad, good = cutter.cut()
    assert (bad.trial.trial, bad.bad, bad.n_volumes) == (0, reason, 4)
    assert not bad.pattern.any()
    assert (good.trial.trial, good.bad) == (1, None)
    np.testing.assert_allclose(good.pattern, ramp([25.5])[0])


def test_gap_gives_no_volumes_in_window():
    cutter = make_cutter()
    cutter.add_trial(0, "a", "train", onset=10.0)
    feed(cutter, [11.0, 12.0, 13.0, 19.0, 20.0])  # the scanner dropped 14-18
    [r] = cutter.cut()
    assert r.bad == "no volumes in window" and r.n_volumes == 0 and not r.pattern.any()


def test_stalled_stream_is_given_up_after_stall_s():
    cutter = make_cutter(stall_s=3.0)
    cutter.add_trial(0, "a", "train", onset=10.0)
    feed(cutter, [14.0, 15.0, 16.0])  # then the stream dies
    assert cutter.cut(now=20.9) == []
    [r] = cutter.cut(now=21.0)
    assert r.bad == "stream stalled: no volume 3.0 s after the window end"
    assert r.arrival == 21.0


def test_order_subjects_and_out_of_order_chunks():
    cutter = make_cutter(n_subjects=2)
    for k in range(3):
        cutter.add_trial(k, f"s{k}", "train", onset=10.0 + 6.0 * k)
    times = np.arange(0.0, 40.0)
    shuffled = np.random.default_rng(0).permutation(times)
    cutter.buffers[0].append(ramp(shuffled), shuffled, 40.0)  # one chunk, any order
    feed(cutter, times[:24], subject=1)  # subject 1 lags: up to 23, trial 1 needs 24
    first = cutter.cut()
    assert [(r.trial.trial, r.subject) for r in first] == [(0, 0), (0, 1), (1, 0), (2, 0)]
    feed(cutter, times[24:], subject=1)
    second = cutter.cut()
    assert [(r.trial.trial, r.subject) for r in second] == [(1, 1), (2, 1)]
    for r in first + second:
        np.testing.assert_allclose(r.pattern, ramp([r.trial.onset + 5.5])[0])


def test_repeated_markers_are_ignored_and_phases_are_separate():
    cutter = make_cutter()
    assert cutter.add_trial(0, "a", "train", 10.0) is not None
    assert cutter.add_trial(0, "a", "train", 10.0) is None
    assert cutter.add_trial(0, "a", "test", 50.0) is not None
    assert cutter.n_pending == 2


def test_baseline_is_subtracted_when_asked():
    cutter = make_cutter(baseline_s=4.0)
    cutter.add_trial(0, "a", "train", onset=10.0)
    feed(cutter, np.arange(0.0, 20.0))
    [r] = cutter.cut()
    np.testing.assert_allclose(r.pattern, np.full(N_CH, 15.5 - 7.5))  # [14,18) - [6,10)

    empty = make_cutter(baseline_s=4.0)
    empty.add_trial(0, "a", "train", onset=10.0)
    feed(empty, np.arange(12.0, 20.0))
    [r] = empty.cut()
    assert r.bad == "no volumes in baseline"


def test_buffer_stays_bounded():
    cutter = make_cutter(n_subjects=1, retain_s=10.0)
    longest = 0
    for k in range(200):
        cutter.add_trial(k, "a", "train", onset=6.0 * k)
        feed(cutter, np.arange(6.0 * k, 6.0 * (k + 1)))
        cutter.cut()
        longest = max(longest, len(cutter.buffers[0]))
    assert longest <= 20
    assert cutter.n_pending == 1  # the last window is still open


def test_remove_subject_and_bad_input():
    cutter = make_cutter(n_subjects=2)
    cutter.add_trial(0, "a", "train", onset=10.0)
    cutter.remove_subject(1)
    feed(cutter, np.arange(0.0, 20.0))
    assert [r.subject for r in cutter.cut()] == [0]
    with pytest.raises(ValueError, match="3 volumes but 2 timestamps"):
        cutter.buffers[0].append(np.zeros((3, N_CH)), np.zeros(2), 0.0)
    with pytest.raises(ValueError):
        TrialCutter({}, 4.0, 0.0)
    assert bad_values_reason(np.zeros((2, 3))) is None


def test_cutter_agrees_with_the_batch_cutter_of_bci_sim():
    rng = np.random.default_rng(1)
    bold = rng.standard_normal((100, N_CH)).astype(np.float32)
    times = 2.0 * np.arange(100)
    onsets = np.sort(rng.uniform(0.0, 170.0, 15))
    cutter = make_cutter(tolerance_s=1e-9)
    for k, onset in enumerate(onsets):
        cutter.add_trial(k, "a", "train", onset)
    cutter.buffers[0].append(bold, times, 0.0)
    got = np.stack([r.pattern for r in cutter.cut()])
    np.testing.assert_allclose(got, cut_trials(bold, onsets, 2.0, 4.0, 4.0), rtol=1e-5)


# -- the simulator's noise calibration (pure numpy, no LSL) ---------------------------------------


def test_window_weight_and_ar1_mean_variance():
    weight, n = window_weight(2.0, 2.0, 4.0, 4.0)
    assert n == 2.0 and 0.7 < weight < 1.0
    assert ar1_mean_variance(1, 0.5) == 1.0
    assert ar1_mean_variance(2, 0.0) == 0.5
    assert math.isclose(ar1_mean_variance(2, 0.5), (2 + 2 * 0.5) / 4)
    x = np.random.default_rng(0).standard_normal((20000, 3))
    ar = np.empty_like(x)
    ar[:, 0] = x[:, 0]
    for i in range(1, 3):
        ar[:, i] = 0.6 * ar[:, i - 1] + math.sqrt(1 - 0.36) * x[:, i]
    assert abs(ar.mean(axis=1).var() - ar1_mean_variance(3, 0.6)) < 0.03


def test_virtual_scanner_window_means_have_the_configured_snr():
    scanner = VirtualScanner(
        1, 128, 16, snr=1.0, ar_rho=0.3, seed=3, tr_s=2.0, stimulus_s=2.0, delay_s=4.0, window_s=4.0
    )
    rng = np.random.default_rng(0)
    latents = rng.standard_normal((150, 16))
    onsets = 10.0 + 40.0 * np.arange(150) + rng.uniform(0.0, 2.0, 150)  # no overlap
    for onset, z in zip(onsets, latents, strict=True):
        scanner.add_stimulus(onset, z)
    _, [volumes] = scanner.volumes_until(onsets[-1] + 20.0)
    cut = cut_trials(volumes, onsets, 2.0, 4.0, 4.0)
    signal = scanner.cohort.signal(latents, 0)
    snr = signal.var(axis=0) / (cut - signal).var(axis=0)
    assert 0.85 < np.median(snr) < 1.15  # about 1 +- sampling error of 150 trials
    assert abs(float((cut - signal).mean())) < 0.1  # same scale as the cohort's responses


def test_a_window_past_its_runs_end_is_cut_from_the_run_when_its_last_volume_is_in():
    """Run 0 has volumes 0..15 (its end, 16 s, is declared); the next run starts at 60 s."""
    cutter = make_cutter(period=1.0)
    cutter.add_trial(0, "face-0001", "train", onset=10.0, run_end=16.0)  # window [14, 18)
    feed(cutter, np.arange(0.0, 15.0))
    assert cutter.cut(now=15.5) == []  # volume 15 of the run is still to come
    feed(cutter, [15.0])
    [r] = cutter.cut(now=16.0)  # complete without waiting for the next run
    assert r.bad is None and r.n_volumes == 2
    np.testing.assert_allclose(r.pattern, ramp([14.5])[0])  # volumes 14 and 15 only
    # without the run's end the same window waits for a volume of the next run
    late = make_cutter(period=1.0)
    late.add_trial(0, "face-0001", "train", onset=10.0)
    feed(late, np.arange(0.0, 16.0))
    assert late.cut(now=16.0) == []
    feed(late, [60.0, 61.0])
    [r] = late.cut(now=61.0)
    assert r.n_volumes == 2 and r.bad is None  # the next run's volumes are outside the window


def test_give_up_publishes_bad_the_windows_a_stopped_stream_has_passed():
    buffers = {0: VolumeBuffer(2, 1.0), 1: VolumeBuffer(2, 1.0)}
    cutter = TrialCutter(buffers, delay_s=1.0, window_s=2.0, tolerance_s=0.0)
    cutter.add_trial(0, "a", "train", 0.0)  # window [1, 3)
    cutter.add_trial(1, "b", "train", 4.0)  # window [5, 7)
    given = cutter.give_up(1, before=5.0, why="stream stopped", now=9.0)
    assert [(r.trial.trial, r.subject, r.bad, r.arrival) for r in given] == [
        (0, 1, "stream stopped", 9.0)
    ]
    assert not given[0].pattern.any() and cutter.n_pending == 3
    assert cutter.give_up(1, before=5.0, why="stream stopped", now=9.0) == []


def test_censored_volumes_are_left_out_and_a_trial_is_bad_only_when_all_are():
    cutter = make_cutter(skip_censored=True)
    cutter.add_trial(0, "a", "train", onset=10.0)
    cutter.add_trial(1, "b", "train", onset=20.0)
    times = np.arange(0.0, 30.0)
    data = ramp(times)
    data[15] = np.nan  # censored: one of the first window's four volumes
    data[24:28] = np.nan  # the whole second window
    cutter.buffers[0].append(data, times, 30.0)
    first, second = cutter.cut()
    assert first.bad is None and (first.n_volumes, first.n_censored) == (3, 1)
    np.testing.assert_allclose(first.pattern, ramp([(14 + 16 + 17) / 3])[0], rtol=1e-6)
    assert second.bad == "all 4 volumes of the window censored"
    assert (second.n_volumes, second.n_censored) == (0, 4)
    # Without skip_censored (preprocessing off) a NaN volume makes the trial bad, as before.
    old = make_cutter()
    old.add_trial(0, "a", "train", onset=10.0)
    old.buffers[0].append(data, times, 30.0)
    [r] = old.cut()
    assert r.bad == f"NaN in {N_CH} of {N_CH} voxels" and r.n_censored == 0
