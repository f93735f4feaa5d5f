"""Recording into XDF with LabRecorder and replaying it through the same pipeline.

A short live decode session runs on real processes; its ``recording.xdf`` (written by
LabRecorder) is read back with pyxdf through :func:`bci.io.read_recording` and replayed with
``bci-session --replay``, which must decode the very same latents.
"""

from __future__ import annotations

import json
import os
import signal
import time

import mne
import numpy as np
import pylsl
import pytest
from session_helpers import (
    node_name,
    node_processes,
    read_summary,
    run_session,
    start_session,
    write_config,
)

from bci.bus.log import read_bus_log
from bci.io import read_recording, to_mne
from bci.lsl.markers import decode_marker
from bci.nodes.replay import expected_answers

pytestmark = pytest.mark.slow

N_TRAIN, N_TEST = 40, 8


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("live")
    out = tmp / "session"
    config = write_config(tmp / "s.toml", stimuli={"n_train": N_TRAIN, "n_test": N_TEST})
    done = run_session(config, out)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def replay(live_out, out, *extra: str):
    """Replay the live session's recording with the config in its session.json."""
    return run_session(None, out, "--replay", str(live_out / "recording.xdf"), *extra)


def test_recording_holds_every_stream_and_every_sample(live):
    recording = read_recording(live / "recording.xdf")
    summary = read_summary(live)
    streams = {s.name: s for s in recording.streams}
    sent = summary["nodes"]["simulate"]["counters"]["volumes"]
    period = 2.0 / 20.0  # TR / time_scale, wall seconds
    for name in ("bci-sim-01", "bci-sim-02"):
        stream = streams[name]
        assert stream.type == "fMRI" and stream.n_channels == 256
        # Every volume from the first on, without a gap; LabRecorder may miss what is pushed in
        # the moment it stops (the session's last second, after the schedule), never more.
        assert sent - 1.0 / period <= stream.n_samples <= sent, (stream.n_samples, sent)
        # Two scanner runs: volumes every TR within each, nothing in the break between them.
        diffs = np.diff(stream.time_stamps)
        (gap,) = np.flatnonzero(diffs > 2 * period)
        np.testing.assert_allclose(np.delete(diffs, gap), period, atol=1e-3)
        assert diffs[gap] > 10.0 / 20.0  # run_break_s / time_scale
    display = summary["nodes"]["display"]["counters"]
    markers = streams[f"bci-markers-{live.parent.name}"]
    # A marker per flip, two run and two phase markers, and one per reconstruction shown.
    assert markers.n_samples == display["flips"] + 4 + display["reconstructions"]
    events = [decode_marker(s[0])["event"] for s in markers.data]
    assert events.count("stimulus") == N_TRAIN + N_TEST
    # The pipeline's own streams: every response and every decoded latent, as on the bus.
    responses = read_bus_log(live / "bus", topics=("responses",))
    for subject in (0, 1):
        bus = [m for m in responses if m.meta["subject"] == subject]
        xdf = streams[f"bci-responses-{subject:02d}"]
        assert xdf.n_samples == len(bus) == N_TRAIN + N_TEST
        np.testing.assert_array_equal(xdf.data, np.stack([m.arrays[0] for m in bus]))
    latents = np.load(live / "decoded_latents.npz")["decoded"]
    np.testing.assert_array_equal(streams["bci-latents"].data, latents)
    entries = [json.loads(s[0]) for s in streams["bci-pipeline"].data]
    assert sum(e["topic"] == "latents" for e in entries) == N_TEST
    # Every stream is usable: a decode recording has no (empty) bci-fitness stream.
    assert recording.skipped == [] and "bci-fitness" not in streams


def test_replay_reproduces_the_live_latents(live, tmp_path):
    out = tmp_path / "replay"
    done = replay(live, out, "--speed", "0")
    assert done.returncode == 0, done.stderr[-3000:]
    summary = read_summary(out)
    assert summary["reason"] == "schedule done"
    assert summary["trials"] == {"train": N_TRAIN, "test": N_TEST}
    report = summary["replay"]
    assert report["speed"] == 0 and report["source_session"] == str(live)
    assert report["trials_compared"] == N_TEST and report["trials_missing"] == 0
    assert report["max_latent_difference"] <= 1e-5
    np.testing.assert_allclose(
        np.load(out / "decoded_latents.npz")["decoded"],
        np.load(live / "decoded_latents.npz")["decoded"],
        atol=1e-5,
    )
    assert set(summary["nodes"]) == {"record", "replay", "render", "acquire", "decode"}
    assert "max latent difference" in done.stdout
    # The replay is recorded too.
    assert (out / "recording.xdf").stat().st_size > 10_000
    assert node_processes(str(out)) == []


def test_replay_at_speed_keeps_the_timing(live, tmp_path):
    out = tmp_path / "replay"
    done = replay(live, out, "--speed", "3")
    assert done.returncode == 0, done.stderr[-3000:]
    report = read_summary(out)["replay"]
    assert report["trials_compared"] == N_TEST and report["max_latent_difference"] <= 1e-5
    stamps = read_recording(out / "recording.xdf").stream("bci-sim-01").time_stamps
    original = read_recording(live / "recording.xdf").stream("bci-sim-01").time_stamps
    n = min(len(stamps), len(original))
    np.testing.assert_allclose(np.diff(stamps[:n]), np.diff(original[:n]) / 3, atol=2e-3)
    # The replay sends no trigger stream (the live session's came from its simulator, [trigger]
    # source is not "lsl"): the record node does not wait resolve_timeout_s for one.
    assert "no LSL stream" not in (out / "logs" / "record.log").read_text()


def test_to_mne_of_a_session_recording(live):
    raw = to_mne(live / "recording.xdf", streams=["bci-sim-01", "bci-sim-02"])
    assert isinstance(raw, mne.io.BaseRaw)
    assert len(raw.ch_names) == 2 * 256 and raw.ch_names[0] == "bci-sim-01:voxel-00000"
    stimulus = [d for d in raw.annotations.description if '"event":"stimulus"' in d]
    assert len(stimulus) == N_TRAIN + N_TEST


def test_replay_names_a_missing_stream_and_leaves_nothing_running(live, tmp_path):
    config = write_config(
        tmp_path / "s.toml",
        simulate={"enabled": False},
        acquire={"streams": [{"name": "not-in-the-file", "subject": 0}]},
    )
    out = tmp_path / "replay"
    done = run_session(config, out, "--replay", str(live / "recording.xdf"))
    assert done.returncode == 1
    assert "replay: recording.xdf has no stream with name='not-in-the-file' type='fMRI'" in (
        done.stderr
    )
    assert node_processes(str(out)) == []


def test_replay_without_a_config_or_session_folder_is_refused(tmp_path, shared_dir):
    out = tmp_path / "replay"
    xdf = shared_dir / "xdf-examples" / "minimal.xdf"
    done = run_session(None, out, "--replay", str(xdf))
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"bci-session: --replay {xdf}: no session.json beside it; give the session's --config"
    )


REFERENCE = {
    # file: (data stream, marker stream and its type, streams the reader could not use)
    "minimal.xdf": ("SendDataC", "SendDataString", "StringMarker", 0),
    "clock_resets.xdf": ("BioSemi", "MyMarkerStream", "Markers", 0),
    "empty_streams.xdf": ("Data stream: test stream 0 counter", "ctrl", "control", 2),
}


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_reference_recordings_hold_nothing_the_pipeline_would_answer(shared_dir, name):
    """What the replay node checks at set-up, for each of the XDF project's reference files:
    the reader keeps the streams it can use, and their markers are not the display's."""
    data, markers, _, n_skipped = REFERENCE[name]
    recording = read_recording(shared_dir / "xdf-examples" / name)
    assert len(recording.skipped) == n_skipped
    assert recording.stream(data).data.shape[0] > 0
    assert expected_answers(recording.stream(markers), "decode") == 0


def test_a_reference_recording_replayed_ends_in_one_line(tmp_path, shared_dir):
    """A reference file given to a decode session (the one with streams the reader cannot use)
    ends in one line: its markers are not the display's, so the replay says there is nothing to
    replay (an error, exit 1) instead of a "schedule done" with 0 trials; the streams the reader
    could not use are listed in the replay's log."""
    name = "empty_streams.xdf"
    data, markers, marker_type, n_skipped = REFERENCE[name]
    xdf = shared_dir / "xdf-examples" / name
    config = write_config(
        tmp_path / "s.toml",
        simulate={"enabled": False},
        acquire={
            "streams": [{"name": data, "type": "", "subject": 0}],
            "marker_stream": markers,
            "marker_type": marker_type,
            "resolve_timeout_s": 5.0,
        },
    )
    out = tmp_path / "replay"
    done = run_session(config, out, "--replay", str(xdf), "--speed", "0", timeout=120)
    assert done.returncode == 1, done.stderr[-2000:]
    recording = read_recording(xdf)
    expected = (
        f"replay: {name}: nothing to replay, {recording.stream(markers).describe()} has no "
        "test-phase stimulus markers (a truncated recording?)"
    )
    assert expected in done.stderr
    log = (out / "logs" / "replay.log").read_text()
    assert len(recording.skipped) == n_skipped
    for what, why in recording.skipped:
        assert f"not replayed: {what}: {why}" in log
    assert expected in read_summary(out)["errors"][0]
    assert node_processes(str(out)) == []


def test_a_truncated_recording_is_nothing_to_replay(live, tmp_path):
    """A recording cut off before the test run replays nothing: an error that says why."""
    xdf = live / "recording.xdf"
    cut = tmp_path / "recording.xdf"
    data = xdf.read_bytes()
    cut.write_bytes(data[: len(data) // 4])
    config = json.loads((live / "session.json").read_text())["config"]
    markers = read_recording(cut).stream(config["acquire"]["marker_stream"])
    phases = {decode_marker(m[0]).get("phase") for m in markers.data}
    assert "train" in phases and "test" not in phases  # cut within the calibration run
    (tmp_path / "session.json").write_bytes((live / "session.json").read_bytes())
    out = tmp_path / "replay"
    done = run_session(None, out, "--replay", str(cut), "--speed", "0", timeout=120)
    assert done.returncode == 1, done.stderr[-2000:]
    expected = (
        f"replay: recording.xdf: nothing to replay, {markers.describe()} has no test-phase "
        "stimulus markers (a truncated recording?)"
    )
    assert expected in done.stderr
    assert read_summary(out)["reason"] != "schedule done"
    assert node_processes(str(out)) == []


def test_replay_of_an_mne_fif_export_decodes(live, tmp_path):
    """One subject of the recording, written as FIF by MNE, replays and is decoded again."""
    raw = to_mne(live / "recording.xdf", streams=["bci-sim-01"])
    fif = tmp_path / "sub01_raw.fif"
    raw.save(fif, verbose="error")
    config = write_config(
        tmp_path / "s.toml",
        stimuli={"n_train": N_TRAIN, "n_test": N_TEST},
        simulate={"enabled": False},
        acquire={
            "streams": [{"name": "sub01_raw", "type": "", "subject": 0}],
            "marker_stream": "sub01_raw-annotations",
        },
        model={"aligner": "none"},
    )
    out = tmp_path / "replay"
    done = run_session(config, out, "--replay", str(fif), "--speed", "0")
    assert done.returncode == 0, done.stderr[-3000:]
    summary = read_summary(out)
    assert summary["trials"] == {"train": N_TRAIN, "test": N_TEST}
    assert summary["bad_trials"] == 0
    # Chance is 0. One participant of two, without hyperalignment: measured 0.49-0.54 of a live
    # 0.64, and 0.29 of 0.42 when the live session ran on a loaded machine (its simulator then
    # places responses by markers it reads late), so the bound follows the live session's r.
    live_r = read_summary(live)["decoding"]["latent_correlation"]
    assert summary["decoding"]["latent_correlation"] > 0.5 * live_r, live_r
    assert node_processes(str(out)) == []


def test_a_killed_record_node_leaves_a_readable_recording(tmp_path):
    """LabRecorder outlives a crashed record node just long enough to close the XDF file."""
    config = write_config(tmp_path / "s.toml", stimuli={"n_train": N_TRAIN, "n_test": N_TEST})
    out = tmp_path / "session"
    proc = start_session(config, out)
    try:
        deadline = time.monotonic() + 90
        display = out / "logs" / "display.log"
        while time.monotonic() < deadline:
            if display.is_file() and "schedule begins" in display.read_text():
                break
            time.sleep(0.1)
        time.sleep(2.0)  # some volumes into the run
        record = [p for p in node_processes(str(out)) if node_name(p) == "record"]
        assert len(record) == 1
        os.kill(record[0], signal.SIGKILL)
        killed_at = pylsl.local_clock()
        proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1
    assert read_summary(out)["errors"][0].startswith("node 'record' died (exit code -9)")
    recording = read_recording(out / "recording.xdf")  # footers written: LabRecorder finished
    stamps = recording.stream("bci-sim-01").time_stamps
    # Every volume from the start up to at most a second before the crash is in the file.
    assert stamps[-1] >= killed_at - 1.0, (stamps[-1], killed_at)
    np.testing.assert_allclose(np.diff(stamps), 0.1, atol=1e-3)
    assert node_processes(str(out)) == []
