"""The acquire node's per-participant preprocessing: runs, motion pairing, censoring (no LSL)."""

from __future__ import annotations

import numpy as np
import pytest

from bci.nodes.volume_cleaner import StreamCleaner
from bci.preprocess import PreprocessSettings, VolumePreprocessor

N_VOXELS, TR = 16, 2.0


def cleaner(**kwargs) -> StreamCleaner:
    pre = VolumePreprocessor(N_VOXELS, TR, PreprocessSettings())
    kwargs.setdefault("tolerance_s", 0.1)
    return StreamCleaner(pre, TR, **kwargs)


def volumes(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100.0 + rng.standard_normal((n, N_VOXELS))


def test_same_output_whatever_the_chunks_and_as_the_preprocessor_on_each_run():
    data = volumes(60)
    times = np.concatenate([np.arange(30) * TR, 200.0 + np.arange(30) * TR])  # a pause: 2 runs
    whole = cleaner(run_volumes=[30, 30])
    whole.add_volumes(data, times, arrival=0.0)
    out, stamps, censored = whole.ready(now=0.0)
    one_by_one = cleaner(run_volumes=[30, 30])
    rows = []
    for i in range(60):
        one_by_one.add_volumes(data[i : i + 1], times[i : i + 1], arrival=float(i))
        rows.append(one_by_one.ready(now=float(i))[0])
    np.testing.assert_array_equal(np.concatenate(rows), out)
    np.testing.assert_array_equal(stamps, times)
    assert whole.pre.n_runs == 2 and whole.pre.summary()["volumes"] == 60
    reference = VolumePreprocessor(N_VOXELS, TR, PreprocessSettings())
    expected = np.concatenate(
        [reference.process_run(data[:30])[0], reference.process_run(data[30:])[0]]
    )
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)


def test_a_declared_run_start_begins_a_run_without_a_pause():
    c = cleaner()
    c.declare_run(0.5 * TR)  # a free-running display starts after the run's first volume
    c.declare_run(10 * TR)
    c.add_volumes(volumes(20), np.arange(20) * TR, arrival=0.0)
    c.ready(now=0.0)
    assert c.pre.n_runs == 2 and c.pre.run_volumes == 10


def test_volumes_wait_for_their_motion_and_unknown_motion_is_censored():
    c = cleaner(with_motion=True, motion_wait_s=5.0)
    times = np.arange(4) * TR
    c.add_volumes(volumes(4), times, arrival=0.0)
    assert c.ready(now=0.0)[1].size == 0 and c.n_waiting == 4  # no motion yet
    motion = np.zeros((4, 7))
    motion[2, 0] = 3.0  # a 3 mm jump at volume 2: framewise displacement 3 mm > 0.5
    c.add_motion(motion[:3], times[:3] + 0.001)
    data, stamps, censored = c.ready(now=1.0)
    np.testing.assert_array_equal(stamps, times[:3])
    assert [(v.time, v.reason) for v in censored] == [(times[2], "motion")]
    assert np.isnan(data[2]).all() and np.isfinite(data[:2]).all()
    data, stamps, censored = c.ready(now=4.0)  # volume 3's motion never comes
    assert stamps.size == 0
    data, stamps, censored = c.ready(now=5.5)
    assert stamps.tolist() == [times[3]] and censored[0].reason == "motion"
    assert c.summary()["motion_unknown"] == 1 and c.summary()["censored_by_reason"]["motion"] == 2


def test_nan_and_spike_volumes_are_censored_with_their_reason():
    data = volumes(40)
    data[25, 3] = np.nan
    data[30] += 5.0  # a global intensity spike, 5 % of the baseline
    c = cleaner()
    c.add_volumes(data, np.arange(40) * TR, arrival=0.0)
    out, _, censored = c.ready(now=0.0)
    assert [(v.time, v.reason) for v in censored] == [
        (25 * TR, "non-finite"),
        (30 * TR, "intensity"),
    ]
    assert np.isnan(out[[25, 30]]).all() and np.isfinite(np.delete(out, [25, 30], axis=0)).all()


def test_bad_arguments_are_named():
    pre = VolumePreprocessor(N_VOXELS, TR, PreprocessSettings())
    with pytest.raises(ValueError, match="need period_s > 0"):
        StreamCleaner(pre, 0.0)
    with pytest.raises(ValueError, match="motion samples need 6 channels, got 3"):
        cleaner(with_motion=True).add_motion(np.zeros((1, 3)), np.zeros(1))
