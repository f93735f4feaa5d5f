"""A hostile bus: messages built to kill, topics built to escape, floods, strangers.

The decoder is fuzzed with Hypothesis (frames of every shape a peer could send), then a real node
process is fuzzed the same way over a real socket: it must count and skip, and go on working.
"""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zmq
from harness import NodeProcess
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bci.bus import Message, Publisher, Subscriber
from bci.bus.log import BusLogWriter, blob_name, read_bus_log
from bci.bus.message import REJECT_REASONS, SCHEMA_VERSION, BusMessageError, decode, encode
from bci.bus.publisher import MAX_SUBSCRIPTION_PREFIXES
from bci.bus.subscriber import MAX_COUNTED_TOPICS
from bci.bus.topics import check_topic
from bci.nodes.decode import DecodeNode
from bci.nodes.runner import has_needed_meta
from bci.session.config import validate_config
from bci.session.endpoints import session_endpoints

REPO = Path(__file__).resolve().parents[1]
FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)


def _header(**fields) -> bytes:
    header = {
        "kind": "data",
        "v": SCHEMA_VERSION,
        "seq": 0,
        "lsl_time": None,
        "wall_time": 1.0,
        "arrays": [],
        "meta": {},
    }
    header.update(fields)
    return msgpack.packb(header, use_bin_type=True)


KILLER = [b"control", _header(arrays=[{"dtype": "<f4", "shape": [0, 2**62]}]), b""]
"""The message of the issue: a shape with no element but no room either, and an empty frame."""


def test_the_message_that_killed_every_node_is_rejected() -> None:
    with pytest.raises(BusMessageError) as err:
        decode(KILLER)
    assert err.value.reason == "too_many_elements"
    assert "arrays[0] shape [0, 4611686018427387904] would need more than" in str(err.value)


@pytest.mark.parametrize(
    "meta", [{b"trial": 1}, {"runs": [{"a": {b"k": 1}}]}, {"x": [[[{b"": None}]]]}]
)
def test_meta_with_a_bytes_key_at_any_depth_is_rejected(meta) -> None:
    # msgpack's strict_map_key lets bytes keys through; the record node's bus log (JSON) could
    # not write them, and it died
    with pytest.raises(BusMessageError) as err:
        decode([b"events", msgpack.packb({**msgpack.unpackb(_header()), "meta": meta})])
    assert err.value.reason == "bad_field" and "meta has a bytes key" in str(err.value)
    assert decode([b"events", _header(meta={"runs": [{"a": {"k": [1, {"b": 2}]}}]})]).meta


@pytest.mark.parametrize(
    "topic", [b"../../x", b"a/b", b"a\x00b", b".hidden", b"x" * 65, b"", "żółw".encode()]
)
def test_topics_outside_the_charset_are_rejected(topic: bytes) -> None:
    with pytest.raises(BusMessageError) as err:
        decode([topic, _header()])
    assert err.value.reason == "bad_topic"


def test_publisher_refuses_a_bad_topic() -> None:
    with Publisher("inproc://hostile-topic", name="t", watch_subscriptions=False) as pub:
        with pytest.raises(ValueError, match=r"topic '\.\./x' is not valid: 1 to 64 characters"):
            pub.publish("../x")
    assert check_topic("heartbeat.render") == "heartbeat.render"


# -- frames a peer could send ----------------------------------------------------------------
_DTYPE_STRS = st.sampled_from(["<f4", "<f8", "|u1", "<i8", "|b1", "<c16", "<U3", "|O", "|V8", "x"])
_DIM = st.one_of(st.integers(0, 8), st.integers(0, 2**64 - 1), st.just(2**62), st.just(-1))
_SPEC = st.fixed_dictionaries(
    {"dtype": _DTYPE_STRS, "shape": st.lists(_DIM, max_size=5)},
    optional={"extra": st.integers()},
)
_VALUE = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(), st.text(max_size=8)
)
_HEADER = st.fixed_dictionaries(
    {
        "kind": st.one_of(st.text(max_size=80), _VALUE),
        "v": st.one_of(st.just(SCHEMA_VERSION), _VALUE),
        "seq": st.one_of(st.integers(0, 2**64 - 1), _VALUE),
        "lsl_time": st.one_of(st.floats(), _VALUE),
        "wall_time": st.one_of(st.floats(), _VALUE),
        "arrays": st.one_of(st.lists(st.one_of(_SPEC, _VALUE), max_size=3), _VALUE),
        "meta": st.one_of(
            st.dictionaries(
                st.one_of(st.text(max_size=5), st.binary(max_size=3)), _VALUE, max_size=4
            ),
            _VALUE,
        ),
    },
    optional={"src": st.one_of(st.text(max_size=10), _VALUE)},
)
_TOPIC = st.one_of(
    st.sampled_from([b"control", b"responses", b"latents", b"events", b"../../x", b"a\x00"]),
    st.binary(max_size=70),
)


@st.composite
def hostile_frames(draw: st.DrawFn) -> list[bytes]:
    """A multipart message: a topic, a header (well-formed or not), frames that fit or not."""
    topic = draw(_TOPIC)
    if draw(st.booleans()):
        header = draw(_HEADER)
        try:
            packed = msgpack.packb(header, use_bin_type=True)
        except (OverflowError, TypeError, ValueError):
            packed = b"\x92"
        specs = header["arrays"] if isinstance(header["arrays"], list) else []
        frames = []
        for spec in specs:
            size = 0
            if isinstance(spec, dict):
                dims = [d for d in spec.get("shape", []) if isinstance(d, int) and 0 <= d < 64]
                size = int(np.prod(dims)) * 4
            frames.append(bytes(draw(st.sampled_from([size, 0, 1, size + 1])) % 4096))
        if draw(st.booleans()):
            frames = frames[: draw(st.integers(0, len(frames)))]
    else:
        packed = draw(st.binary(max_size=64))
        frames = draw(st.lists(st.binary(max_size=16), max_size=3))
    return [topic, packed, *frames]


@FUZZ
@given(frames=hostile_frames())
def test_decode_returns_a_consistent_message_or_raises_bus_message_error(frames) -> None:
    try:
        msg = decode(frames)
    except BusMessageError as err:
        assert err.reason in REJECT_REASONS and err.reason != "decode_error"
        return
    check_topic(msg.topic)
    assert len(msg.arrays) == len(frames) - 2
    for array, frame in zip(msg.arrays, frames[2:], strict=True):
        assert array.nbytes == len(frame) and not array.flags.writeable


@FUZZ
@given(st.lists(st.binary(max_size=40), min_size=0, max_size=4))
def test_decode_of_raw_bytes_never_raises_anything_else(frames) -> None:
    try:
        decode(frames)
    except BusMessageError:
        pass


# -- a running node under attack ---------------------------------------------------------------
@pytest.fixture(scope="module")
def attacked_record(tmp_path_factory):
    """A real record node (bus log only) that connects to an attacker's raw PUB socket."""
    out = tmp_path_factory.mktemp("record")
    config = validate_config(
        {
            "session": {"heartbeat_s": 0.05},
            "stimuli": {"path": str(REPO / "stimuli" / "demo-faces")},
            "record": {"xdf": False},
        }
    )
    ctx = zmq.Context.instance()
    attacker = ctx.socket(zmq.XPUB)  # XPUB: the test sees when the node has subscribed
    attacker.setsockopt(zmq.LINGER, 0)
    attacker.bind(f"ipc://{out}/attacker")
    node = NodeProcess(
        "record", config, out, topics=[], peers={"attacker": f"ipc://{out}/attacker"}
    )
    assert node.wait_state("ready", 30.0), node.log()
    assert attacker.poll(10_000), "the node never subscribed to the attacker"
    attacker.recv()
    node.send("start")
    yield node, attacker, out
    attacker.close()
    assert node.stop() == 0, node.log()


def _record_beat(node: NodeProcess, timeout_s: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        msg = node.sub.recv(timeout_ms=100)
        if msg is not None and msg.topic == "heartbeat.record":
            return msg.meta
        assert node.proc.poll() is None, node.log()
    raise AssertionError("no heartbeat from the record node")


def _probe(node: NodeProcess, attacker: zmq.Socket, n: int) -> dict:
    """Send a valid ``events`` message and wait until the node's heartbeat counts ``n`` of them."""
    attacker.send_multipart(encode(Message("events", "probe", seq=n - 1, source="attacker")))
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        beat = _record_beat(node)
        if beat["bus"]["received"]["received"].get("events", 0) >= n:
            return beat
    raise AssertionError(f"the node did not take probe {n}:\n{node.log()}")


_probes = [0]


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
@given(batch=st.lists(hostile_frames(), min_size=1, max_size=20))
def test_a_running_node_counts_and_skips_whatever_arrives(attacked_record, batch) -> None:
    node, attacker, _ = attacked_record
    for frames in [KILLER, *batch]:
        attacker.send_multipart(frames)
    _probes[0] += 1
    beat = _probe(node, attacker, _probes[0])
    assert beat["bus"]["received"]["rejected"].get("too_many_elements", 0) >= _probes[0]
    assert beat["bus"]["received"]["rejected"].get("decode_error", 0) == 0


def test_record_keeps_topics_inside_its_folder_and_its_heartbeat_bounded(attacked_record) -> None:
    node, attacker, out = attacked_record
    # The probe topic takes its counted slot before the flood fills the others (run alone, the
    # flood came first and the probes were only counted as other topics).
    _probes[0] += 1
    _probe(node, attacker, _probes[0])
    arrays = [np.ones(3, np.float32)]
    for k in range(3 * MAX_COUNTED_TOPICS):
        attacker.send_multipart(encode(Message(f"fake{k}", arrays=arrays, source="attacker")))
    # Topics that would have been paths are rejected before anything is built from them.
    escape = encode(Message("events", arrays=arrays, source="attacker"))
    for bad in (b"../../escaped", b"sub/dir", b"nul\x00byte"):
        attacker.send_multipart([bad, *escape[1:]])
    # a bytes key in meta: its bus log line could not be written, and the node died
    attacker.send_multipart([b"events", _header(meta={b"trial": 1})])
    _probes[0] += 1
    beat = _probe(node, attacker, _probes[0])
    received = beat["bus"]["received"]
    assert received["rejected"]["bad_field"] >= 1
    assert len(received["received"]) <= MAX_COUNTED_TOPICS
    assert received["other_topics"] > 0
    assert received["rejected"]["bad_topic"] >= 3
    assert len(json.dumps(beat)) < 64 * 1024
    node.stop()
    files = sorted(p.name for p in (out / "bus").iterdir())
    assert files == ["events.bin", "messages.jsonl", "other.bin"] or files == [
        "messages.jsonl",
        "other.bin",
    ], files
    assert not list(out.parent.glob("escaped*")) and not (out / "sub").exists()
    logged = read_bus_log(out / "bus")
    fakes = [m for m in logged if m.topic.startswith("fake")]
    assert len(fakes) == 3 * MAX_COUNTED_TOPICS
    assert all(np.array_equal(m.arrays[0], arrays[0]) for m in fakes)


def test_blob_names_never_leave_the_folder(tmp_path) -> None:
    assert blob_name("latents") == "latents.bin"
    assert blob_name("../../x") == blob_name("a/b") == blob_name("x\x00") == "other.bin"
    writer = BusLogWriter(tmp_path / "bus")
    writer.write(Message("../../x", arrays=[np.arange(3)]))
    writer.close()
    assert sorted(p.name for p in (tmp_path / "bus").iterdir()) == ["messages.jsonl", "other.bin"]
    assert np.array_equal(read_bus_log(tmp_path / "bus")[0].arrays[0], np.arange(3))


# -- strangers -----------------------------------------------------------------------------------
def test_session_sockets_live_in_a_private_directory() -> None:
    bus = session_endpoints(["supervisor", "acquire"])
    try:
        assert stat.S_IMODE(bus.directory.stat().st_mode) == 0o700
        assert bus.endpoints == {
            "supervisor": f"ipc://{bus.directory}/supervisor",
            "acquire": f"ipc://{bus.directory}/acquire",
        }
    finally:
        bus.remove()
    assert not bus.directory.exists()
    # A bus facing the network keeps the nodes of this machine on ipc:// (remote nodes come in
    # through the supervisor's CURVE relays, bci.session.remote).
    bus = session_endpoints(["supervisor"], "10.0.0.1")
    try:
        assert bus.endpoints == {"supervisor": f"ipc://{bus.directory}/supervisor"}
    finally:
        bus.remove()


def test_a_node_takes_control_only_from_the_supervisor(tmp_path) -> None:
    config = validate_config(
        {
            "session": {"heartbeat_s": 0.05},
            "stimuli": {"path": str(REPO / "stimuli" / "demo-faces")},
            "record": {"xdf": False},
        }
    )
    stranger = Publisher(f"ipc://{tmp_path}/stranger", name="supervisor")
    node = NodeProcess("record", config, tmp_path, topics=[], peers={"x": stranger.endpoint})
    try:
        assert node.wait_state("ready", 30.0), node.log()
        # The node subscribes to everything on the stranger's socket (record listens to all).
        assert stranger.wait_for_subscribers("control", timeout_ms=10_000)
        for _ in range(20):
            stranger.publish("control", kind="control", meta={"command": "stop"})
            stranger.publish("control", kind="control", meta={"command": "start"})
        time.sleep(0.5)
        assert node.proc.poll() is None, node.log()
        assert node.wait_state("ready", 5.0)  # not started by the stranger either
        node.send("start")
        assert node.wait_state("running", 5.0)
    finally:
        code = node.stop()
        stranger.close()
    assert code == 0, node.log()


def test_a_subscription_flood_costs_bounded_memory() -> None:
    ctx = zmq.Context.instance()
    with Publisher("inproc://flood", name="render") as pub:
        flood = ctx.socket(zmq.XSUB)
        flood.setsockopt(zmq.LINGER, 0)
        flood.connect("inproc://flood")
        flood.setsockopt(zmq.SNDHWM, 0)
        for k in range(20_000):
            flood.send(b"\x01flood-%d" % k)
            if k % 200 == 0:
                pub.read_subscriptions()  # what the node runner does on every loop
        deadline = time.monotonic() + 10
        while pub.ignored_subscriptions < 20_000 - MAX_SUBSCRIPTION_PREFIXES:
            pub.read_subscriptions()
            assert time.monotonic() < deadline, pub.ignored_subscriptions
        assert len(pub.subscriptions) == MAX_SUBSCRIPTION_PREFIXES
        flood.close()
    with Publisher("inproc://flood-pub", name="acquire", watch_subscriptions=False) as pub:
        assert pub.socket.type == zmq.PUB
        pub.read_subscriptions()  # nothing to read: a PUB keeps no notifications


# -- meta fields a node needs --------------------------------------------------------------------
def test_decode_skips_responses_without_the_fields_it_needs(tmp_path) -> None:
    stimuli = {"path": str(REPO / "stimuli" / "demo-faces")}
    config = validate_config({"session": {"heartbeat_s": 0.05}, "stimuli": stimuli})
    peer = Publisher(f"ipc://{tmp_path}/acq", name="acquire")
    node = NodeProcess("decode", config, tmp_path, topics=[], peers={"acq": peer.endpoint})
    try:
        assert node.wait_state("ready", 60.0), node.log()
        node.send("start")
        assert peer.wait_for_subscribers("responses", timeout_ms=10_000)
        pattern = [np.zeros(8, np.float32)]
        for meta in (
            {"subject": 0, "stimulus": "s0", "phase": "train"},  # no trial
            {"trial": "one", "subject": 0, "stimulus": "s0", "phase": "train"},
            {"trial": 1, "subject": 0, "phase": "test"},  # no stimulus
        ):
            peer.publish("responses", pattern, kind="response", meta=meta)
        deadline = time.monotonic() + 10
        counters: dict = {}
        while counters.get("skipped_responses", 0) < 3 and time.monotonic() < deadline:
            msg = node.sub.recv(timeout_ms=100)
            if msg is not None and msg.topic == "heartbeat.decode":
                counters = msg.meta["counters"]
            assert node.proc.poll() is None, node.log()
        assert counters.get("skipped_responses") == 3, (counters, node.log())
        assert "skipped a 'responses' message whose meta field 'trial' is None" in node.log()
    finally:
        code = node.stop()
        peer.close()
    assert code == 0, node.log()


def test_has_needed_meta_checks_types() -> None:
    node = DecodeNode.__new__(DecodeNode)
    node.counters = {}
    ok = Message("responses", meta={"trial": 1, "subject": 0, "stimulus": "s1"})
    assert has_needed_meta(node, ok)
    assert not has_needed_meta(node, Message("responses", meta={"trial": True, "subject": 0}))
    assert node.counters == {"skipped_responses": 1}


def test_subscriber_survives_an_error_decode_did_not_foresee(monkeypatch) -> None:
    import bci.bus.subscriber as subscriber

    def broken(*_a, **_k):
        raise IndexError("an unforeseen bug")

    with Publisher("inproc://bug", name="t") as pub, Subscriber("inproc://bug", ["events"]) as sub:
        assert pub.wait_for_subscribers("events")
        monkeypatch.setattr(subscriber, "decode", broken)
        pub.publish("events")
        assert sub.recv(timeout_ms=200) is None
        assert sub.stats.rejected == {"decode_error": 1}


def test_render_skips_a_bad_latent_and_renders_the_rest_of_its_batch(tmp_path) -> None:
    from bci.nodes.render import RenderNode

    stimuli = {"path": str(REPO / "stimuli" / "demo-faces")}
    config = validate_config({"stimuli": stimuli, "generator": {"device": "cpu"}})
    with (
        Publisher("inproc://render-batch", name="render") as pub,
        Subscriber("inproc://render-batch", ["images.display"]) as sub,
    ):
        node = RenderNode(config, tmp_path, pub)
        node.setup()
        assert pub.wait_for_subscribers("images.display")
        dim = node.stimuli.latent_dim
        for trial, latent in enumerate(
            [np.zeros(dim, np.float32), np.zeros(dim + 1, np.float32), np.ones(dim, np.float32)]
        ):
            node.handle(Message("latents", "latent", arrays=[latent], meta={"trial": trial}))
        node.tick()  # one batch of three; the second cannot be rendered (a whole batch was lost)
        assert node.counters["bad_latents"] == 1 and node.counters["rendered"] == 2
        time.sleep(0.2)
        newest = sub.recv(timeout_ms=2000)  # images.display is LATEST: the newest frame only
        assert newest is not None and newest.meta["trial"] == 2
        assert sub.stats.received["images.display"] == 2  # trials 0 and 2 were sent
