"""The display node: drawing, the schedule on a real window (dummy driver), LSL markers, events.

The process tests run ``python -m bci.nodes display`` with the test as supervisor and as the
render node, and read the node's markers with a real LSL inlet. Timing checks are loose on
purpose: the machine running the tests may be busy.
"""

from __future__ import annotations

import logging
import math
import os
import statistics
import subprocess
import sys
import time
import uuid

import numpy as np
import pygame
import pytest
from harness import NodeProcess
from pylsl import StreamInfo, StreamInlet, StreamOutlet, local_clock, resolve_byprop

from bci.bus import Publisher, Subscriber
from bci.lsl.markers import decode_marker
from bci.nodes.base import NodeError
from bci.nodes.display import DisplayNode
from bci.nodes.screen import FIXATION, PARTICIPANT_BG, Screen
from bci.session.config import validate_config
from bci.stimulus_set import make_stimulus_set, save_stimulus_set

N_TRAIN, N_TEST, TIME_SCALE = 3, 2, 20.0
TRIAL_S = (2.0 + 2.0) / TIME_SCALE  # stimulus_s + isi_s, in wall seconds
STIMULUS_S = 2.0 / TIME_SCALE


def make_session(tmp_path, **tables) -> tuple[dict, list[str], np.ndarray]:
    """A stimulus set of 6 tiny images and a validated config presenting 3 + 2 of them."""
    stimuli = make_stimulus_set(6, 4, seed=0)
    save_stimulus_set(stimuli, tmp_path / "stimuli")
    images = np.random.default_rng(0).integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
    raw = {
        "session": {"ready_timeout_s": 30.0, "heartbeat_s": 0.1},
        "stimuli": {"path": "stimuli", "n_train": N_TRAIN, "n_test": N_TEST},
        "timing": {"time_scale": TIME_SCALE, "stimulus_s": 2.0, "isi_s": 2.0, "run_break_s": 0.0},
        "acquire": {"marker_stream": f"bci-markers-test-{uuid.uuid4().hex[:8]}"},
        "display": {"width": 320, "height": 160, "fps": 60.0},
    }
    for name, table in tables.items():
        raw[name] = {**raw.get(name, {}), **table}
    return validate_config(raw, base=tmp_path), list(stimuli.ids), images


def open_markers(name: str) -> StreamInlet:
    streams = resolve_byprop("name", name, 1, 15.0)
    assert streams, f"marker stream {name!r} not found"
    assert streams[0].type() == "Markers" and streams[0].source_id() == "bci-markers-display"
    inlet = StreamInlet(streams[0])
    inlet.open_stream(15.0)
    return inlet


def pull_markers(inlet: StreamInlet, n: int, timeout_s: float) -> list[tuple[dict, float]]:
    out: list[tuple[dict, float]] = []
    deadline = time.monotonic() + timeout_s
    while len(out) < n and time.monotonic() < deadline:
        sample, stamp = inlet.pull_sample(timeout=0.2)
        if sample is not None:
            out.append((decode_marker(sample[0]), stamp))
    return out


# -- drawing, off-screen ---------------------------------------------------------------------
def test_screen_draws_stimulus_and_reconstruction_off_screen():
    screen = Screen(pygame.Surface((320, 160)))
    lay = screen.layout
    assert lay.participant.right <= lay.panel.left
    assert lay.panel.contains(lay.panel_stimulus) and lay.panel.contains(lay.panel_reconstruction)
    screen.clear()
    image = np.random.default_rng(1).integers(0, 256, (*lay.stimulus.size[::-1], 3), np.uint8)
    big, thumb = screen.prepare_stimulus(image)
    screen.draw_stimulus(big)
    shown = pygame.surfarray.array3d(screen.target.subsurface(lay.stimulus)).transpose(1, 0, 2)
    np.testing.assert_array_equal(shown, image)
    assert screen.target.get_at((lay.participant.x + 1, 1))[:3] == PARTICIPANT_BG

    participant = pygame.surfarray.array3d(screen.target.subsurface(lay.participant)).copy()
    recon = np.zeros((8, 8, 3), np.uint8)
    recon[...] = (200, 10, 30)
    screen.draw_pair("trial 3 · face-0003", thumb, screen.prepare_reconstruction(recon))
    assert screen.target.get_at(lay.panel_reconstruction.center)[:3] == (200, 10, 30)
    tile = pygame.surfarray.array3d(screen.target.subsurface(lay.panel_stimulus))
    assert tile.std() > 20  # the (smoothly scaled) stimulus thumbnail, not a flat fill
    after = pygame.surfarray.array3d(screen.target.subsurface(lay.participant))
    np.testing.assert_array_equal(after, participant)  # the participant's view is untouched

    screen.draw_blank()
    assert screen.target.get_at(lay.participant.center)[:3] == FIXATION
    assert screen.target.get_at(lay.panel_reconstruction.center)[:3] == (200, 10, 30)
    with pytest.raises(ValueError, match=r"expected a \(H, W, 3\) uint8 image"):
        screen.prepare_reconstruction(np.zeros((8, 8), np.float32))


def test_headless_fallback_selects_dummy_driver_without_the_environment():
    code = (
        "import os, logging; logging.basicConfig(level=logging.INFO)\n"
        "from bci.nodes.screen import open_window\n"
        "w = open_window(64, 32)\n"
        "print('DRIVER', w.driver, w.headless, w.vsync, os.environ['SDL_VIDEODRIVER'])\n"
    )
    env = dict(os.environ, SDL_VIDEODRIVER="no-such-driver")
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "DRIVER dummy True False no-such-driver" in result.stdout
    assert "the session runs headless" in result.stderr


# -- the node in this process: ESC aborts ----------------------------------------------------
def test_escape_publishes_abort_and_finishes(tmp_path, caplog):
    config, _, _ = make_session(tmp_path)
    with Publisher(name="display") as pub, Subscriber(pub.endpoint, topics=["events"]) as sub:
        assert pub.wait_for_subscribers("events")
        node = DisplayNode(config, tmp_path, pub)
        try:
            node.setup()
            if node.driver in ("dummy", "offscreen"):  # headless: no refresh to sync to
                assert not node.vsync
            node.tick()
            assert not node.finished and node.poll_ms > 0
            pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_ESCAPE))
            node.tick()
            assert node.finished
            msg = sub.recv(timeout_ms=2000)
            assert msg is not None and msg.kind == "abort" and msg.meta["reason"] == "escape"
        finally:
            node.teardown()


# -- the node as a process -------------------------------------------------------------------
def test_display_node_runs_the_schedule_and_marks_every_flip(tmp_path):
    config, ids, images = make_session(tmp_path, acquire={"delay_s": 1.0, "window_s": 1.0})
    render = Publisher(name="render")
    node = NodeProcess(
        "display", config, tmp_path, topics=["events"], peers={"render": render.endpoint}
    )
    inlet = None
    try:
        assert node.wait_state("ready", 30.0), node.log()
        inlet = open_markers(config.acquire.marker_stream)
        node.send("start")
        assert render.wait_for_subscribers("images", timeout_ms=10_000)
        for lo, hi in ((0, 3), (3, 6)):  # in chunks, like the render node
            render.publish("images", [images[lo:hi]], kind="stimuli", meta={"ids": ids[lo:hi]})
        # The test run waits for the decode node's model: announce it (as decode would).
        assert render.wait_for_subscribers("events", timeout_ms=10_000)
        render.publish("events", kind="model_ready", meta={"node": "decode"})

        n = N_TRAIN + N_TEST
        markers = pull_markers(inlet, 2 * n + 4, timeout_s=20.0)
        events = [m["event"] for m, _ in markers]
        assert (
            events
            == ["run", "phase"]
            + ["stimulus", "blank"] * N_TRAIN
            + ["run", "phase"]
            + ["stimulus", "blank"] * N_TEST
        ), node.log()
        runs = [m for m, _ in markers if m["event"] == "run"]
        assert [(r["run"], r["phase"], r["trials"]) for r in runs] == [
            (0, "train", N_TRAIN),
            (1, "test", N_TEST),
        ]
        run_stamps = [t for m, t in markers if m["event"] == "run"]
        trials = [m for m, _ in markers if m["event"] in ("stimulus", "blank")]
        assert [m["trial"] for m in trials] == [k for k in range(n) for _ in (0, 1)]
        assert [m["stimulus"] for m in trials] == [ids[k] for k in range(n) for _ in (0, 1)]
        assert [m["phase"] for m in trials] == ["train"] * 6 + ["test"] * 4
        assert [m["phase"] for m, _ in markers if m["event"] == "phase"] == ["train", "test"]
        assert markers[1][1] == markers[2][1]  # the phase is stamped with its first stimulus
        assert markers[9][1] == markers[10][1]

        stamps = [t for m, t in markers if m["event"] == "stimulus"]
        blanks = [t for m, t in markers if m["event"] == "blank"]
        spacing = np.diff(stamps)
        assert np.all(spacing > 0)
        assert abs(statistics.median(spacing) - TRIAL_S) < 0.1, spacing  # loose: busy machines
        durations = np.subtract(blanks, stamps)
        assert abs(statistics.median(durations) - STIMULUS_S) < 0.1, durations
        assert stamps[-1] - stamps[0] >= (n - 1) * TRIAL_S - 0.1

        # A reconstruction arrives: shown at once, marked, and its latency reported.
        arrival = local_clock()
        recon = np.full((16, 16, 3), 77, np.uint8)
        meta = {"trial": 3, "stimulus": ids[3], "arrival_lsl": arrival}
        render.publish("images.display", [recon], kind="reconstruction", meta=meta)
        got = pull_markers(inlet, 1, timeout_s=10.0)
        assert got, node.log()
        marker, stamp = got[0]
        assert marker == {"event": "reconstruction", "trial": 3, "stimulus": ids[3]}, node.log()
        assert stamp >= arrival

        flips, done = [], None
        while done is None:
            msg = node.recv(timeout_s=15.0, topic="events")
            assert msg is not None, node.log()
            if msg.kind == "schedule_done":
                done = msg
            elif msg.kind in ("flip", "phase"):
                flips.append(msg)
        assert done.meta["trials"] == n and done.meta["dropped_frames"] >= 0
        scheduled = [f for f in flips if f.kind == "flip" and f.meta["what"] != "reconstruction"]
        assert [(f.meta["what"], f.meta["trial"]) for f in scheduled] == [
            (what, k) for k in range(n) for what in ("stimulus", "blank")
        ]
        sched_stamps = [f.lsl_time for f in scheduled]
        assert sched_stamps == [t for m, t in markers if m["event"] in ("stimulus", "blank")]
        # Intended onsets (stamp - lateness) lie exactly on each run's schedule, from its start.
        intended = np.array([f.lsl_time - f.meta["late_ms"] / 1000 for f in scheduled])
        for run, (first, count) in enumerate(((0, N_TRAIN), (N_TRAIN, N_TEST))):
            onsets = [k * TRIAL_S + s for k in range(count) for s in (0.0, STIMULUS_S)]
            mine = intended[2 * first : 2 * (first + count)]
            np.testing.assert_allclose(mine - run_stamps[run], onsets, atol=1e-6)
        early_ms = 1.0 + 500.0 / config.display.fps  # with vsync: half a frame early
        assert all(f.meta["late_ms"] > -early_ms for f in scheduled), node.log()
        phases = [f for f in flips if f.kind == "phase"]
        assert [f.meta["phase"] for f in phases] == ["train", "test"]

        (rec,) = [f for f in flips if f.kind == "flip" and f.meta["what"] == "reconstruction"]
        assert rec.meta["trial"] == 3 and rec.meta["stimulus"] == ids[3]
        latency = rec.meta["latency_ms"]
        assert math.isfinite(latency) and latency >= 0
        assert rec.lsl_time == stamp
        late = [f.meta["late_ms"] for f in scheduled]
        print(
            f"\nreconstruction flip latency {latency:.2f} ms; dropped frames "
            f"{done.meta['dropped_frames']}; scheduled flips late by median "
            f"{statistics.median(late):.2f} ms, max {max(late):.2f} ms"
        )
        assert node.proc.poll() is None  # keeps running after schedule_done
    finally:
        if inlet is not None:
            inlet.close_stream()
        code = node.stop()
        render.close()
    assert code == 0, node.log()


def test_stimuli_that_never_arrive_stop_the_node_with_a_one_line_error(tmp_path):
    config, ids, images = make_session(tmp_path, session={"ready_timeout_s": 1.0})
    render = Publisher(name="render")
    node = NodeProcess("display", config, tmp_path, topics=[], peers={"render": render.endpoint})
    try:
        assert node.wait_state("ready", 30.0), node.log()
        node.send("start")
        assert render.wait_for_subscribers("images", timeout_ms=10_000)
        render.publish("images", [images[:2]], kind="stimuli", meta={"ids": ids[:2]})
        node.proc.wait(timeout=30)
    finally:
        code = node.stop()
        render.close()
    assert code == 1, node.log()
    expected = (
        "ERROR bci.nodes.runner: display: only 2 of 5 stimulus images arrived within "
        "ready_timeout_s = 1 s (first missing: face-0002)"
    )
    assert any(line.endswith(expected) for line in node.log().splitlines()), node.log()


def test_test_run_waits_for_the_decoding_model(tmp_path):
    config, ids, images = make_session(tmp_path)
    render = Publisher("tcp://127.0.0.1:0", name="render")
    node = NodeProcess(
        "display", config, tmp_path, topics=["events"], peers={"render": render.endpoint}
    )
    inlet = None
    try:
        assert node.wait_state("ready", 30.0), node.log()
        inlet = open_markers(config.acquire.marker_stream)
        node.send("start")
        assert render.wait_for_subscribers("images", timeout_ms=10_000)
        render.publish("images", [images], kind="stimuli", meta={"ids": ids})
        calibration = pull_markers(inlet, 2 * N_TRAIN + 2, timeout_s=20.0)
        assert [m["phase"] for m, _ in calibration] == ["train"] * (2 * N_TRAIN + 2)
        assert pull_markers(inlet, 1, timeout_s=1.0) == []  # held: no model yet
        render.publish("events", kind="model_ready", meta={"node": "decode"})
        test_run = pull_markers(inlet, 3, timeout_s=10.0)
        assert [m["event"] for m, _ in test_run] == ["run", "phase", "stimulus"]
        assert test_run[2][0]["phase"] == "test"
    finally:
        node.stop()
        render.close()


def _buffered_node(config, ids, images, pub) -> DisplayNode:
    node = DisplayNode(config, config.stimuli.path, pub)
    node.setup()
    node.start()
    for sid, image in zip(ids, images, strict=True):
        if sid in node.needed:
            node.surfaces[sid] = node.screen.prepare_stimulus(image)
    node.model_ready = True
    return node


def test_a_key_trigger_starts_the_run_and_is_marked(tmp_path):
    config, ids, images = make_session(tmp_path, trigger={"source": "key", "key": "5"})
    with Publisher(name="display") as pub, Subscriber(pub.endpoint, topics=["events"]) as sub:
        assert pub.wait_for_subscribers("events")
        node = _buffered_node(config, ids, images, pub)
        inlet = open_markers(config.acquire.marker_stream)
        try:
            node.tick()
            request = sub.recv(timeout_ms=2000)
            assert request.kind == "run_request"
            assert (request.meta["run"], request.meta["phase"]) == (0, "train")
            assert request.meta["volumes"] == node.plans[0].volumes
            for _ in range(3):
                node.tick()
            assert node.run_state == "trigger" and node.t0 is None  # waits for the scanner
            pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_4, unicode="4"))
            node.tick()
            assert node.run_state == "trigger"  # not the trigger key
            before = local_clock()
            pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_5, unicode="5"))
            node.tick()
            assert node.run_state == "running" and node.t0 >= before
            marks = pull_markers(inlet, 3, timeout_s=5.0)
            assert [m["event"] for m, _ in marks] == ["trigger", "run", "phase"]
            assert marks[0][1] == marks[1][1] == node.t0  # the run is stamped with its trigger
            assert marks[1][0] == {
                "event": "run",
                "run": 0,
                "phase": "train",
                "trials": N_TRAIN,
                "volumes": node.plans[0].volumes,
                "tr_s": 2.0,
            }
        finally:
            inlet.close_stream()
            node.teardown()


def test_a_run_without_its_trigger_stops_with_one_line(tmp_path):
    config, ids, images = make_session(tmp_path, trigger={"source": "key", "timeout_s": 0.2})
    with Publisher(name="display") as pub:
        node = _buffered_node(config, ids, images, pub)
        try:
            node.tick()
            time.sleep(0.3)
            with pytest.raises(NodeError) as err:
                node.tick()
        finally:
            node.teardown()
    assert str(err.value) == (
        "display: no scanner trigger (key '5') within [trigger] timeout_s = 0.2 s for run 1"
    )


def test_a_late_trigger_moves_the_schedule_on_and_is_named(tmp_path, caplog):
    # A bridge's trigger is stamped at the volume's acquisition and reaches the display the
    # export delay later; with a lead-in shorter than that, the first stimuli are already due.
    # They are not flipped back to back: the schedule moves on as a whole.
    name = f"triggers-{uuid.uuid4().hex[:8]}"
    outlet = StreamOutlet(StreamInfo(name, "Markers", 1, 0.0, "string", name))
    config, ids, images = make_session(
        tmp_path, trigger={"source": "lsl", "stream": name}, timing={"lead_in_s": 2.0}
    )
    caplog.set_level(logging.WARNING, logger="bci")
    with Publisher(name="display") as pub:
        node = _buffered_node(config, ids, images, pub)
        inlet = open_markers(config.acquire.marker_stream)
        try:
            node.tick()
            assert node.run_state == "trigger"
            time.sleep(0.5)
            # stamped 0.45 s ago: the lead-in (2 s / 20) and the first 2 trials (0.2 s each) due
            stamp = local_clock() - 0.45
            outlet.push_sample(["5"], stamp)
            deadline = time.monotonic() + 10.0
            while node.run_state in ("trigger", "running") and time.monotonic() < deadline:
                node.tick()
                time.sleep(0.002)
            marks = pull_markers(inlet, 2 + 2 * N_TRAIN, timeout_s=5.0)
        finally:
            inlet.close_stream()
            node.teardown()
    assert marks[0][0]["event"] == "run"
    assert marks[0][1] == pytest.approx(stamp, abs=1e-3)  # marked at its trigger
    onsets = [t for m, t in marks if m["event"] == "stimulus"]
    assert len(onsets) == N_TRAIN
    np.testing.assert_allclose(np.diff(onsets), TRIAL_S, atol=0.03)  # spaced, not a burst
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    late = [w for w in warnings if w.startswith("run 1: its trigger")]
    assert len(late) == 1, warnings
    words = late[0].split()
    delay, overdue = (float(words[i]) for i in (7, 13))
    assert 0.45 <= delay < 0.8
    assert overdue == pytest.approx(delay - 2.0 / TIME_SCALE, abs=0.011)
    assert onsets[0] - stamp == pytest.approx(2.0 / TIME_SCALE + overdue, abs=0.03)
    assert late[0] == (
        f"run 1: its trigger reached the display {delay:.2f} s after its time stamp, "
        f"{overdue:.2f} s after the first stimulus was due: the run's stimuli are shown that "
        "much later; make [timing] lead_in_s (2 s) longer than the trigger's delay"
    )
    assert node.counters["late_run_starts"] == 1
