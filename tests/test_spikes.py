"""Spike detection against references: band-pass, detector, binning, event samples, the array."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from bci.sim.array import BroadbandSynth, array_units, spike_waveform, spikes_in_bins
from bci.spikes import (
    BandPass,
    EventParseError,
    SpikeBinner,
    ThresholdDetector,
    match_spikes,
    parse_event_samples,
)
from bci.spikes.event_samples import parse_event_text

FS = 30000


def test_bandpass_in_chunks_equals_the_whole_signal_at_once():
    x = np.random.default_rng(0).standard_normal((9000, 3)) * 10 + 300.0  # with a DC offset
    whole = BandPass(3, FS)(x)
    bp = BandPass(3, FS)
    cuts = [0, 1, 17, 500, 4000, 4001, 9000]
    pieces = np.concatenate([bp(x[a:b]) for a, b in zip(cuts[:-1], cuts[1:], strict=True)])
    np.testing.assert_allclose(pieces, whole, rtol=1e-12, atol=1e-9)
    # the reference: scipy's causal filter started in steady state on the first sample
    sos = signal.butter(2, [300, 6000], btype="bandpass", fs=FS, output="sos")
    zi = signal.sosfilt_zi(sos)[:, :, None] * x[0][None, None, :]
    np.testing.assert_allclose(whole, signal.sosfilt(sos, x, axis=0, zi=zi)[0], atol=1e-9)
    assert abs(whole[:100].mean()) < 1.0  # no step response to the DC offset


def test_bandpass_outside_nyquist_is_one_line():
    with pytest.raises(ValueError, match="band 300-6000 Hz does not fit below the Nyquist"):
        BandPass(2, 10000, 300, 6000)


def test_detector_finds_crossings_once_with_dead_time_and_holds_until_noise_known():
    rng = np.random.default_rng(1)
    y = rng.standard_normal((60000, 2))  # sigma 1
    spikes = [31000, 31010, 40000, 40040, 500]  # 31010 is 0.33 ms after 31000: same spike
    for s in spikes:
        y[s : s + 6, 0] = -20.0
    det = ThresholdDetector(2, FS, k=4.5, dead_time_s=0.001, noise_window_s=1.0)
    found = [det.process(y[a : a + 700]) for a in range(0, 60000, 700)]
    samples = np.concatenate([f[0] for f in found])
    channels = np.concatenate([f[1] for f in found])
    assert det.sigma == pytest.approx([1.0, 1.0], rel=0.05)
    hits = samples[channels == 0]
    # 500 lies in the first second (held back, then searched); 40040 is 1.33 ms after 40000
    for s in (500, 31000, 40000, 40040):
        assert np.any(np.abs(hits - s) <= 1), (s, hits)
    assert not np.any((hits > 31001) & (hits < 31030))
    assert np.all(np.diff(samples[channels == 1]) >= 30)
    # pure noise at 4.5 sigma: a few crossings per million samples
    assert np.count_nonzero(channels == 1) < 20


def test_detector_ignores_invalid_samples():
    y = np.random.default_rng(2).standard_normal((40000, 1))
    y[35000:35010] = -50.0
    invalid = np.zeros_like(y, dtype=bool)
    invalid[34000:36000] = True
    det = ThresholdDetector(1, FS)
    samples, _ = det.process(y, invalid)
    assert not np.any((samples >= 34000) & (samples < 36000))


def test_detection_accuracy_on_the_simulator_at_80_uv():
    rng = np.random.default_rng(0)
    n_ch = 4
    synth = BroadbandSynth(np.full(n_ch, 80.0), FS, noise_uv=10.0, seed=1)
    bp, det = BandPass(n_ch, FS), ThresholdDetector(n_ch, FS)
    last = np.full(n_ch, -1.0)
    truth_t, truth_c, found_t, found_c = [], [], [], []
    for k in range(600):  # 6 s in 10 ms chunks
        bins = (k * 10 + np.arange(10)) / 1000
        t, c = spikes_in_bins(bins, rng.poisson(0.02, (10, n_ch)), 0.001, rng, last)
        s = np.round(t * FS).astype(np.int64) + synth.trough
        synth.add_spikes(s, c)
        truth_t.append(s / FS)
        truth_c.append(c)
        got_s, got_c = det.process(bp(synth.emit(300)))
        found_t.append(got_s / FS)
        found_c.append(got_c)
    tt, tc = np.concatenate(truth_t), np.concatenate(truth_c)
    ft, fc = np.concatenate(found_t), np.concatenate(found_c)
    score = match_spikes(tt[tt > 1], tc[tt > 1], ft[ft > 1], fc[ft > 1])
    assert score["n_true"] > 300
    assert score["found"] >= 0.95 and score["false"] <= 0.05, score


def test_match_spikes_counts_hits_misses_and_false():
    score = match_spikes(
        np.array([1.0, 2.0, 3.0]),
        np.array([0, 0, 1]),
        np.array([1.0004, 2.5, 3.0002, 3.0003]),
        np.array([0, 0, 1, 1]),
    )
    assert (score["hits"], score["n_true"], score["n_found"]) == (2, 3, 4)
    assert score["found"] == pytest.approx(2 / 3) and score["false"] == pytest.approx(0.5)


def test_binner_counts_emits_once_and_marks_late_and_invalid():
    b = SpikeBinner(2, 1000.0, t0=10.0)
    b.add(np.array([10.0005, 10.0015, 10.0016, 10.0031]), np.array([0, 1, 1, 0]))
    times, counts = b.bins_until(10.003)
    np.testing.assert_allclose(times, [10.0, 10.001, 10.002])
    np.testing.assert_array_equal(counts, [[1, 0], [0, 2], [0, 0]])
    b.add(np.array([10.0001]), np.array([1]))  # for a bin already emitted
    b.add_invalid(np.array([10.0042]), np.array([1]))
    times, counts = b.bins_until(10.005)
    assert b.late == 1
    np.testing.assert_array_equal(counts[0], [1, 0])
    assert counts[1, 0] == 0 and np.isnan(counts[1, 1])
    assert b.bins_until(10.005)[0].size == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [("ch12 u1", (12, 1)), ("12", (12, 0)), ("12,3", (12, 3)), ("elec7 unit 2", (7, 2))],
)
def test_string_events(text, expected):
    assert parse_event_text(text) == expected


def test_event_samples_in_every_shape():
    times = np.array([1.0, 2.0, 3.0])
    t, sites, problems = parse_event_samples([[1, 0], [4, 2], [9, 1]], times, 8, channel_base=1)
    np.testing.assert_array_equal(sites, [0, 3])
    np.testing.assert_array_equal(t, [1.0, 2.0])
    assert problems == [
        "1 spike event(s) on channel 9, outside 1-8 (channels = 8, channel_base = 1)"
    ]
    t, sites, problems = parse_event_samples([["ch0 u1"], ["noise"], ["ch2"]], times, 4)
    np.testing.assert_array_equal(sites, [0, 2])
    assert problems == ["spike event 'noise' names no channel number"]
    one_per_site = np.zeros((3, 4))
    one_per_site[0, 1] = 1
    one_per_site[2, [0, 3]] = [2, 1]
    t, sites, _ = parse_event_samples(one_per_site, times, 4)
    np.testing.assert_array_equal(sites, [1, 0, 0, 3])
    np.testing.assert_array_equal(t, [1.0, 3.0, 3.0, 3.0])
    with pytest.raises(EventParseError):
        parse_event_text("")


def test_array_units_make_one_clearly_most_responsive():
    units = array_units(32, 5.0, diverse=True, seed=0)
    gains = np.sort(units.gain)
    assert gains[-1] == 1.0 and gains[-2] <= 0.3 and np.count_nonzero(gains == 0) >= 1
    assert np.all((units.amplitude_uv >= 50) & (units.amplitude_uv <= 150))
    plain = array_units(3, 5.0, diverse=False, seed=0)
    np.testing.assert_array_equal(plain.gain, 1.0)
    np.testing.assert_array_equal(plain.rates(np.array([[0.5, 0.0, 1.0]]), 100.0), [[55, 5, 105]])


def test_spike_waveform_and_refractory_spikes():
    w, trough = spike_waveform(FS, 80.0)
    assert w.min() == pytest.approx(-80.0) and int(np.argmin(w)) == trough == 12
    assert 0 < w.max() < 0.3 * 80.0
    last = np.full(1, -1.0)
    counts = np.zeros((5, 1), np.int64)
    counts[2] = 3  # three spikes in one 1 ms bin: at most one survives a 1.5 ms refractory
    t, u = spikes_in_bins(np.arange(5) / 1000, counts, 0.001, np.random.default_rng(0), last)
    assert t.size == 1 and 0.002 <= t[0] < 0.003 and last[0] == t[0]
