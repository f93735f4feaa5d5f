"""simulate and acquire as real processes on real LSL (loopback); the test plays the display.

Every stream name carries a per-test id, so tests never see each other's streams; every node
process is stopped by the ``lab`` fixture, also when a test fails, before the test's outlets go.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest
from pylsl import local_clock

from bci.bus import Publisher
from bci.lsl.markers import encode_marker
from bci.lsl.streams import make_marker_outlet, make_outlet, participant_queries
from bci.nodes.acquire import TOLERANCE_TR
from bci.nodes.simulate import simulated_streams
from bci.session.config import validate_config
from bci.sim import SimulatedCohort
from bci.stimulus_set import load_stimulus_set
from tests.harness import NodeProcess

T = TypeVar("T")
STIMULI = Path(__file__).resolve().parents[1] / "stimuli" / "demo-faces"
META_KEYS = {
    "trial",
    "stimulus",
    "phase",
    "subject",
    "onset_lsl",
    "arrival_lsl",
    "n_volumes",
    "n_censored",
    "run",
    "rate_hz",
    "bad",
}
SCALE, TR, DELAY, WINDOW = 20.0, 2.0, 4.0, 4.0  # scanner seconds; one TR is 0.1 s of wall time


@pytest.fixture
def uid() -> str:
    return uuid.uuid4().hex[:8]


class Lab:
    """What a test starts: node processes and LSL outlets (the test's display and scanners)."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.nodes: list[NodeProcess] = []
        self.outlets: list[object] = []

    def start(
        self, name: str, config: dict, topics: list[str], peers: dict | None = None
    ) -> NodeProcess:
        node = NodeProcess(name, config, self.out / name, topics, peers=peers)
        self.nodes.append(node)
        return node

    def keep(self, outlet: T) -> T:
        self.outlets.append(outlet)
        return outlet

    def close(self) -> None:
        """Stop the nodes, the last started first, then withdraw the outlets they read."""
        for node in reversed(self.nodes):
            node.stop()
        for outlet in self.outlets:
            if isinstance(outlet, Publisher):
                outlet.close()
        self.outlets.clear()


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """The test's processes and streams; all stopped at the end, pass or fail."""
    lab = Lab(tmp_path)
    try:
        yield lab
    finally:
        lab.close()
        assert all(node.proc.poll() is not None for node in lab.nodes)


def session_config(uid: str, **tables: dict) -> dict:
    raw = {
        "stimuli": {"path": str(STIMULI)},
        "session": {"heartbeat_s": 0.1},
        "timing": {"time_scale": SCALE, "tr_s": TR, "stimulus_s": 2.0, "isi_s": 4.0},
        "acquire": {
            "marker_stream": f"test-markers-{uid}",
            "delay_s": DELAY,
            "window_s": WINDOW,
            "resolve_timeout_s": 10.0,
        },
    }
    for name, table in tables.items():
        raw[name] = {**raw.get(name, {}), **table}
    return validate_config(raw)


def wait_running(*procs: NodeProcess) -> None:
    for node in procs:
        assert node.wait_state("ready", 30.0), f"{node.name} not ready:\n{node.log()}"
    for node in procs:
        node.send("start")
    for node in procs:
        assert node.wait_state("running", 10.0), f"{node.name} did not start:\n{node.log()}"


def collect(node: NodeProcess, n: int, timeout_s: float) -> list:
    got = []
    deadline = time.monotonic() + timeout_s
    while len(got) < n and time.monotonic() < deadline:
        msg = node.recv(timeout_s=0.2, topic="responses")
        if msg is not None:
            got.append(msg)
    return got


def test_default_streams_of_a_session(uid):
    config = session_config(uid)
    assert [(q.name, q.type, q.subject) for q in participant_queries(config)] == [
        ("bci-sim-01", "fMRI", 0),
        ("bci-sim-02", "fMRI", 1),
    ]
    assert [s.source_id for s in simulated_streams(config)] == [
        "bci-sim-bci-sim-01",
        "bci-sim-bci-sim-02",
    ]


def test_simulate_to_acquire_one_response_per_trial_and_subject(uid, lab):
    n_voxels, snr, seed, n_trials = 256, 1.0, 7, 12
    config = session_config(
        uid,
        simulate={"enabled": True, "n_voxels": n_voxels, "snr": snr, "seed": seed},
        acquire={
            "streams": [
                {"name": f"sim-a-{uid}", "subject": 0},
                {"name": f"sim-b-{uid}", "subject": 1},
            ]
        },
        # The cut windows against the simulator's noise-free response: as acquired. (The
        # high-pass takes each volume's local level, the last trials' responses among it, so
        # its patterns are not the raw response; tools/bench_preprocess.py measures what it
        # does to decoding.)
        preprocess={"method": "none"},
    )
    markers = lab.keep(make_marker_outlet(config.acquire.marker_stream))
    display = lab.keep(Publisher(name="display"))  # the display asks for the scanner run
    sim = lab.start("simulate", config, [], peers={"display": display.endpoint})
    acq = lab.start("acquire", config, ["responses"])
    wait_running(sim, acq)
    assert markers.wait_for_consumers(5.0)
    assert display.wait_for_subscribers("events", timeout_ms=10_000)
    display.publish("events", kind="run_request", meta={"run": 0, "volumes": 400})

    stimuli = load_stimulus_set(STIMULI)
    order = np.random.default_rng(0).choice(len(stimuli), n_trials, replace=False)
    onsets = {}
    time.sleep(0.5)  # let a few volumes go by
    for k, index in enumerate(order):
        onsets[k] = local_clock()
        markers.push_sample([encode_marker("blank", trial=k)], onsets[k] - 0.05)
        text = encode_marker("stimulus", trial=k, stimulus=stimuli.ids[index], phase="train")
        markers.push_sample([text], onsets[k])
        time.sleep(6.0 / SCALE)  # a stimulus every 6 scanner seconds
    msgs = collect(acq, 2 * n_trials, timeout_s=15.0)
    assert len(msgs) == 2 * n_trials, acq.log()
    assert collect(acq, 1, timeout_s=0.5) == []  # and no more

    cohort = SimulatedCohort(2, n_voxels, stimuli.latent_dim, snr=snr, random_state=seed)
    truth = [cohort.signal(stimuli.latents[order], s) for s in range(2)]
    corr, latency, identified = [], [], 0
    assert {(m.meta["trial"], m.meta["subject"]) for m in msgs} == {
        (k, s) for k in range(n_trials) for s in range(2)
    }
    for msg in msgs:
        meta, k, s = msg.meta, msg.meta["trial"], msg.meta["subject"]
        assert msg.topic == "responses" and msg.kind == "response"
        assert set(meta) == META_KEYS
        assert meta["stimulus"] == stimuli.ids[order[k]] and meta["phase"] == "train"
        assert meta["bad"] is None and meta["n_volumes"] == 2
        assert meta["rate_hz"] == pytest.approx(SCALE / TR)  # the stream's nominal rate
        assert abs(meta["onset_lsl"] - onsets[k]) < 1e-3
        window_end = onsets[k] + (DELAY + WINDOW) / SCALE
        # regular stream: the window's last volume is within a TR (and the cutter's boundary
        # tolerance) of its end, and arrives after it
        assert meta["arrival_lsl"] >= window_end - (1 + TOLERANCE_TR) * TR / SCALE
        assert msg.lsl_time == meta["arrival_lsl"]
        [pattern] = msg.arrays
        assert pattern.dtype == np.float32 and pattern.shape == (n_voxels,)
        r = [np.corrcoef(pattern, truth[s][j])[0, 1] for j in range(n_trials)]
        corr.append(r[k])
        identified += int(np.argmax(r) == k)
        latency.append(meta["arrival_lsl"] - window_end)
    print(
        f"\ncut vs noise-free signal: r mean {np.mean(corr):.3f} min {np.min(corr):.3f} "
        f"(chance sd {1 / np.sqrt(n_voxels):.3f}); identified {identified}/{len(msgs)}; "
        f"arrival - window end: median {1e3 * np.median(latency):.1f} ms "
        f"max {1e3 * np.max(latency):.1f} ms"
    )
    assert np.mean(corr) > 0.5  # sqrt(snr / (1 + snr)) = 0.71 without the neighbours' overlap
    assert np.min(corr) > 6 / np.sqrt(n_voxels)  # six chance standard deviations
    assert identified >= len(msgs) - 2


def test_stream_that_never_appears_exits_1_with_one_line(uid, lab):
    config = session_config(
        uid,
        simulate={"enabled": False},
        acquire={"resolve_timeout_s": 1.0, "streams": [{"name": f"ghost-{uid}", "subject": 0}]},
    )
    acq = lab.start("acquire", config, ["responses"])
    assert acq.proc.wait(30.0) == 1
    expected = f"no LSL stream with name='ghost-{uid}' type='fMRI' appeared within 1.0 s"
    errors = [line for line in acq.log().splitlines() if " ERROR " in line]
    assert errors == [errors[0]] and errors[0].endswith(f"ERROR bci.nodes.runner: {expected}")
    assert "Traceback" not in acq.log()


class FakeScanner:
    """Test-owned participant outlets that replay volumes in real time, with the markers."""

    def __init__(self, config: dict, channels: dict[str, int]) -> None:
        rate = SCALE / TR
        self.outlets = {
            name: make_outlet(name, "fMRI", n, rate, f"src-{name}") for name, n in channels.items()
        }
        self.markers = make_marker_outlet(config.acquire.marker_stream)

    def wait_for_consumers(self, names: list[str]) -> None:
        for outlet in [*(self.outlets[n] for n in names), self.markers]:
            assert outlet.wait_for_consumers(5.0)

    def play(
        self,
        volumes: dict[str, np.ndarray],
        onsets: list[float],
        t0: float,
        skip_nan: bool = False,
    ) -> None:
        """Push volume ``v`` at ``t0 + v * period`` and marker ``k`` at ``t0 + onsets[k]``;
        with ``skip_nan``, a stream pushes nothing for an all-NaN volume (it has stopped)."""
        period = TR / SCALE
        n = len(next(iter(volumes.values())))
        events = [(t0 + v * period, "volume", v) for v in range(n)]
        events += [(t0 + onset, "marker", k) for k, onset in enumerate(onsets)]
        for t, kind, i in sorted(events):
            time.sleep(max(0.0, t - local_clock()))
            if kind == "volume":
                for name, outlet in self.outlets.items():
                    if not (skip_nan and np.isnan(volumes[name][i]).all()):
                        outlet.push_sample(volumes[name][i], t)
            else:
                text = encode_marker("stimulus", trial=i, stimulus=f"face-{i:04d}", phase="test")
                self.markers.push_sample([text], t)


def test_nan_trial_is_published_bad_and_the_next_trial_is_good(uid, lab):
    name = f"nan-{uid}"
    config = session_config(  # preprocessing off: the volumes as they came (it would censor)
        uid,
        simulate={"enabled": False},
        acquire={"streams": [{"name": name, "subject": 0}]},
        preprocess={"method": "none"},
    )
    scanner = lab.keep(FakeScanner(config, {name: 16}))
    acq = lab.start("acquire", config, ["responses"])
    wait_running(acq)
    scanner.wait_for_consumers([name])
    data = np.random.default_rng(1).standard_normal((36, 16)).astype(np.float32)
    data[8, [1, 5, 9]] = np.nan  # volume 8 lies in trial 0's window only
    onsets = [0.55, 1.55, 2.55]  # windows: volumes 8-9, 18-19, 28-29
    scanner.play({name: data}, onsets, local_clock() + 0.05)
    msgs = collect(acq, 3, timeout_s=10.0)
    assert [m.meta["trial"] for m in msgs] == [0, 1, 2], acq.log()
    bad, *good = msgs
    assert bad.meta["bad"] == "NaN in 3 of 16 voxels" and bad.meta["n_volumes"] == 2
    assert not bad.arrays[0].any()
    for msg, first in zip(good, [18, 28], strict=True):
        assert msg.meta["bad"] is None and msg.meta["n_volumes"] == 2
        np.testing.assert_allclose(msg.arrays[0], data[first : first + 2].mean(0), rtol=1e-5)
    warnings = [line for line in acq.log().splitlines() if " WARNING " in line]
    assert len(warnings) == 1 and "subject 0, trial 0 is bad (NaN in 3 of 16 voxels)" in warnings[0]


def test_wrong_channel_count_participant_is_left_out(uid, lab):
    names = [f"ok-a-{uid}", f"ok-b-{uid}", f"narrow-{uid}"]
    streams = [{"name": n, "subject": s, "channels": 16} for s, n in enumerate(names)]
    config = foreign_streams_config(uid, streams)
    scanner = lab.keep(FakeScanner(config, dict(zip(names, [16, 16, 12], strict=True))))
    acq = lab.start("acquire", config, ["responses"])
    wait_running(acq)
    expected = (
        f"ERROR bci.nodes.acquire: stream name='{names[2]}' type='fMRI' has 12 channels, "
        "expected 16; subject 2 is left out"
    )
    assert expected in acq.log()
    scanner.wait_for_consumers(names[:2])
    rng = np.random.default_rng(2)
    volumes = {n: rng.standard_normal((25, 16)).astype(np.float32) for n in names}
    volumes[names[2]] = volumes[names[2]][:, :12]
    scanner.play(volumes, [0.55, 1.55], local_clock() + 0.05)
    msgs = collect(acq, 4, timeout_s=10.0)
    assert sorted((m.meta["trial"], m.meta["subject"]) for m in msgs) == [
        (0, 0),
        (0, 1),
        (1, 0),
        (1, 1),
    ], acq.log()
    assert all(m.meta["bad"] is None for m in msgs)
    assert collect(acq, 1, timeout_s=0.5) == []
    assert acq.proc.poll() is None  # still running


# -- bad streams: the channel count from the config, a stream that stops, stamps out of order --
def _counters(node, key: str, want: int, timeout_s: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout_s
    counters: dict = {}
    while counters.get(key, 0) < want and time.monotonic() < deadline:
        msg = node.sub.recv(timeout_ms=100)
        if msg is not None and msg.topic == "heartbeat.acquire":
            counters = msg.meta["counters"]
    return counters


def foreign_streams_config(uid: str, streams: list[dict]) -> dict:
    """A config whose participants are ``streams`` (no simulator), preprocessing off: the
    tests of these streams check the raw volumes' means."""
    return session_config(
        uid,
        simulate={"enabled": False},
        acquire={"streams": streams},
        preprocess={"method": "none"},
    )


def test_channel_count_comes_from_the_config_not_from_the_first_stream(uid, lab):
    # the narrow stream comes first: a vote among two streams took its 12 channels as the norm
    # and left the 16-channel stream out
    names = [f"narrow-{uid}", f"wide-{uid}"]
    streams = [{"name": n, "subject": s, "channels": 16} for s, n in enumerate(names)]
    config = foreign_streams_config(uid, streams)
    scanner = lab.keep(FakeScanner(config, dict(zip(names, [12, 16], strict=True))))
    acq = lab.start("acquire", config, ["responses", "events"])
    assert acq.wait_state("ready", 30.0), acq.log()
    expected = (
        f"ERROR bci.nodes.acquire: stream name='{names[0]}' type='fMRI' has 12 channels, "
        "expected 16; subject 0 is left out"
    )
    assert expected in acq.log()
    acq.send("start")
    event = acq.recv(timeout_s=5.0, topic="events")  # decode learns who is in
    assert event is not None and event.kind == "participants" and event.meta["subjects"] == [1]
    scanner.wait_for_consumers(names[1:])
    rng = np.random.default_rng(2)
    volumes = {names[0]: np.zeros((15, 12), np.float32), names[1]: rng.standard_normal((15, 16))}
    scanner.play(volumes, [0.55], local_clock() + 0.05)
    msgs = collect(acq, 1, timeout_s=10.0)
    assert [(m.meta["trial"], m.meta["subject"], m.meta["bad"]) for m in msgs] == [(0, 1, None)]
    np.testing.assert_allclose(msgs[0].arrays[0], volumes[names[1]][8:10].mean(0), rtol=1e-5)
    assert acq.proc.poll() is None


def _acquire_two_streams(uid: str, lab, names: list[str]) -> tuple[FakeScanner, NodeProcess]:
    """Acquire reading two test-owned 16-channel streams (subjects 0 and 1), both connected."""
    streams = [{"name": n, "subject": s, "channels": 16} for s, n in enumerate(names)]
    config = foreign_streams_config(uid, streams)
    scanner = lab.keep(FakeScanner(config, dict.fromkeys(names, 16)))
    acq = lab.start("acquire", config, ["responses"])
    wait_running(acq)
    scanner.wait_for_consumers(names)
    return scanner, acq


def test_a_stream_that_stops_is_given_up_within_two_trs(uid, lab):
    names = [f"goes-{uid}", f"stops-{uid}"]
    scanner, acq = _acquire_two_streams(uid, lab, names)
    rng = np.random.default_rng(3)
    volumes = {n: rng.standard_normal((36, 16)).astype(np.float32) for n in names}
    volumes[names[1]][13:] = np.nan  # a NaN row is not pushed: the stream stops after volume 12
    scanner.play(volumes, [0.55, 1.55, 2.55], local_clock() + 0.05, skip_nan=True)
    msgs = collect(acq, 6, timeout_s=10.0)
    order = [(m.meta["trial"], m.meta["subject"], m.meta["bad"]) for m in msgs]
    # trial 1's window ends at volume 19.5; the stop is noticed 2 TRs later (volume 21.5), long
    # before trial 2's window (volume 29.5) completes for the stream that goes on (before, a
    # window was given up resolve_timeout_s = 10 s after its end)
    assert order == [
        (0, 0, None),
        (0, 1, None),
        (1, 0, None),
        (1, 1, "stream stopped"),
        (2, 0, None),
        (2, 1, "stream stopped"),
    ], acq.log()
    warning = (
        f"WARNING bci.nodes.acquire: stream name='{names[1]}' type='fMRI' stopped: no volume "
        "for 2 TRs of scanner time; subject 1's trials are given up until it sends again"
    )
    assert acq.log().count(warning) == 1, acq.log()
    assert _counters(acq, "stream_stops", 1).get("stream_stops") == 1


def test_a_stream_behind_the_others_but_still_sending_is_not_given_up(uid, lab):
    """A replay at --speed 0 pushes one stream's whole run before another's first volumes come:
    the late one is many TRs behind on scanner time but still sending, and was given up as
    stopped (139 of 144 trials of a replayed demo)."""
    names = [f"ahead-{uid}", f"late-{uid}"]
    scanner, acq = _acquire_two_streams(uid, lab, names)
    rng = np.random.default_rng(4)
    volumes = {n: rng.standard_normal((36, 16)).astype(np.float32) for n in names}
    period, t0 = TR / SCALE, local_clock() + 0.05
    for v in range(36):  # the first stream: everything at once, stamped as scanned
        scanner.outlets[names[0]].push_sample(volumes[names[0]][v], t0 + v * period)
    for k, onset in enumerate([0.55, 1.55, 2.55]):
        text = encode_marker("stimulus", trial=k, stimulus=f"face-{k:04d}", phase="test")
        scanner.markers.push_sample([text], t0 + onset)
    for v in range(36):  # the second: one volume per TR
        time.sleep(max(0.0, t0 + v * period - local_clock()))
        scanner.outlets[names[1]].push_sample(volumes[names[1]][v], t0 + v * period)
    msgs = collect(acq, 6, timeout_s=10.0)
    assert sorted((m.meta["trial"], m.meta["subject"], m.meta["bad"]) for m in msgs) == [
        (k, s, None) for k in range(3) for s in range(2)
    ], acq.log()
    assert "stopped" not in acq.log()


def test_out_of_order_stamps_are_counted_and_warned_about_once(uid, lab):
    name = f"jumbled-{uid}"
    streams = [{"name": name, "subject": 0, "channels": 16}]
    config = foreign_streams_config(uid, streams)
    scanner = lab.keep(FakeScanner(config, {name: 16}))
    acq = lab.start("acquire", config, ["responses"])
    wait_running(acq)
    scanner.wait_for_consumers([name])
    data = np.random.default_rng(4).standard_normal((25, 16)).astype(np.float32)
    period = TR / SCALE
    t0 = local_clock() + 0.05
    stamps = t0 + period * np.arange(25)
    # volumes 14 and 15 and 18 and 19 (after trial 0's window, 8-9) come in swapped order
    order = list(range(25))
    order[14], order[15], order[18], order[19] = 15, 14, 19, 18
    text = encode_marker("stimulus", trial=0, stimulus="face-0000", phase="test")
    # markers that killed acquire (int(inf); a trial or a run's volumes msgpack cannot send)
    for hostile in (
        '{"event":"stimulus","trial":Infinity,"stimulus":"s","phase":"test"}',
        f'{{"event":"stimulus","trial":{10**30},"stimulus":"s","phase":"test"}}',
        f'{{"event":"run","run":0,"phase":"test","volumes":{10**30},"tr_s":2.0}}',
    ):
        scanner.markers.push_sample([hostile], t0 + 0.3)
    scanner.markers.push_sample([text], t0 + 0.55)
    outlet = scanner.outlets[name]
    for k, v in enumerate(order):
        time.sleep(max(0.0, stamps[k] - local_clock()))
        outlet.push_sample(data[v], stamps[v])
    msgs = collect(acq, 1, timeout_s=10.0)
    assert [m.meta["bad"] for m in msgs] == [None], acq.log()
    np.testing.assert_allclose(msgs[0].arrays[0], data[8:10].mean(0), rtol=1e-5)
    counters = _counters(acq, "out_of_order_stamps", 2)
    assert counters.get("out_of_order_stamps") == 2, acq.log()
    assert counters.get("foreign_markers") == 3 and counters.get("markers") == 1, counters
    warnings = [line for line in acq.log().splitlines() if "out of order" in line]
    assert len(warnings) == 1, acq.log()
    assert f"stream name='{name}' type='fMRI': time stamps out of order (1 so far" in warnings[0]


def test_the_last_volumes_trigger_is_counted_when_it_comes_after_the_stop(uid, lab):
    """A trigger that reaches acquire just after its volume (a trigger-box app on another
    machine, a replay) was missed by the last tick: the summary said "125/125 of 124
    expected"."""
    name, trigger = f"vol-{uid}", f"trig-{uid}"
    config = session_config(
        uid,
        simulate={"enabled": False},
        acquire={"streams": [{"name": name, "subject": 0, "channels": 16}]},
        preprocess={"method": "none"},
        trigger={"source": "lsl", "stream": trigger},
    )
    scanner = lab.keep(FakeScanner(config, {name: 16}))
    triggers = lab.keep(make_marker_outlet(trigger))
    acq = lab.start("acquire", config, ["responses"])
    wait_running(acq)
    scanner.wait_for_consumers([name])
    assert triggers.wait_for_consumers(5.0)
    period, t0 = TR / SCALE, local_clock()
    volumes = np.random.default_rng(5).standard_normal((10, 16)).astype(np.float32)
    for v in range(10):
        t = t0 + v * period
        scanner.outlets[name].push_sample(volumes[v], t)
        if v < 9:
            triggers.push_sample([encode_marker("trigger", run=0, volume=v)], t)
    assert _counters(acq, "volumes", 10).get("volumes") == 10, acq.log()
    acq.send("stop")  # acquire has the tenth volume; its trigger comes only now
    triggers.push_sample([encode_marker("trigger", run=0, volume=9)], t0 + 9 * period)
    last = None
    deadline = time.monotonic() + 10.0
    while acq.proc.poll() is None or last is None or last.meta["state"] != "stopped":
        msg = acq.sub.recv(timeout_ms=100)
        if msg is not None and msg.topic == "heartbeat.acquire":
            last = msg
        assert time.monotonic() < deadline, acq.log()
    assert acq.proc.wait(5.0) == 0
    (run,) = last.meta["runs"]
    assert (run["triggers"], run["volumes_expected"], run["volumes_received"]) == (
        10,
        10,
        {"0": 10},
    ), acq.log()
