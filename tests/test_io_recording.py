"""Reading recordings: the reference XDF files, XDF files written here, FIF and EDF via MNE."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import mne
import numpy as np
import pytest
from xdf_writer import DTYPES, XdfStream, write_xdf

from bci.io import RecordedStream, Recording, read_recording

# minimal.xdf, from the README of the reference files: the int16 stream's samples, and its
# recorded time stamps 5.1 ... 5.9, which its clock offsets (-0.1 s) move to 5.0 ... 5.8; the
# string stream has no clock offsets, so its stamps stay 5.1 ... 5.9.
MINIMAL_INT = np.array(
    [
        [192, 255, 238],
        [12, 22, 32],
        [13, 23, 33],
        [14, 24, 34],
        [15, 25, 35],
        [12, 22, 32],
        [13, 23, 33],
        [14, 24, 34],
        [15, 25, 35],
    ],
    dtype=np.int16,
)
MINIMAL_STRINGS = ["Hello", "World", "from", "LSL"] * 2
OFFSET_BEFORE_RESET = -652340.284  # clock_resets.xdf: clock offset until the reset ...
OFFSET_AFTER_RESET = 1121.166  # ... and after it


@pytest.fixture(scope="module")
def examples(shared_dir: Path) -> Path:
    folder = shared_dir / "xdf-examples"
    if not (folder / "minimal.xdf").is_file():
        pytest.skip("shared/xdf-examples is not present")
    return folder


def test_minimal_xdf_values_and_synchronised_stamps(examples):
    rec = read_recording(examples / "minimal.xdf")
    assert rec.skipped == []
    assert rec.names == ["SendDataC", "SendDataString"]
    data = rec.stream("SendDataC")
    assert (data.type, data.channel_format, data.nominal_srate) == ("EEG", "int16", 10.0)
    assert data.n_channels == 3 and data.channel_labels == ["ch00", "ch01", "ch02"]
    assert data.data.dtype == np.int16
    np.testing.assert_array_equal(data.data, MINIMAL_INT)
    np.testing.assert_allclose(data.time_stamps, 5.0 + np.arange(9) / 10, atol=1e-9)
    assert data.desc["uid"] == "xdfwriter_11_int"

    text = rec.stream("SendDataString")
    assert (text.type, text.channel_format, text.n_channels) == ("StringMarker", "string", 1)
    assert (
        text.data[0][0].startswith("<?xml") and "<sample_count>9</sample_count>" in text.data[0][0]
    )
    assert [s[0] for s in text.data[1:]] == MINIMAL_STRINGS
    np.testing.assert_allclose(text.time_stamps, 5.1 + np.arange(9) / 10, atol=1e-9)
    assert rec.data_streams() == [data]
    assert rec.marker_streams() == [text]
    assert rec.t_first == pytest.approx(5.0) and rec.duration_s == pytest.approx(0.9)


def test_clock_resets_xdf_is_synchronised_across_the_reset(examples):
    rec = read_recording(examples / "clock_resets.xdf")
    assert rec.skipped == []
    eeg, markers = rec.stream("BioSemi"), rec.stream("MyMarkerStream")
    assert (eeg.n_samples, eeg.n_channels, eeg.channel_format) == (27815, 8, "float32")
    np.testing.assert_allclose(
        eeg.data[0], [0.142, 0.463, 0.354, 0.220, 0.761, 0.323, 0.312, 0.861], atol=6e-4
    )
    np.testing.assert_allclose(
        eeg.data[-1], [0.873, 0.064, 0.684, 0.153, 0.306, 0.123, 0.711, 0.892], atol=6e-4
    )
    # The recorded stamps restart from ~0 after the reset; synchronised, they keep increasing.
    assert np.all(np.diff(eeg.time_stamps) > 0)
    # The recorded stamps themselves (they jitter by ~1 ms, so no fit moves them), plus offsets.
    assert eeg.time_stamps[0] == pytest.approx(653150.379117 + OFFSET_BEFORE_RESET, abs=0.01)
    assert eeg.time_stamps[-1] == pytest.approx(261.926703 + OFFSET_AFTER_RESET, abs=0.01)
    assert markers.n_samples == 175 and markers.type == "Markers"
    assert markers.nominal_srate == 0.0 and markers.source_id == "myuidw43536"
    assert [markers.data[i][0] for i in (0, 1, 2, -2, -1)] == [
        "XXX",
        "Test",
        "Blah",
        "Test-1-2-3",
        "XXX",
    ]
    assert np.all(np.diff(markers.time_stamps) >= 0)
    assert markers.time_stamps[0] == pytest.approx(653153.212188 + OFFSET_BEFORE_RESET, abs=0.01)
    assert markers.time_stamps[-1] == pytest.approx(259.653828 + OFFSET_AFTER_RESET, abs=0.01)
    assert rec.marker_streams() == [markers] and rec.data_streams() == [eeg]


def test_empty_streams_xdf_reports_the_empty_ones(examples):
    rec = read_recording(examples / "empty_streams.xdf")
    assert rec.names == ["ctrl", "Data stream: test stream 0 counter"]
    ctrl = rec.stream("ctrl")
    assert ctrl.data == [['{"state": 2}']] and ctrl.type == "control"
    assert ctrl.time_stamps[0] == pytest.approx(91725.014004, abs=1e-3)
    counter = rec.stream("Data stream: test stream 0 counter")
    np.testing.assert_array_equal(counter.data[:, 0], np.arange(10))
    assert counter.data.dtype == np.int32 and counter.channel_labels == ["ch:00"]
    np.testing.assert_allclose(counter.time_stamps, 91725.213948 + np.arange(10), atol=1e-3)
    assert counter.desc["desc/manufacturer"] == "pylsltools"
    assert counter.desc["channel_types"] == ["misc"]
    skipped = dict(rec.skipped)
    assert len(skipped) == 2
    for name in ("Empty marker stream", "Empty data stream"):
        (reason,) = [why for what, why in skipped.items() if name in what]
        assert reason == "it has no samples"


def _streams() -> list[XdfStream]:
    t = 100.0 + np.arange(20) / 10
    values = (np.arange(40, dtype=np.float32).reshape(20, 2) - 7.25) * 1.5
    return [
        XdfStream(
            "amp",
            "EEG",
            "float32",
            10.0,
            t,
            values,
            source_id="amp-1",
            labels=["Cz", "Pz"],
            units=["microvolts", "microvolts"],
            desc_xml="<manufacturer>tests</manufacturer><acquisition><model>m1</model></acquisition>",
        ),
        XdfStream("counter", "misc", "int64", 10.0, t, np.arange(20, dtype=np.int64)[:, None] - 3),
        XdfStream("marks", "Markers", "string", 0.0, np.array([100.25, 101.0]), [["a"], ["b c"]]),
    ]


def test_xdf_written_here_reads_back_exactly(tmp_path):
    rec = read_recording(write_xdf(tmp_path / "two.xdf", _streams()))
    assert isinstance(rec, Recording) and rec.skipped == []
    amp = rec.stream("amp")
    assert isinstance(amp, RecordedStream)
    assert (amp.source_id, amp.channel_labels, amp.data.dtype) == (
        "amp-1",
        ["Cz", "Pz"],
        np.float32,
    )
    np.testing.assert_array_equal(amp.data, _streams()[0].data)
    np.testing.assert_allclose(amp.time_stamps, 100.0 + np.arange(20) / 10, atol=1e-9)
    assert amp.desc["channel_units"] == ["microvolts", "microvolts"]
    assert amp.desc["desc/manufacturer"] == "tests"
    assert amp.desc["desc/acquisition/model"] == "m1"
    assert amp.desc["hostname"] == "test-host"
    counter = rec.stream("counter")
    np.testing.assert_array_equal(counter.data[:, 0], np.arange(20) - 3)
    assert counter.data.dtype == np.int64
    marks = rec.stream("marks")
    assert marks.data == [["a"], ["b c"]]
    np.testing.assert_array_equal(marks.time_stamps, [100.25, 101.0])
    assert [s.name for s in rec.data_streams()] == ["amp", "counter"]
    assert [s.name for s in rec.marker_streams()] == ["marks"]


@pytest.mark.parametrize("suffix", [".xdfz", ".xdf.gz"])
def test_compressed_xdf(tmp_path, suffix):
    plain = write_xdf(tmp_path / "plain.xdf", _streams())
    packed = tmp_path / f"sub.01{suffix}"
    with open(plain, "rb") as src, gzip.open(packed, "wb") as dst:
        shutil.copyfileobj(src, dst)
    rec = read_recording(packed)
    np.testing.assert_array_equal(rec.stream("amp").data, _streams()[0].data)
    assert rec.names == ["amp", "counter", "marks"]


def test_unusable_streams_are_skipped_with_a_reason(tmp_path, monkeypatch):
    streams = _streams()
    monkeypatch.setitem(DTYPES, "float16", "<f2")  # a format LSL does not have
    t = np.array([100.0, 100.1])
    streams.append(XdfStream("half", "EEG", "float16", 10.0, t, np.zeros((2, 1))))
    streams.append(
        XdfStream("nochan", "EEG", "float32", 10.0, t[:0], np.zeros((0, 0)), channel_count=0)
    )
    # a header declaring 10**12 channels, no sample: its default labels filled the memory
    streams.append(
        XdfStream("vast", "EEG", "float32", 10.0, t[:0], np.zeros((0, 0)), channel_count=10**12)
    )
    rec = read_recording(write_xdf(tmp_path / "bad.xdf", streams))
    assert rec.names == ["amp", "counter", "marks"]
    reasons = {what.split("'")[1]: why for what, why in rec.skipped}
    assert reasons["half"].startswith("channel format 'float16' is not understood")
    assert reasons["nochan"] == "it has no channels"
    assert reasons["vast"] == "it declares 1000000000000 channels (at most 2097152)"


def test_stream_lookup_names_the_available_streams(tmp_path):
    rec = read_recording(write_xdf(tmp_path / "two.xdf", _streams()))
    with pytest.raises(KeyError, match=r"no stream 'nope' in two.xdf; streams: 'amp', 'counter'"):
        rec.stream("nope")


def test_unreadable_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.xdf"):
        read_recording(tmp_path / "missing.xdf")
    (tmp_path / "fake.xdf").write_bytes(b"not xdf at all")
    with pytest.raises(ValueError, match=r"fake.xdf is not an XDF file"):
        read_recording(tmp_path / "fake.xdf")
    (tmp_path / "junk.xdf").write_bytes(b"XDF:\x07\x07\x07")
    with pytest.raises(ValueError, match=r"junk.xdf holds no XDF stream"):
        read_recording(tmp_path / "junk.xdf")
    (tmp_path / "notes.md").write_text("hello\n")
    with pytest.raises(ValueError, match=r"cannot read notes.md with MNE: Unsupported file type"):
        read_recording(tmp_path / "notes.md")
    (tmp_path / "notes.txt").write_text("hello\n")  # .txt goes to a reader that fails
    with pytest.raises(ValueError, match=r"^cannot read notes.txt with MNE: \S"):
        read_recording(tmp_path / "notes.txt")


# -- files MNE reads ---------------------------------------------------------------------------


def _raw(first_samp: int = 0) -> mne.io.RawArray:
    rng = np.random.default_rng(3)
    data = rng.normal(scale=20e-6, size=(3, 250))
    data[2] = (np.arange(250) % 50 == 0) * 5.0
    info = mne.create_info(["Fz", "Cz", "STI"], 100.0, ["eeg", "eeg", "stim"])
    raw = mne.io.RawArray(data, info, first_samp=first_samp, verbose="error")
    raw.set_annotations(mne.Annotations([0.5, 1.25, 2.0], [0.0, 0.5, 0.0], ["go", "rest", "go"]))
    return raw


@pytest.mark.parametrize("first_samp", [0, 40])
def test_fif_reads_data_and_annotations(tmp_path, first_samp):
    raw = _raw(first_samp)
    raw.save(tmp_path / "x_raw.fif", fmt="double", verbose="error")
    rec = read_recording(tmp_path / "x_raw.fif")
    assert rec.names == ["x_raw", "x_raw-annotations"] and rec.skipped == []
    data = rec.stream("x_raw")
    assert (data.type, data.channel_format, data.nominal_srate) == ("EEG", "double64", 100.0)
    assert data.channel_labels == ["Fz", "Cz", "STI"]
    assert data.desc["channel_types"] == ["eeg", "eeg", "stim"]
    assert data.desc["channel_units"] == ["V", "V", "V"]
    np.testing.assert_array_equal(data.data, raw.get_data().T)
    np.testing.assert_allclose(data.time_stamps, (first_samp + np.arange(250)) / 100.0)
    markers = rec.stream("x_raw-annotations")
    assert markers.type == "Markers" and markers.data == [["go"], ["rest"], ["go"]]
    # An annotation lies on the same clock as the samples: 0.5 s after the first one.
    np.testing.assert_allclose(markers.time_stamps - data.time_stamps[0], [0.5, 1.25, 2.0])
    assert rec.marker_streams() == [markers]


def _write_edf(path: Path, data_uv: np.ndarray, labels: list[str], annotations) -> None:
    """A one-second-record EDF+ file at 100 Hz with an annotation signal (test-only writer)."""
    n_sig, n = data_uv.shape
    rate, pmin, pmax, dmin, dmax = 100, -1000.0, 1000.0, -32768, 32767
    n_rec = n // rate
    ann_samples = 60

    def field(text, width):
        return str(text).ljust(width)[:width]

    signals = [*labels, "EDF Annotations"]
    head = (
        field("0", 8)
        + field("X X X X", 80)
        + field("Startdate 01-JAN-2020 X X X", 80)
        + field("01.01.20", 8)
        + field("10.00.00", 8)
        + field(256 * (len(signals) + 1), 8)
        + field("EDF+C", 44)
        + field(n_rec, 8)
        + field(1, 8)
        + field(len(signals), 4)
    )
    columns = [
        [field(s, 16) for s in signals],
        [field("", 80)] * len(signals),
        [field("uV", 8)] * n_sig + [field("", 8)],
        [field(pmin, 8)] * n_sig + [field(-1, 8)],
        [field(pmax, 8)] * n_sig + [field(1, 8)],
        [field(dmin, 8)] * len(signals),
        [field(dmax, 8)] * len(signals),
        [field("", 80)] * len(signals),
        [field(rate, 8)] * n_sig + [field(ann_samples, 8)],
        [field("", 32)] * len(signals),
    ]
    head += "".join("".join(col) for col in columns)
    digital = np.round((data_uv - pmin) / (pmax - pmin) * (dmax - dmin) + dmin).astype("<i2")
    records = []
    for r in range(n_rec):
        tal = f"+{r}\x14\x14\x00"
        if r == 0:
            tal += "".join(f"+{onset:g}\x14{text}\x14\x00" for onset, text in annotations)
        tal_bytes = tal.encode().ljust(2 * ann_samples, b"\x00")
        block = b"".join(digital[s, r * rate : (r + 1) * rate].tobytes() for s in range(n_sig))
        records.append(block + tal_bytes)
    path.write_bytes(head.encode() + b"".join(records))


def test_edf_reads_within_quantisation(tmp_path):
    rng = np.random.default_rng(5)
    data_uv = rng.uniform(-200, 200, size=(2, 300))
    _write_edf(tmp_path / "x.edf", data_uv, ["C3", "C4"], [(0.5, "stim"), (2.25, "rest")])
    rec = read_recording(tmp_path / "x.edf")
    data = rec.stream("x")
    assert (data.type, data.nominal_srate, data.channel_labels) == ("EEG", 100.0, ["C3", "C4"])
    step_v = 2000e-6 / 65535
    np.testing.assert_allclose(data.data, data_uv.T * 1e-6, rtol=0, atol=step_v)
    np.testing.assert_allclose(data.time_stamps, np.arange(300) / 100.0)
    markers = rec.stream("x-annotations")
    assert markers.data == [["stim"], ["rest"]]
    np.testing.assert_allclose(markers.time_stamps, [0.5, 2.25])


def test_edf_exported_by_mne_reads_back(tmp_path):
    pytest.importorskip("edfio", reason="mne.export.export_raw writes EDF through edfio")
    raw = _raw()
    mne.export.export_raw(tmp_path / "y.edf", raw, verbose="error")
    rec = read_recording(tmp_path / "y.edf")
    data = rec.stream("y")
    assert data.channel_labels[:2] == ["Fz", "Cz"]
    step = 2 * np.abs(raw.get_data()[:2]).max() / 65535
    np.testing.assert_allclose(data.data[:250, :2], raw.get_data()[:2].T, atol=2 * step)
    # MNE pads the last EDF data record and marks the padding BAD_ACQ_SKIP; it is in the file.
    labels = [s[0] for s in rec.stream("y-annotations").data]
    assert labels[:3] == ["go", "rest", "go"]
    assert set(labels[3:]) <= {"BAD_ACQ_SKIP"}
