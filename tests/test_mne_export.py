"""to_mne: one or several streams as an MNE Raw, markers as annotations."""

from __future__ import annotations

import logging

import mne
import numpy as np
import pytest
from xdf_writer import XdfStream, write_xdf

from bci.io import read_recording, to_mne


@pytest.fixture(scope="module")
def fif(tmp_path_factory):
    rng = np.random.default_rng(11)
    data = rng.normal(scale=10e-6, size=(3, 400))
    data[2] = 0.0
    data[2, ::100] = 1.0
    info = mne.create_info(["O1", "O2", "STI 014"], 200.0, ["eeg", "eeg", "stim"])
    raw = mne.io.RawArray(data, info, verbose="error")
    raw.set_annotations(mne.Annotations([0.1, 0.755, 1.5], [0, 0, 0], ["a", "b", "a"]))
    path = tmp_path_factory.mktemp("fif") / "rec_raw.fif"
    raw.save(path, fmt="double", verbose="error")
    return path, raw


def test_fif_round_trip(fif):
    path, original = fif
    for source in (path, read_recording(path)):
        raw = to_mne(source)
        assert isinstance(raw, mne.io.RawArray)
        assert raw.info["sfreq"] == 200.0
        assert raw.ch_names == ["O1", "O2", "STI 014"]
        assert raw.get_channel_types() == ["eeg", "eeg", "stim"]
        np.testing.assert_array_equal(raw.get_data(), original.get_data())
        np.testing.assert_allclose(raw.annotations.onset, [0.1, 0.755, 1.5], atol=1e-9)
        assert list(raw.annotations.description) == ["a", "b", "a"]
        np.testing.assert_array_equal(raw.annotations.duration, 0.0)


def _three_streams() -> list[XdfStream]:
    # "amp" 10 Hz from 100.0 s, "late" 10 Hz from 100.05 s (same rate, shifted half a sample),
    # "slow" 4 Hz from 100.2 s; "late" and "slow" hold their own time stamps as values, so
    # interpolation onto the reference grid must give the grid times exactly.
    t_amp = 100.0 + np.arange(30) / 10
    t_late = 100.05 + np.arange(30) / 10
    t_slow = 100.2 + np.arange(10) / 4
    amp = np.stack([np.arange(30), -np.arange(30)], axis=1).astype(np.float32)
    return [
        XdfStream(
            "amp", "EEG", "float32", 10.0, t_amp, amp, labels=["Cz", "Pz"], units=["uV", "uV"]
        ),
        XdfStream("late", "EEG", "double64", 10.0, t_late, t_late[:, None], labels=["Cz"]),
        XdfStream("slow", "fMRI", "double64", 4.0, t_slow, np.stack([t_slow, 2 * t_slow], 1)),
        XdfStream(
            "marks",
            "Markers",
            "string",
            0.0,
            np.array([99.0, 100.5, 101.0, 109.0]),
            [["early"], ["x"], ["y"], ["late"]],
        ),
        XdfStream("irregular", "misc", "float32", 0.0, np.array([100.5]), np.ones((1, 1))),
    ]


def test_streams_at_different_rates_are_aligned_on_the_fastest(tmp_path):
    rec = read_recording(write_xdf(tmp_path / "multi.xdf", _three_streams()))
    raw = to_mne(rec)
    # Common span: 100.2 (slow starts) .. 102.45 (slow ends); amp's grid there: 100.2..102.4.
    grid = 100.2 + np.arange(23) / 10
    assert raw.info["sfreq"] == 10.0 and raw.n_times == len(grid)
    assert raw.ch_names == ["amp:Cz", "amp:Pz", "late:Cz", "slow:ch00", "slow:ch01"]
    assert raw.get_channel_types() == ["eeg", "eeg", "eeg", "misc", "misc"]
    data = raw.get_data()
    np.testing.assert_allclose(data[0], np.arange(2, 25) * 1e-6, rtol=1e-6)  # uV -> V
    np.testing.assert_allclose(data[1], -np.arange(2, 25) * 1e-6, rtol=1e-6)
    np.testing.assert_allclose(data[2], grid, atol=1e-9)
    np.testing.assert_allclose(data[3], grid, atol=1e-9)
    np.testing.assert_allclose(data[4], 2 * grid, atol=1e-9)
    # Markers relative to the first sample (100.2 s); 99.0 and 109.0 lie outside the data.
    np.testing.assert_allclose(raw.annotations.onset, [0.3, 0.8], atol=1e-9)
    assert list(raw.annotations.description) == ["x", "y"]
    assert "multi.xdf" in raw.info["description"]


def test_same_rate_streams_share_the_first_streams_grid(tmp_path):
    rec = read_recording(write_xdf(tmp_path / "two.xdf", _three_streams()))
    raw = to_mne(rec, streams=["amp", "late"], markers=False)
    # span 100.05..102.9: amp's samples 100.1..102.9 (29), "late" interpolated onto them
    assert raw.n_times == 29 and raw.ch_names == ["amp:Cz", "amp:Pz", "late:Cz"]
    np.testing.assert_allclose(raw.get_data()[0], np.arange(1, 30) * 1e-6, rtol=1e-6)
    np.testing.assert_allclose(raw.get_data()[2], 100.1 + np.arange(29) / 10, atol=1e-9)
    assert len(raw.annotations) == 0


def test_minimal_xdf_to_mne(shared_dir):
    path = shared_dir / "xdf-examples" / "minimal.xdf"
    if not path.is_file():
        pytest.skip("shared/xdf-examples is not present")
    raw = to_mne(path)
    assert raw.ch_names == ["ch00", "ch01", "ch02"] and raw.info["sfreq"] == 10.0
    assert raw.get_channel_types() == ["eeg"] * 3
    np.testing.assert_array_equal(raw.get_data()[:, 0], [192, 255, 238])  # unscaled
    np.testing.assert_array_equal(raw.get_data()[0, 1:5], [12, 13, 14, 15])
    # data at 5.0 .. 5.8 s, the string markers at 5.1 .. 5.9 s
    np.testing.assert_allclose(raw.annotations.onset, 0.1 + np.arange(9) / 10, atol=1e-9)
    assert list(raw.annotations.description[1:5]) == ["Hello", "World", "from", "LSL"]


def test_gaps_are_reported(shared_dir, caplog):
    path = shared_dir / "xdf-examples" / "clock_resets.xdf"
    if not path.is_file():
        pytest.skip("shared/xdf-examples is not present")
    with caplog.at_level(logging.WARNING, logger="bci.io"):
        raw = to_mne(path)
    assert raw.n_times == 27815 and len(raw.annotations) == 175
    assert any("BioSemi has gaps" in r.getMessage() for r in caplog.records)


def test_export_errors(tmp_path):
    streams = _three_streams()
    rec = read_recording(write_xdf(tmp_path / "e.xdf", streams))
    with pytest.raises(KeyError, match="no stream 'nope'"):
        to_mne(rec, streams=["nope"])
    with pytest.raises(ValueError, match="not regular-rate numeric data streams: 'marks'"):
        to_mne(rec, streams=["marks"])
    only_markers = read_recording(write_xdf(tmp_path / "m.xdf", [streams[3]]))
    with pytest.raises(ValueError, match="m.xdf has no regular-rate numeric stream to export"):
        to_mne(only_markers)
    apart = streams[0]
    apart.time_stamps = apart.time_stamps + 50.0
    far = read_recording(write_xdf(tmp_path / "far.xdf", [apart, streams[1]]))
    with pytest.raises(ValueError, match="the data streams do not overlap in time"):
        to_mne(far)
