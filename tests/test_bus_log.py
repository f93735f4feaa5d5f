"""The session bus log: messages and arrays round-trip, and a crash-cut tail is tolerated."""

from __future__ import annotations

import numpy as np

from bci.bus import Message
from bci.bus.log import BusLogWriter, read_bus_log


def test_round_trip_and_truncated_tail(tmp_path):
    writer = BusLogWriter(tmp_path / "bus", flush_s=0.0)
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    b = np.arange(5, dtype=np.int64)
    writer.write(
        Message(
            "latents",
            kind="latent",
            seq=0,
            lsl_time=1.5,
            arrays=[a, b],
            meta={"trial": np.int64(3)},
        )
    )
    writer.write(Message("events", kind="flip", seq=0, meta={"what": "stimulus"}))
    writer.write(Message("latents", kind="latent", seq=1, arrays=[a + 1]))
    writer.close()
    logged = read_bus_log(tmp_path / "bus")
    assert [m.topic for m in logged] == ["latents", "events", "latents"]
    np.testing.assert_array_equal(logged[0].arrays[0], a)
    np.testing.assert_array_equal(logged[0].arrays[1], b)
    np.testing.assert_array_equal(logged[2].arrays[0], a + 1)
    assert logged[0].meta == {"trial": 3} and logged[0].lsl_time == 1.5
    assert [m.seq for m in read_bus_log(tmp_path / "bus", topics=("latents",))] == [0, 1]
    index = tmp_path / "bus" / "messages.jsonl"
    index.write_text(index.read_text()[:-20])  # a crash mid-line
    assert len(read_bus_log(tmp_path / "bus")) == 2
    # A resumed session appends to the same log: the cut line is ended, what follows is read.
    writer = BusLogWriter(tmp_path / "bus")
    writer.write(Message("events", kind="resumed", seq=0))
    writer.close()
    assert [m.kind for m in read_bus_log(tmp_path / "bus")] == ["latent", "flip", "resumed"]


def test_missing_log_reads_empty(tmp_path):
    assert read_bus_log(tmp_path / "nothing") == []
