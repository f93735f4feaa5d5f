"""LabRecorder as a child process: its output is parsed right, streams are recorded."""

from __future__ import annotations

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
