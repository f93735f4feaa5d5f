"""Sessions that do not mix and do not hang: two sessions at once on one LSL network, with the
same stream names, each take and record only their own streams (their source ids carry the
session's id); acquire and decode restarted during the calibration. Real sessions, real
LabRecorder.

The first test runs two sessions concurrently; run this file alone (under the LSL lock).
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
import pyxdf
from session_helpers import node_name, node_processes, read_summary, start_session, write_config

pytestmark = pytest.mark.slow

N_TRAIN, N_TEST = 16, 4


def test_two_sessions_at_once_each_record_only_their_own_streams(tmp_path):
    outs, procs = [], []
    for k in range(2):
        folder = tmp_path / f"s{k}"
        folder.mkdir()
        config = write_config(
            folder / "s.toml",
            stimuli={"n_train": N_TRAIN, "n_test": N_TEST},
            timing={"run_break_s": 2.0},
            # the same names in both sessions: only the session ids tell them apart
            acquire={"marker_stream": f"bci-markers-{tmp_path.name}"},
        )
        outs.append(folder / "out")
        procs.append(start_session(config, outs[-1]))
    try:
        results = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            p.kill()
    ids = [json.loads((o / "session.json").read_text())["config"]["session_id"] for o in outs]
    assert ids[0] != ids[1] and all(ids)
    for out, proc, (_, err), own, other in zip(outs, procs, results, ids, ids[::-1], strict=True):
        assert proc.returncode == 0, err[-3000:]
        summary = read_summary(out)
        assert summary["errors"] == [], summary["errors"]
        assert summary["recording"]["samples_lost"] == 0, summary["recording"]
        streams, _ = pyxdf.load_xdf(str(out / "recording.xdf"))
        found = sorted((s["info"]["name"][0], s["info"]["source_id"][0]) for s in streams)
        names = [n for n, _ in found]
        assert names == sorted(
            [
                "bci-latents",
                f"bci-markers-{tmp_path.name}",
                "bci-pipeline",
                "bci-responses-00",
                "bci-responses-01",
                "bci-sim-01",
                "bci-sim-02",
                "bci-triggers",
            ]
        ), found
        assert all(sid.endswith(f"@{own}") for _, sid in found), found
        assert not any(other in sid for _, sid in found), found
        for node in ("acquire", "record", "simulate"):
            log = (out / "logs" / f"{node}.log").read_text()
            assert "LSL streams match" not in log, log
        assert summary["nodes"]["decode"]["counters"]["decoded"] == N_TEST


def _stored(out) -> int:
    return len(list((out / "calibration" / "responses").glob("*.npz")))


def _pid_of(out, node: str) -> int:
    for pid in node_processes(str(out)):
        if node_name(pid) == node:
            return pid
    raise AssertionError(f"no {node} process")


def test_acquire_and_decode_restarted_during_calibration_the_session_goes_on(tmp_path):
    """acquire restarted mid-calibration loses the trials in flight; decode restarted picks its
    stored responses up; the model is fitted from the complete trials when the run ends."""
    out = tmp_path / "out"
    # 40 calibration trials are 12 s of wall time: the two restarts (about 4 s and 1.5 s here)
    # leave enough complete trials to fit on (with 24, a slow machine was left with 2)
    config = write_config(
        tmp_path / "s.toml",
        stimuli={"n_train": 40, "n_test": N_TEST},
        timing={"run_break_s": 2.0},
        session={"restart": ["acquire", "decode"]},
    )
    proc = start_session(config, out)
    try:
        deadline = time.monotonic() + 90
        while _stored(out) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(_pid_of(out, "acquire"), signal.SIGKILL)
        before = _stored(out)
        while _stored(out) <= before and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(_pid_of(out, "decode"), signal.SIGKILL)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    summary = read_summary(out)
    assert proc.returncode == 0, (summary["errors"], err[-2000:])
    assert summary["nodes"]["acquire"]["restarts"] == 1
    assert summary["nodes"]["decode"]["restarts"] == 1
    assert summary["nodes"]["decode"]["counters"]["decoded"] == N_TEST
    decode_log = (out / "logs" / "decode.log").read_text()
    assert "picked up" in decode_log and "fitting the model on" in decode_log
    assert node_processes(str(out)) == []
