"""LabRecorder as a child process: its output is parsed right, streams are recorded."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid

import numpy as np
import pylsl
import pytest
import pyxdf
from xdf_writer import XdfStream, write_xdf

from bci.io import read_recording
from bci.io.labrecorder import FLUSH_BYTES, LabRecorder, predicate, started_streams
from bci.io.xdf_chunks import XdfScan, cut_incomplete_chunk


def test_tangled_announcements_still_count():
    output = (
        "Found a@vm matching 'name='a''\n"
        "Started data collection for stream a.\n"
        "Started data collection for stream Started data collection for stream b.\n"
        "Started data collection for stream c.\n"
    )
    assert started_streams(output) == ["a", "", "b", "c"]
    assert started_streams("Opened the stream a.\n") == []


def test_predicate_quotes_and_refuses_quotes():
    assert predicate({"name": "x", "type": "EEG"}) == "name='x' and type='EEG'"
    with pytest.raises(ValueError, match="LSL stream name cannot contain a quote"):
        predicate({"name": "it's"})


def test_records_an_lsl_stream_into_xdf(tmp_path):
    name = f"lr-{uuid.uuid4().hex[:8]}"
    outlet = pylsl.StreamOutlet(pylsl.StreamInfo(name, "EEG", 2, 100, "float32", name))
    recorder = LabRecorder(tmp_path / "r.xdf", [{"name": name}])
    assert recorder.start(timeout_s=20) == [name]
    for i in range(50):
        outlet.push_sample([i, -i])
        time.sleep(0.01)
    time.sleep(0.5)  # LabRecorder misses what is pushed in the moment it stops
    assert recorder.stop() == 0
    stream = read_recording(tmp_path / "r.xdf").stream(name)
    np.testing.assert_array_equal(stream.data[:, 0], np.arange(50))
    with pytest.raises(FileExistsError, match="r.xdf exists already"):
        LabRecorder(tmp_path / "r.xdf", [{"name": name}]).start()


def test_a_stream_that_is_not_there_is_a_clear_error(tmp_path):
    recorder = LabRecorder(tmp_path / "r.xdf", [{"name": f"absent-{uuid.uuid4().hex[:8]}"}])
    with pytest.raises(RuntimeError, match=r"LabRecorder exited with code \d+ before recording "):
        recorder.start(timeout_s=20)


def test_xdf_scan_counts_whole_chunks_and_a_half_written_one_is_cut(tmp_path):
    """The scan reads a file as it grows, and counts only chunks that are whole."""
    path = write_xdf(
        tmp_path / "r.xdf",
        [
            XdfStream("a", "EEG", "float32", 10.0, np.arange(10) / 10, np.ones((10, 3))),
            XdfStream("m", "Markers", "string", 0.0, np.arange(3.0), [["x"], ["y"], ["z"]]),
        ],
    )
    whole = path.read_bytes()
    scan = XdfScan(tmp_path / "growing.xdf")
    assert scan.update() == {}  # no file yet
    growing = tmp_path / "growing.xdf"
    growing.write_bytes(whole[: len(whole) // 2])
    half = scan.update()
    assert half["a"] < 10
    growing.write_bytes(whole)
    assert scan.update() == {"a": 10, "m": 3}
    growing.write_bytes(whole + whole[4:40])  # a chunk that a killed writer left half written
    assert XdfScan(growing).update() == {"a": 10, "m": 3}
    assert cut_incomplete_chunk(growing) == 36
    assert growing.read_bytes() == whole
    assert cut_incomplete_chunk(growing) == 0


def test_labrecorder_ends_once_every_sample_is_on_disk(tmp_path):
    """LabRecorder holds a small last chunk in its buffer until it closes the file (which takes
    it up to 5 s more): a marker of FLUSH_BYTES pushes it out, and LabRecorder is ended then."""
    name = f"lr-{uuid.uuid4().hex[:8]}"
    data = pylsl.StreamOutlet(pylsl.StreamInfo(name, "EEG", 2, 100, "float32", name))
    marks = pylsl.StreamOutlet(pylsl.StreamInfo(f"{name}-m", "Markers", 1, 0, "string", name + "m"))
    recorder = LabRecorder(tmp_path / "r.xdf", [{"name": name}, {"name": f"{name}-m"}])
    recorder.start(timeout_s=20)
    sent = {name: 0, f"{name}-m": 0}
    for i in range(30):
        data.push_sample([i, -i])
        marks.push_sample([f"m{i}"])
        sent[name] += 1
        sent[f"{name}-m"] += 1
        time.sleep(0.01)

    def flush():
        marks.push_sample(["end".ljust(FLUSH_BYTES)])
        sent[f"{name}-m"] += 1

    assert recorder.close_once_recorded(lambda: dict(sent), flush, timeout_s=5.0)
    assert recorder.proc.poll() is not None  # LabRecorder is gone
    assert XdfScan(tmp_path / "r.xdf").update() == sent
    recording = read_recording(tmp_path / "r.xdf")
    np.testing.assert_array_equal(recording.stream(name).data[:, 0], np.arange(30))
    markers = [m[0] for m in recording.stream(f"{name}-m").data]
    assert list(markers[:30]) == [f"m{i}" for i in range(30)]
    assert all(m.strip() == "end" for m in markers[30:])
    streams, _ = pyxdf.load_xdf(str(tmp_path / "r.xdf"))  # pyxdf reads it without footers
    assert sorted(len(s["time_stamps"]) for s in streams) == sorted(sent.values())


def test_a_sigterm_while_it_starts_ends_labrecorder_too(tmp_path):
    """A session failing to start SIGTERMs the record node while LabRecorder starts: the node
    died at once and LabRecorder, recording on with its sources gone, never exited."""
    from bci.nodes.base import NodeError
    from bci.nodes.record import _stopped_while_starting

    name = f"lr-{uuid.uuid4().hex[:8]}"
    outlet = pylsl.StreamOutlet(pylsl.StreamInfo(name, "EEG", 2, 100, "float32", name))
    recorder = LabRecorder(tmp_path / "r.xdf", [{"name": name}])
    pids = []

    def sigterm() -> None:
        pids.append(recorder.pid)
        os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, _stopped_while_starting)
    timer = threading.Timer(0.3, sigterm)  # LabRecorder takes about a second to start
    try:
        timer.start()
        with pytest.raises(NodeError, match="record: stopped while LabRecorder was starting"):
            recorder.start(timeout_s=20)
    finally:
        timer.cancel()
        signal.signal(signal.SIGTERM, previous)
    assert pids[0] is not None and recorder.proc.returncode is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pids[0], 0)
    del outlet
