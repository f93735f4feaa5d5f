"""``read_recording`` returns every stream's recorded stamps within 1 ms, pauses or not.

pyxdf's dejittering spread a pause over a slow stream (its segments break only after 500 sample
periods); these files have the shapes that broke it: fMRI at 0.5 Hz with minutes between runs,
1 kHz spike counts with a pause, irregular markers, a nominal rate that disagrees with the
stamps, and clock offsets that the reader must still apply.
"""

from __future__ import annotations

import numpy as np
from xdf_writer import XdfStream, write_xdf

from bci.io import read_recording
from bci.io.dejitter import MAX_CORRECTION_S, dejitter, segments

TOL = 1e-3


def _runs(tr: float, n_per_run: list[int], gap_s: float, t0: float = 1000.0) -> np.ndarray:
    """Volume stamps of consecutive runs, ``gap_s`` of scanner silence between them."""
    out, t = [], t0
    for n in n_per_run:
        out.append(t + tr * np.arange(n))
        t = out[-1][-1] + tr + gap_s
    return np.concatenate(out)


def _fmri(name: str, stamps: np.ndarray, n_channels: int = 16, rate: float = 0.5) -> XdfStream:
    data = np.random.default_rng(0).standard_normal((stamps.size, n_channels)).astype(np.float32)
    return XdfStream(name, "fMRI", "float32", rate, stamps, data, source_id=name)


def test_tr2_stream_with_a_60s_gap_keeps_its_stamps(tmp_path):
    stamps = _runs(2.0, [150, 40], 60.0)
    rec = read_recording(write_xdf(tmp_path / "gap.xdf", [_fmri("sub-01", stamps)]))
    got = rec.stream("sub-01").time_stamps
    assert np.max(np.abs(got - stamps)) < TOL
    # the first volume is not moved earlier and the TR stays 2 s on both sides of the gap
    assert abs(got[0] - stamps[0]) < TOL
    np.testing.assert_allclose(np.diff(got[:150]), 2.0, atol=TOL)
    assert abs(rec.stream("sub-01").desc["effective_srate"] - 0.5) < 1e-6


def test_every_kind_of_stream_within_1ms_with_clock_offsets(tmp_path):
    rng = np.random.default_rng(1)
    fmri = _fmri("sub-01", _runs(2.0, [60, 60, 30], 180.0))  # minutes between runs
    counts_t = np.concatenate([50.0 + np.arange(3000) / 1000.0, 70.0 + np.arange(2000) / 1000.0])
    counts = XdfStream(
        "units",
        "Spikes",
        "int32",
        1000.0,
        counts_t,
        rng.poisson(0.1, (counts_t.size, 4)).astype(np.int32),
        chunk_samples=64,
    )
    marker_t = np.sort(rng.uniform(40.0, 900.0, 50))
    markers = XdfStream(
        "markers", "Markers", "string", 0.0, marker_t, [[f"m{i}"] for i in range(50)]
    )
    # nominal 1 Hz, actually every 1.25 s: the rate in the header is wrong
    wrong_t = 30.0 + 1.25 * np.arange(40)
    wrong = _fmri("wrong-rate", wrong_t, n_channels=2, rate=1.0)
    # a constant clock offset measured every 5 s: the reader adds it to every stamp
    offset = -0.25
    fmri.clock_offsets = [(t, offset) for t in np.arange(990.0, 1900.0, 5.0)]
    rec = read_recording(write_xdf(tmp_path / "all.xdf", [fmri, counts, markers, wrong]))
    checks = {
        "sub-01": fmri.time_stamps + offset,
        "units": counts_t,
        "markers": marker_t,
        "wrong-rate": wrong_t,
    }
    for name, want in checks.items():
        got = rec.stream(name).time_stamps
        assert got.shape == want.shape, name
        assert np.max(np.abs(got - want)) < TOL, (name, np.max(np.abs(got - want)))


def test_jitter_below_half_a_millisecond_is_removed_and_larger_jitter_is_kept():
    regular = 10.0 + 0.1 * np.arange(200)
    small = regular + np.random.default_rng(2).uniform(-1e-4, 1e-4, 200)
    np.testing.assert_allclose(dejitter(small, 10.0), regular, atol=1e-4)
    large = regular + np.random.default_rng(3).uniform(-3e-3, 3e-3, 200)
    np.testing.assert_array_equal(dejitter(large, 10.0), large)
    assert np.max(np.abs(dejitter(small, 10.0) - small)) <= MAX_CORRECTION_S
    # a pause splits the stream: two segments, each fitted on its own
    paused = np.concatenate([regular, regular[-1] + 5.0 + 0.1 * np.arange(50)])
    assert segments(paused) == [(0, 200), (200, 250)]
    np.testing.assert_allclose(dejitter(paused, 10.0), paused, atol=1e-9)
    # irregular streams are left alone
    np.testing.assert_array_equal(dejitter(large, 0.0), large)
