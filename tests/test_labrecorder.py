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

from bci.io import read_recording
from bci.io.labrecorder import LabRecorder, predicate, started_streams


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
