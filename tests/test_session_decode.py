"""bci-session --mode decode end to end: real processes, LSL, ZeroMQ and pygame (dummy driver)."""

from __future__ import annotations

import json
import os
import signal
import time

import numpy as np
import pytest
import pyxdf
from session_helpers import (
    REPO,
    node_processes,
    outputs_not_in_readme,
    read_summary,
    run_session,
    start_session,
    write_config,
)

from bci.io import read_recording, read_recording_parts
from bci.io.streams import merge_streams

pytestmark = pytest.mark.slow

# A real scanner's confounds at the levels the demo has (spikes more often, so that every session
# has some): the online preprocessing ([preprocess], on by default) must undo them.
CONFOUNDS = {"baseline": 100.0, "drift": 4.0, "run_change": 0.02, "spike_rate": 0.03}
CONFOUNDS["spike_size"] = 0.03


N_TEST = 24
"""Test trials of the module's two sessions (a ratio of two latent r's needs more than 8)."""
STIMULI = {"path": str(REPO / "stimuli" / "demo-faces"), "n_train": 60, "n_test": N_TEST}


@pytest.fixture(scope="module")
def finished_session(tmp_path_factory):
    """A clean scanner and the volumes as they come ([preprocess] method = "none"): the
    reference the session with confounds and preprocessing (the default) is held to."""
    tmp = tmp_path_factory.mktemp("decode")
    out = tmp / "session"
    config = write_config(tmp / "s.toml", stimuli=STIMULI, preprocess={"method": "none"})
    done = run_session(config, out)
    return done, out


@pytest.fixture(scope="module")
def confound_session(tmp_path_factory):
    """The same session (seed, noise) from a scanner with a real scanner's confounds."""
    tmp = tmp_path_factory.mktemp("decode-confounds")
    out = tmp / "session"
    done = run_session(write_config(tmp / "s.toml", stimuli=STIMULI, simulate=CONFOUNDS), out)
    assert done.returncode == 0, done.stderr[-3000:]
    return read_summary(out)


def alarming_log_lines(out) -> list[str]:
    """Log lines of a session folder that would alarm its user on a normal stop (liblsl's
    ``ERR|`` when an inlet sees its outlet go first, a traceback, an error)."""
    return [
        f"{log.name}: {line}"
        for log in (out / "logs").iterdir()
        for line in log.read_text().splitlines()
        if "ERR|" in line or "broke off" in line or "Traceback" in line or " ERROR " in line
    ]


def test_session_decodes_the_test_trials(finished_session):
    done, out = finished_session
    assert done.returncode == 0, done.stderr[-3000:]
    summary = read_summary(out)
    assert summary["mode"] == "decode" and summary["reason"] == "schedule done"
    assert summary["trials"] == {"train": 60, "test": N_TEST}
    decoding = summary["decoding"]
    assert decoding["n"] == N_TEST
    assert decoding["latent_correlation"] > 0.3  # chance is 0
    assert decoding["identification_2way"] > 0.7  # chance is 0.5
    assert summary["latency_ms"]["n"] == N_TEST and summary["latency_ms"]["p50"] > 0
    assert summary["dropped"] == {} and summary["errors"] == []
    assert {n: f["exit_code"] for n, f in summary["nodes"].items()} == {
        n: 0 for n in ("record", "simulate", "render", "display", "acquire", "decode")
    }
    assert f"trials used: 60 calibration, {N_TEST} test" in done.stdout
    # Every sample sent is in the recording, and a decode recording has no bci-fitness stream.
    recording = summary["recording"]
    assert recording["file"] == "recording.xdf" and recording["samples_lost"] == 0
    streams = recording["streams"]
    assert "bci-fitness" not in streams and {"bci-latents", "bci-pipeline"} <= set(streams)
    assert all(c["sent"] == c["recorded"] > 0 for c in streams.values()), streams
    assert streams["bci-latents"]["recorded"] == N_TEST


def test_confounds_are_censored_and_counted_and_decode_as_well_as_without(
    finished_session, confound_session
):
    summary, clean_session = confound_session, read_summary(finished_session[1])
    assert summary["errors"] == [] and summary["trials"]["test"] == N_TEST
    preprocess = summary["preprocess"]
    assert set(preprocess) == {"0", "1"}
    for subject, counts in preprocess.items():
        assert counts["method"] == "glm" and counts["runs"] == 2 and not counts["motion"]
        received = sum(r["volumes_received"][subject] for r in summary["runs"])
        assert counts["volumes"] == received
        per_run = [r["censored_volumes"].get(subject, {}) for r in summary["runs"]]
        assert sum(sum(c.values()) for c in per_run) == counts["censored"]
    assert sum(p["censored_by_reason"]["intensity"] for p in preprocess.values()) > 0  # spikes
    assert summary["bad_trials"] == sum(len(r["bad_trials"]) for r in summary["runs"])
    r, r_clean = (s["decoding"]["latent_correlation"] for s in (summary, clean_session))
    print(f"\nlatent r with confounds {r:.3f}, clean raw {r_clean:.3f}: {r / r_clean:.3f}")
    # The goal (>= 0.95 of the clean latent r) is met on the demo's SNR (0.1): 0.97 of the clean
    # demo without preprocessing, 0.95 of it with (tools/bench_preprocess.py --live). This
    # session's SNR is 1.0, where the high-pass also costs clean data (0.855 offline), and it
    # kept 0.85-0.93 of the clean session without preprocessing in three runs (0.50-0.54
    # against 0.54-0.63; 0.71-0.87 before the high-pass), and 0.70 in a CI run of a clean clone
    # (0.499 against a lucky 0.714: at time scale 20 a window holds two volumes, and which two
    # moves with the live timing of each session): held to a bound below that spread.
    assert r > 0.4 and r >= 0.65 * r_clean


def test_session_folder_has_latents_figures_and_logs(finished_session):
    _, out = finished_session
    latents = np.load(out / "decoded_latents.npz")
    assert latents["decoded"].shape == latents["true"].shape == (N_TEST, 32)
    assert list(latents["stimulus"]) == [f"face-{i:04d}" for i in range(60, 60 + N_TEST)]
    for name in ("reconstructions.png", "latency.png", "model.npz", "calibration.npz"):
        assert (out / name).stat().st_size > 1000, name
    assert sorted(p.name for p in (out / "logs").iterdir()) == [
        f"{n}.log"
        for n in ("acquire", "decode", "display", "labrecorder", "record", "render", "simulate")
    ]
    assert outputs_not_in_readme(out) == []  # the README's table names every file written
    # A normal stop alarms no one: no inlet (LabRecorder's either) saw its outlet go first.
    assert alarming_log_lines(out) == []
    assert node_processes(str(out)) == []


def test_missing_stream_is_named_and_nothing_is_left_running(tmp_path):
    config = write_config(
        tmp_path / "s.toml",
        simulate={"enabled": False},
        acquire={"resolve_timeout_s": 1.0, "streams": [{"name": "nobody-here", "subject": 0}]},
    )
    out = tmp_path / "session"
    done = run_session(config, out)
    assert done.returncode == 1
    message = "no LSL stream with name='nobody-here' type='fMRI' appeared within 1.0 s"
    assert message in done.stderr
    assert message in read_summary(out)["errors"][0]
    assert read_summary(out)["nodes"]["acquire"]["exit_code"] == 1
    assert node_processes(str(out)) == []


def test_invalid_config_gets_one_line_naming_the_key(tmp_path):
    config = write_config(tmp_path / "s.toml", timing={"tr_s": -2.0})
    done = run_session(config, tmp_path / "session")
    assert done.returncode == 2
    assert done.stderr.strip() == f"bci-session: {config}: [timing] tr_s must be > 0, got -2.0"


def _wait_for_pid(out, node, timeout=60.0):
    """The pid of ``node`` once the session runs (the display has begun its schedule)."""
    deadline = time.monotonic() + timeout
    log = out / "logs" / "display.log"
    while time.monotonic() < deadline:
        if log.exists() and "schedule begins" in log.read_text():
            for pid in node_processes(str(out)):
                cmd = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
                if node.encode() in cmd and b"bci.nodes" in cmd:
                    return pid
        time.sleep(0.1)
    raise AssertionError(f"{node} never became ready")


def test_killed_node_is_named_and_the_rest_stop(tmp_path):
    out = tmp_path / "session"
    proc = start_session(write_config(tmp_path / "s.toml"), out)
    try:
        os.kill(_wait_for_pid(out, "render"), signal.SIGKILL)
        _, output = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 1, output[-2000:]
    summary = read_summary(out)
    assert summary["nodes"]["render"]["exit_code"] == -9
    assert summary["errors"][0].startswith("node 'render' died (exit code -9)")
    others = {n: f["exit_code"] for n, f in summary["nodes"].items() if n != "render"}
    assert all(code == 0 for code in others.values()), others
    assert node_processes(str(out)) == []


def test_killed_nodes_are_restarted_when_the_config_asks(tmp_path):
    """render and record killed mid-session are restarted. The killed record node's LabRecorder
    records on (the supervisor holds its input open) until the restarted node's LabRecorder
    collects into recording-2.xdf: no volume is lost between the files. The summary counts
    every sample over both files (once, though both hold the overlap), names any loss, and the
    two files read back as one recording."""
    out = tmp_path / "session"
    config = write_config(tmp_path / "s.toml", session={"restart": ["render", "record"]})
    proc = start_session(config, out)
    try:
        os.kill(_wait_for_pid(out, "render"), signal.SIGKILL)
        time.sleep(1.0)
        os.kill(_wait_for_pid(out, "record"), signal.SIGKILL)
        _, output = proc.communicate(timeout=120)
    finally:
        proc.kill()
    summary = read_summary(out)
    assert summary["nodes"]["render"]["restarts"] == summary["nodes"]["record"]["restarts"] == 1
    assert summary["errors"][0].startswith("node 'render' died (exit code -9)")
    assert summary["errors"][1].startswith("node 'record' died (exit code -9)")
    assert summary["trials"]["test"] == 8
    recording = summary["recording"]
    assert recording["files"] == ["recording.xdf", "recording-2.xdf"]
    assert recording["gaps_s"] == [0.0]  # the files overlap
    record_log = (out / "logs" / "record.log").read_text()
    assert "the LabRecorder of recording.xdf recorded on while this node restarted" in record_log
    raw = {"synchronize_clocks": False, "dejitter_timestamps": False}  # the stamps as sent
    files = [pyxdf.load_xdf(str(out / f), **raw)[0] for f in recording["files"]]
    stamps = [{s["info"]["name"][0]: s["time_stamps"] for s in part} for part in files]
    streams = recording["streams"]
    # What the simulator sent is what acquire received (its inlets buffer whole streams), and
    # every volume is in one file or the other (the overlap counted once).
    received = sum(run["volumes_received"]["0"] for run in summary["runs"])
    assert streams["bci-sim-01"]["sent"] == received
    volumes = np.union1d(stamps[0]["bci-sim-01"], stamps[1]["bci-sim-01"])
    assert streams["bci-sim-01"]["recorded"] == volumes.size == received
    for name in ("bci-sim-01", "bci-sim-02", "bci-triggers", f"bci-markers-{tmp_path.name}"):
        assert streams[name]["recorded"] == streams[name]["sent"], (name, streams[name])
    # A derived stream may lose what the killed node pushed in its last moment: said, not hidden.
    lost = {n: c["sent"] - c["recorded"] for n, c in streams.items() if c["recorded"] < c["sent"]}
    assert recording["samples_lost"] == sum(lost.values())
    for name, n in lost.items():
        assert any(
            f"lost {n} of {streams[name]['sent']} samples of stream {name!r}" in e
            for e in summary["errors"]
        ), name
    print(
        f"\nrecord restarted: lost per stream {lost}; bci-sim-01 {received} sent, in both files "
        f"{np.intersect1d(stamps[0]['bci-sim-01'], stamps[1]['bci-sim-01']).size}"
    )
    assert proc.returncode == (1 if lost else 0), output[-2000:]
    # A replay reads both files as one recording: each stream once, in time order.
    both = read_recording_parts(out / "recording.xdf")
    assert both.info["parts"] == "recording.xdf, recording-2.xdf"
    merged = merge_streams([s for s in both.streams if s.name == "bci-sim-01"])
    assert merged.n_samples == received
    assert np.all(np.diff(merged.time_stamps) > 0)
    assert node_processes(str(out)) == []


def test_ctrl_c_stops_everything_and_keeps_the_recording(tmp_path):
    """Ctrl-C: the session exits with every process gone, LabRecorder too, and the recording whole.

    LabRecorder is not waited for while it closes the file (its clock-offset thread wakes only
    every 5 s): the record node ends it once the file holds every sample sent (bci.io.labrecorder),
    so the file has no stream footers, and pyxdf and our reader read it whole. The sources close
    their inlets on each other's streams first: no ``ERR| Stream transmission broke off`` in any
    log. (tools/bench_stop.py measures how long a Ctrl-C takes.)
    """
    out = tmp_path / "session"
    # the display reads the simulator's triggers, as in the demo
    config = write_config(tmp_path / "s.toml", trigger={"source": "lsl"})
    proc = start_session(config, out)
    try:
        _wait_for_pid(out, "display")
        time.sleep(1.0)
        # The supervisor, six nodes, and LabRecorder (the record node's child).
        assert len(node_processes(str(out))) == 8
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        left = node_processes(str(out))  # the moment the command has exited
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert left == []
    summary = read_summary(out)
    assert summary["reason"] == "stopped by SIGINT"
    assert summary["recording"]["samples_lost"] == 0, summary["recording"]
    sent = {n: c["sent"] for n, c in summary["recording"]["streams"].items()}
    markers = f"bci-markers-{tmp_path.name}"
    assert sent["bci-sim-01"] > 0 and sent[markers] > 0 and sent["bci-responses-00"] > 0
    # The file: every sample sent, read by pyxdf and by our reader, the clock offsets with them.
    streams, _ = pyxdf.load_xdf(str(out / "recording.xdf"))
    assert {s["info"]["name"][0]: len(s["time_stamps"]) for s in streams} == sent
    assert all(len(s["clock_times"]) == len(s["clock_values"]) for s in streams)
    recording = read_recording(out / "recording.xdf")
    assert {s.name: len(s.time_stamps) for s in recording.streams if len(s.time_stamps)} == {
        n: c for n, c in sent.items() if c
    }
    # The recording ends with the record node's entry of what was sent (which made LabRecorder
    # write its buffer out), and the counts in it are the file's.
    end = json.loads(recording.stream("bci-pipeline").data[-1][0])
    assert (end["topic"], end["kind"]) == ("record", "recording_end")
    assert {n: c for n, c in end["meta"]["samples_sent"].items() if n != "bci-pipeline"} == {
        n: c for n, c in sent.items() if n != "bci-pipeline"
    }
    assert alarming_log_lines(out) == []
    assert (
        "LabRecorder ended: recording.xdf holds every sample sent"
        in (out / "logs" / "record.log").read_text()
    )
