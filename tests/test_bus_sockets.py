"""The bus on real sockets: loopback TCP, inproc, and a publisher in a separate process."""

from __future__ import annotations

import logging
import multiprocessing as mp
import time

import msgpack
import numpy as np
import pytest
import zmq

from bci.bus import (
    BusConfigError,
    CurveKeys,
    Message,
    Publisher,
    Subscriber,
    encode,
)
from bci.bus.security import is_local_endpoint

SPAWN = mp.get_context("spawn")


@pytest.fixture
def pub() -> Publisher:
    publisher = Publisher(name="test")
    yield publisher
    publisher.close(linger_ms=0)


@pytest.fixture
def raw_xpub() -> zmq.Socket:
    """A bare XPUB socket, to put arbitrary frames on the wire."""
    sock = zmq.Context.instance().socket(zmq.XPUB)
    sock.linger = 0
    sock.bind("tcp://127.0.0.1:*")
    yield sock
    sock.close()


def _wait_raw_subscription(sock: zmq.Socket) -> None:
    assert sock.poll(5000), "subscription did not arrive"
    assert sock.recv()[0] == 1


# ---------------------------------------------------------------- basics


def test_random_port_roundtrip(pub: Publisher) -> None:
    assert pub.endpoint.startswith("tcp://127.0.0.1:") and not pub.endpoint.endswith(":0")
    with Subscriber(pub.endpoint, ["responses"]) as sub:
        assert pub.wait_for_subscribers("responses", timeout_ms=5000)
        x = np.arange(12, dtype=np.float32).reshape(3, 4)
        assert pub.publish("responses", [x], kind="response", meta={"trial": 1}, lsl_time=2.5)
        msg = sub.recv(timeout_ms=5000)
        assert msg is not None
        assert (msg.topic, msg.kind, msg.seq, msg.lsl_time) == ("responses", "response", 0, 2.5)
        assert msg.meta == {"trial": 1} and msg.source == pub.source
        np.testing.assert_array_equal(msg.arrays[0], x)
        assert sub.recv(timeout_ms=10) is None
        assert sub.stats.received["responses"] == 1 and pub.stats.sent["responses"] == 1


def test_wait_for_subscribers_times_out_without_one(pub: Publisher) -> None:
    t0 = time.monotonic()
    assert not pub.wait_for_subscribers("responses", timeout_ms=50)
    assert time.monotonic() - t0 < 1.0


def _wait_unsubscribed(pub: Publisher, topic: str) -> None:
    deadline = time.monotonic() + 5
    while pub.subscriber_count(topic) and time.monotonic() < deadline:
        pub.socket.poll(100)
    assert pub.subscriber_count(topic) == 0


def test_unsubscribe_is_seen_on_close(pub: Publisher) -> None:
    sub = Subscriber(pub.endpoint, ["latents"])
    assert pub.wait_for_subscribers("latents")
    sub.close()
    _wait_unsubscribed(pub, "latents")


def test_exact_topics_and_dotted_prefixes(pub: Publisher) -> None:
    with Subscriber(pub.endpoint, ["images", "heartbeat."]) as sub:
        assert pub.wait_for_subscribers("images") and pub.wait_for_subscribers("heartbeat.x")
        for topic in ["images.display", "heartbeatx", "heartbeat.render", "images"]:
            pub.publish(topic)
        got = [sub.recv(timeout_ms=5000), sub.recv(timeout_ms=5000)]
        assert [m.topic for m in got] == ["heartbeat.render", "images"]
        assert sub.stats.filtered == 1  # "images.display" passed ZeroMQ's prefix filter only


def test_subscriber_binds_publisher_connects() -> None:
    with Subscriber("tcp://127.0.0.1:0", ["events"], bind=True) as sub:
        with Publisher(sub.endpoints[0], bind=False) as pub:
            # A bound SUB only learns of the new peer (and sends it its subscriptions) while
            # its owner uses the socket, as a recorder's receive loop does.
            deadline = time.monotonic() + 5
            while not pub.wait_for_subscribers("events", timeout_ms=10):
                assert sub.recv(timeout_ms=0) is None and time.monotonic() < deadline
            pub.publish("events", kind="marker", meta={"label": "onset"})
            assert sub.recv(timeout_ms=5000).meta == {"label": "onset"}


# ---------------------------------------------------------------- losses made visible


def test_sequence_gaps_are_counted(raw_xpub: zmq.Socket, caplog) -> None:
    endpoint = raw_xpub.getsockopt_string(zmq.LAST_ENDPOINT)
    with Subscriber(endpoint, ["responses"]) as sub:
        _wait_raw_subscription(raw_xpub)
        with caplog.at_level(logging.WARNING, logger="bci.bus"):
            for seq in [0, 1, 5, 6, 9]:  # 2-4 and 7-8 never sent
                raw_xpub.send_multipart(encode(Message("responses", seq=seq, source="p")))
            seqs = [sub.recv(timeout_ms=5000).seq for _ in range(5)]
        assert seqs == [0, 1, 5, 6, 9]
        assert sub.stats.dropped["responses"] == 5
        assert "lost on 'responses'" in caplog.text
        # A new source (restarted publisher) starting again at 0 is not a drop.
        raw_xpub.send_multipart(encode(Message("responses", seq=0, source="q")))
        assert sub.recv(timeout_ms=5000).seq == 0
        assert sub.stats.dropped["responses"] == 5


def _bad_messages() -> dict[str, list[bytes]]:
    good = [bytes(memoryview(f)) for f in encode(Message("t", arrays=[np.zeros(4, "<f4")]))]
    header = msgpack.unpackb(good[1])

    def with_header(**changes: object) -> list[bytes]:
        h = {**header, **changes}
        return [good[0], msgpack.packb(h), good[2]]

    no_seq = {k: v for k, v in header.items() if k != "seq"}
    return {
        "frame_count": [b"t"],
        "bad_topic": [b"\xff", *good[1:]],
        "bad_msgpack": [b"t", b"\xc1", good[2]],
        "header_not_map": [b"t", msgpack.packb([1]), good[2]],
        "missing_field": [b"t", msgpack.packb(no_seq), good[2]],
        "bad_field": with_header(meta="x"),
        "schema_version": with_header(v=99),
        "bad_dtype": with_header(arrays=[{"dtype": "|O", "shape": [2]}]),
        "frame_size": with_header(arrays=[{"dtype": "<f8", "shape": [4]}]),
        "oversized": [b"t", good[1], np.zeros(5000, np.uint8).tobytes()],
    }


def test_each_malformed_kind_is_counted_logged_once_and_skipped(raw_xpub, caplog) -> None:
    endpoint = raw_xpub.getsockopt_string(zmq.LAST_ENDPOINT)
    bad = _bad_messages()
    with Subscriber(endpoint, None, max_bytes=4096) as sub:
        _wait_raw_subscription(raw_xpub)
        with caplog.at_level(logging.WARNING, logger="bci.bus"):
            for frames in bad.values():
                raw_xpub.send_multipart(frames)
                raw_xpub.send_multipart(frames)
            good = np.arange(4, dtype=np.float32)
            raw_xpub.send_multipart(encode(Message("t", seq=0, arrays=[good])))
            msg = sub.recv(timeout_ms=5000)  # never raises, skips the junk
        assert msg is not None and msg.topic == "t"
        np.testing.assert_array_equal(msg.arrays[0], good)
        assert dict(sub.stats.rejected) == {reason: 2 for reason in bad}
        records = [r for r in caplog.records if r.name.startswith("bci.bus")]
        assert len(records) == len(bad)
        for reason in bad:
            assert sum(f"{reason!r} rejections" in r.getMessage() for r in records) == 1
        # Still working afterwards.
        raw_xpub.send_multipart(encode(Message("t", seq=1)))
        assert sub.recv(timeout_ms=5000).seq == 1


def test_every_send_that_cannot_go_is_counted_loudly(caplog) -> None:
    # inproc: the queue between the two sockets is exactly sndhwm + rcvhwm messages.
    with Publisher("inproc://bus-every-full", sndhwm=1, send_timeout_ms=30) as pub:
        with Subscriber("inproc://bus-every-full", ["responses"], rcvhwm=1) as sub:
            assert pub.wait_for_subscribers("responses")
            with caplog.at_level(logging.ERROR, logger="bci.bus"):
                results = [pub.publish("responses") for _ in range(4)]
            assert results[0] and not results[-1]
            failed = pub.stats.send_failed["responses"]
            assert failed == results.count(False) >= 1
            assert f"{failed} message(s) on this topic NOT sent" in caplog.text
            while sub.recv(timeout_ms=0) is not None:
                pass
            assert pub.publish("responses")
            assert sub.recv(timeout_ms=1000) is not None
            assert sub.stats.dropped["responses"] == failed  # the loss shows up as a gap too


def test_latest_publisher_drops_at_once_when_full() -> None:
    with Publisher("inproc://bus-latest-full", sndhwm=1, send_timeout_ms=5000) as pub:
        with Subscriber("inproc://bus-latest-full", ["images.display"], rcvhwm=1):
            assert pub.wait_for_subscribers("images.display")
            t0 = time.monotonic()
            results = [pub.publish("images.display") for _ in range(5)]
            assert time.monotonic() - t0 < 1.0  # never waits for the send timeout
            assert not results[-1] and pub.stats.dropped_latest["images.display"] >= 1


# ---------------------------------------------------------------- policies


def test_latest_keeps_only_the_newest_per_topic_in_order() -> None:
    # inproc delivers synchronously, so everything is queued before the first recv.
    with Publisher("inproc://bus-latest") as pub:
        with Subscriber("inproc://bus-latest", ["events", "images.display", "heartbeat."]) as sub:
            for topic in ["events", "images.display", "heartbeat.a"]:
                assert pub.wait_for_subscribers(topic)
            pub.publish("events", meta={"i": 0})
            for i in range(50):
                pub.publish("images.display", [np.full(3, i)])
                pub.publish("heartbeat.a", meta={"i": i})
                pub.publish("heartbeat.b", meta={"i": i})
            pub.publish("events", meta={"i": 1})
            got = []
            while (msg := sub.recv(timeout_ms=0)) is not None:
                got.append((msg.topic, msg.seq))
        assert got == [
            ("events", 0),
            ("images.display", 49),
            ("heartbeat.a", 49),
            ("heartbeat.b", 49),
            ("events", 1),
        ]
        assert sub.stats.conflated == {"images.display": 49, "heartbeat.a": 49, "heartbeat.b": 49}
        assert not sub.stats.dropped


def _publish_process(
    queue, topic: str, n: int, size: int, sndhwm: int, sentinel: bool, linger_ms: int = 5000
) -> None:
    """Child process: bind, report the endpoint, wait for the parent, publish n messages."""
    with Publisher(name="child", sndhwm=sndhwm, send_timeout_ms=10_000, linger_ms=linger_ms) as pub:
        queue.put(pub.endpoint)
        if not pub.wait_for_subscribers(topic, timeout_ms=10_000):
            queue.put("no subscriber")
            return
        for i in range(n):
            pub.publish(topic, [np.full(size, i, dtype=np.float32)], meta={"i": i})
        if sentinel:
            pub.publish("events", kind="end")
        queue.put(pub.stats.as_dict())


def _start_child(*args: object) -> tuple[mp.Process, object, str]:
    queue = SPAWN.Queue()
    proc = SPAWN.Process(target=_publish_process, args=(queue, *args), daemon=True)
    proc.start()
    return proc, queue, queue.get(timeout=30)


def test_every_delivers_all_messages_in_order_across_processes() -> None:
    n = 3000
    proc, queue, endpoint = _start_child("responses", n, 256, 20, False)
    try:
        with Subscriber(endpoint, ["responses"], rcvhwm=20) as sub:
            time.sleep(0.2)  # simulate a busy consumer: the child fills both HWMs and must block
            seqs = []
            for _ in range(n):
                msg = sub.recv(timeout_ms=10_000)
                assert msg is not None, f"only {len(seqs)} of {n} arrived"
                assert msg.arrays[0][0] == msg.meta["i"] == msg.seq
                seqs.append(msg.seq)
            assert seqs == list(range(n))
            assert not sub.stats.dropped and not sub.stats.rejected
            stats = queue.get(timeout=30)
            assert stats["sent"] == {"responses": n} and not stats["send_failed"]
    finally:
        proc.join(timeout=10)
    assert proc.exitcode == 0


def test_latest_slow_subscriber_sees_only_fresh_frames_across_processes() -> None:
    n = 2000
    proc, queue, endpoint = _start_child("images.display", n, 256, 10_000, True)
    try:
        with Subscriber(endpoint, ["images.display", "events"]) as sub:
            seqs = []
            while (msg := sub.recv(timeout_ms=10_000)) is not None and msg.topic != "events":
                seqs.append(msg.seq)
                time.sleep(0.002)  # a display that needs time per frame
            assert msg is not None and msg.kind == "end"
            assert seqs == sorted(seqs) and seqs[-1] == n - 1  # newest always delivered
            assert len(seqs) < n // 2
            assert sub.stats.conflated["images.display"] + len(seqs) == n
            assert not sub.stats.dropped
            queue.get(timeout=30)
    finally:
        proc.join(timeout=10)
    assert proc.exitcode == 0


def test_publisher_process_with_zero_copy_frames_in_flight_exits_cleanly_and_fast() -> None:
    # 4 MB frames go zero-copy; the subscriber never reads, so they are still queued at close.
    proc, queue, endpoint = _start_child("images.display", 20, 1 << 20, 4, False, 0)
    try:
        with Subscriber(endpoint, ["images.display"], rcvhwm=2):
            stats = queue.get(timeout=30)
            t0 = time.monotonic()
            proc.join(timeout=10)
            assert time.monotonic() - t0 < 3.0
        assert stats["sent"]["images.display"] + stats["dropped_latest"]["images.display"] == 20
    finally:
        proc.join(timeout=10)
    assert proc.exitcode == 0


# ---------------------------------------------------------------- security


@pytest.mark.parametrize("endpoint", ["tcp://0.0.0.0:5555", "tcp://*:0", "tcp://192.168.1.7:0"])
def test_open_bind_without_curve_is_refused(endpoint: str) -> None:
    with pytest.raises(BusConfigError) as info:
        Publisher(endpoint)
    assert str(info.value) == (
        f"refusing to bind {endpoint} without CURVE keys; bind to tcp://127.0.0.1:<port> or "
        "pass curve=CurveKeys.generate() and give its public key to the peers"
    )
    with pytest.raises(BusConfigError, match=f"^refusing to bind {endpoint.replace('*', '.')}"):
        Subscriber(endpoint, bind=True)


def test_local_endpoints() -> None:
    for ep in ["tcp://127.0.0.1:1", "tcp://127.3.2.1:1", "tcp://[::1]:1", "tcp://localhost:1",
               "ipc:///tmp/x", "inproc://x"]:  # fmt: skip
        assert is_local_endpoint(ep), ep
    for ep in ["tcp://0.0.0.0:1", "tcp://*:1", "tcp://eth0:1", "tcp://10.0.0.1:1", "udp://x:1"]:
        assert not is_local_endpoint(ep), ep


def test_curve_roundtrip_and_wrong_key_gets_nothing() -> None:
    server = CurveKeys.generate()
    with Publisher("tcp://0.0.0.0:0", curve=server, name="remote") as pub:
        port = pub.endpoint.rsplit(":", 1)[1]
        endpoint = f"tcp://127.0.0.1:{port}"
        with Subscriber(endpoint, ["latents"], curve_server_key=server.public) as sub:
            assert pub.wait_for_subscribers("latents", timeout_ms=5000)
            pub.publish("latents", [np.ones((1, 8), np.float32)])
            msg = sub.recv(timeout_ms=5000)
            assert msg is not None and msg.arrays[0].shape == (1, 8)
        _wait_unsubscribed(pub, "latents")
        impostor = CurveKeys.generate().public
        with Subscriber(endpoint, ["latents"], curve_server_key=impostor):
            with Subscriber(endpoint, ["latents"]):  # plaintext
                assert not pub.wait_for_subscribers("latents", count=1, timeout_ms=300)
