"""acquire as a real process reading a rig's streams that this test sends, as another program would.

The test plays the amplifier's LSL app and the display: an 8-channel float32 broadband stream at
30 kHz (spike waveforms it places itself, a NaN chunk, a stall), a second broadband stream with
the wrong channel count, and a string spike-event stream (``"ch4 u1"``, channels counted from 1),
plus the stimulus markers. acquire must leave the wrong stream out with one line, report the NaN
and stalled trials as bad, keep going, and count the spikes it was sent.
"""

from __future__ import annotations

import time
import uuid

import numpy as np
import pylsl
import pytest
from pylsl import local_clock

from bci.lsl.markers import encode_marker
from bci.lsl.streams import make_marker_outlet, make_outlet
from bci.session.config import validate_config
from bci.sim.array import BroadbandSynth
from tests.harness import NodeProcess

pytestmark = pytest.mark.slow

FS, N_CH, CHUNK = 30000, 8, 300
BURST = [0.06 + 0.01 * k for k in range(13)]  # 13 spikes in the 50-200 ms window
ONSETS = {0: 1.3, 1: 1.7, 2: 2.2, 3: 5.0}  # s after the streams start
NAN_SPAN = (1.7, 2.0)
STALL = (2.1, 4.6)  # subject 0 sends nothing (2.5 s > stall_s = resolve_timeout_s = 2 s)
END = 5.6


def rig_config(uid: str) -> dict:
    return validate_config(
        {
            "stimuli": {"path": "stimuli/demo-faces"},
            "session": {"mode": "evolve", "heartbeat_s": 0.1},
            "timing": {"time_scale": 1.0, "stimulus_s": 0.1, "isi_s": 0.1},
            "simulate": {"enabled": False},
            "acquire": {
                "marker_stream": f"rig-markers-{uid}",
                "delay_s": 0.05,
                "window_s": 0.15,
                "resolve_timeout_s": 2.0,
                "streams": [
                    {"name": f"rig-a-{uid}", "subject": 0, "kind": "broadband", "channels": 8},
                    {"name": f"rig-b-{uid}", "subject": 1, "kind": "broadband", "channels": 8},
                    {
                        "name": f"rig-ev-{uid}",
                        "subject": 2,
                        "kind": "events",
                        "channels": 8,
                        "channel_base": 1,
                    },
                ],
            },
        },
        base=__import__("pathlib").Path(__file__).resolve().parents[1],
    )


def test_broadband_faults_and_string_events_from_another_program(tmp_path):
    uid = uuid.uuid4().hex[:8]
    config = rig_config(uid)
    broadband = make_outlet(f"rig-a-{uid}", "Raw", N_CH, FS, f"a-{uid}")
    wrong = make_outlet(f"rig-b-{uid}", "Raw", 6, FS, f"b-{uid}")
    events = pylsl.StreamOutlet(
        pylsl.StreamInfo(f"rig-ev-{uid}", "Spikes", 1, 0.0, "string", f"ev-{uid}")
    )
    markers = make_marker_outlet(config.acquire.marker_stream)
    acq = NodeProcess("acquire", config, tmp_path, ["responses"])
    try:
        assert acq.wait_state("ready", 30.0), acq.log()
        acq.send("start")
        assert acq.wait_state("running", 10.0), acq.log()
        synth = BroadbandSynth(np.full(N_CH, 100.0), FS, seed=0)
        t0 = local_clock() + 0.05
        spikes = [ONSETS[k] + b for k in (0, 3) for b in BURST]
        synth.add_spikes(np.round(np.array(spikes) * FS).astype(np.int64), np.full(len(spikes), 2))
        pending_events = sorted(
            [(ONSETS[k] + b, "ch4 u1") for k in (0, 3) for b in BURST[:10]] + [(1.0, "spike")]
        )
        pending_markers = sorted(ONSETS.items(), key=lambda kv: kv[1])
        sent = 0
        while (now := local_clock() - t0) < END:
            while sent + CHUNK <= now * FS:
                x = synth.emit(CHUNK).astype(np.float64)
                t = (sent + np.arange(CHUNK)) / FS
                x[(t >= NAN_SPAN[0]) & (t < NAN_SPAN[1])] = np.nan
                if not STALL[0] <= t[0] < STALL[1]:
                    broadband.push_chunk(x.astype(np.float32), timestamp=t0 + t[-1])
                wrong.push_chunk(x[:, :6].astype(np.float32), timestamp=t0 + t[-1])
                sent += CHUNK
            while pending_events and pending_events[0][0] <= now:
                at, text = pending_events.pop(0)
                events.push_sample([text], t0 + at)
            while pending_markers and pending_markers[0][1] <= now:
                trial, at = pending_markers.pop(0)
                stimulus = f"img-{trial}"
                text = encode_marker("stimulus", trial=trial, stimulus=stimulus, phase="evolve")
                markers.push_sample([text], t0 + at)
            time.sleep(0.005)
        got = {}
        deadline = time.monotonic() + 5.0
        while len(got) < 8 and time.monotonic() < deadline:
            msg = acq.recv(0.2, topic="responses")
            if msg is not None:
                got[(msg.meta["subject"], msg.meta["trial"])] = msg
        assert acq.proc.poll() is None, acq.log()  # the session goes on
    finally:
        code = acq.stop()
    log = acq.log()
    assert code == 0, log
    assert sorted(got) == [(s, k) for s in (0, 2) for k in range(4)], log
    assert f"stream name='rig-b-{uid}' has 6 channels, expected 8; subject 1 is left out" in log, (
        log
    )
    assert got[(0, 1)].meta["bad"] == "NaN in 8 of 8 voxels"
    assert got[(0, 2)].meta["bad"].startswith("stream stalled: no volume 2.")
    for k in (0, 3):  # 13 spikes on channel 2 in the 150 ms window: 86.7 spikes/s
        meta, pattern = got[(0, k)].meta, got[(0, k)].arrays[0] * 1000.0
        assert meta["bad"] is None and meta["rate_hz"] == 1000.0
        assert pattern[2] == pytest.approx(13 / 0.15, abs=7.0), pattern
        assert np.all(np.abs(np.delete(pattern, 2)) <= 7.0), pattern
    for k in range(4):  # "ch4 u1" counted from 1 is site 3: 10 spikes in the window
        meta, pattern = got[(2, k)].meta, got[(2, k)].arrays[0] * 1000.0
        assert meta["bad"] is None
        expected = np.zeros(N_CH)
        expected[3] = 10 / 0.15 if k in (0, 3) else 0.0
        np.testing.assert_allclose(pattern, expected, atol=1e-3)
    assert "spike event 'spike' names no channel number" in log
    assert "(a gap); its bins are NaN" in log
