"""Opening inlets and measuring their clock offsets (real LSL outlets on loopback)."""

from __future__ import annotations

import time
import uuid

import numpy as np
import pylsl
import pytest

from bci.lsl.streams import StreamError, open_inlet, sync_clocks


def outlet(kind: str = "fMRI") -> pylsl.StreamOutlet:
    name = f"inlet-test-{uuid.uuid4().hex[:8]}"
    return pylsl.StreamOutlet(pylsl.StreamInfo(name, kind, 4, 10.0, "float32", name))


def resolved(out: pylsl.StreamOutlet) -> pylsl.StreamInfo:
    (info,) = pylsl.resolve_bypred(f"name='{out.get_info().name()}'", 1, 5.0)
    return info


def test_clocks_of_several_inlets_are_measured_at_once_and_samples_flow():
    outlets = [outlet() for _ in range(4)]
    infos = [resolved(o) for o in outlets]
    start = time.monotonic()
    one = open_inlet(infos[0])  # opened and measured: liblsl's probes take their time
    single = time.monotonic() - start
    inlets = [open_inlet(i, sync=False) for i in infos[1:]]
    start = time.monotonic()
    sync_clocks(list(zip(infos[1:], inlets, strict=True)))
    together = time.monotonic() - start
    print(f"one inlet {single:.3f} s, three measured together {together:.3f} s")
    assert together < 2.0 * single  # three in sequence would be 3x
    for o in outlets:
        o.push_sample(np.arange(4, dtype=np.float32))
    for inlet in [one, *inlets]:
        sample, stamp = inlet.pull_sample(5.0)
        assert sample == [0.0, 1.0, 2.0, 3.0] and abs(stamp - pylsl.local_clock()) < 5.0


def test_an_inlet_whose_stream_went_away_is_named():
    out = outlet()
    info = resolved(out)
    inlet = open_inlet(info, sync=False)
    del out  # the outlet is gone before its clock was measured
    time.sleep(0.2)
    with pytest.raises(StreamError) as err:
        sync_clocks([(info, inlet)], timeout_s=1.0)
    assert str(err.value) == (
        f"LSL stream {info.name()!r} (source_id={info.source_id()!r}) was found but did not "
        "answer within 1.0 s"
    )
