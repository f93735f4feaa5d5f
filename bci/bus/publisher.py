"""Publishing side of the bus: an XPUB socket that numbers messages and knows its subscribers."""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import zmq

from bci.bus.counters import PublisherStats
from bci.bus.message import Message, encode
from bci.bus.security import CurveKeys, apply_curve, check_bind, normalise_endpoint
from bci.bus.topics import DEFAULT_REGISTRY, Policy, TopicRegistry, check_topic

logger = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "tcp://127.0.0.1:0"
DEFAULT_HWM = 10_000
MAX_SUBSCRIPTION_PREFIXES = 256
"""Distinct subscription prefixes a publisher keeps count of; further ones are ignored."""
MAX_NOTES_PER_READ = 10_000
"""Subscription notifications consumed per :meth:`Publisher.read_subscriptions` call."""
_NOBLOCK = int(zmq.NOBLOCK)
_SNDMORE = int(zmq.SNDMORE)


class Publisher:
    """Publishes :class:`~bci.bus.message.Message` s on one socket.

    With ``watch_subscriptions`` (the default) the socket is a ZeroMQ XPUB rather than a PUB, for
    two reasons:

    * *slow joiners*: a PUB socket cannot tell whether anybody listens, so messages published
      before a subscription has reached it are lost. An XPUB receives every subscription
      (``XPUB_VERBOSER``: also repeated ones and unsubscriptions), so :meth:`wait_for_subscribers`
      can block until a subscriber for a topic is really connected, with no sleep.
    * *no silent drops*: with ``XPUB_NODROP`` a full subscriber makes sends fail instead of
      silently discarding; see :mod:`bci.bus.topics` for what each policy does then.

    An XPUB queues every subscription notification until the application reads it, so a peer
    that floods it with subscriptions costs memory until then: call :meth:`read_subscriptions`
    regularly (the node runner does, on every loop), which also keeps the per-prefix counts
    bounded (:data:`MAX_SUBSCRIPTION_PREFIXES`). A publisher that never waits for subscribers
    passes ``watch_subscriptions=False`` and gets a plain PUB, which still refuses to drop EVERY
    messages silently (``XPUB_NODROP`` applies to PUB sockets too) but keeps no notifications.

    Parameters
    ----------
    endpoint : str
        Where to bind (or connect). ``tcp://host:0`` binds a random port; :attr:`endpoint` tells
        which. Binding anything but loopback / ipc / inproc needs ``curve``.
    bind : bool
        Bind (the usual case) or connect (to a :class:`Subscriber` that binds, e.g. a recorder).
    name : str
        Node name, part of the ``source`` stamped on every message.
    registry : TopicRegistry, optional
        Topic policies; :data:`~bci.bus.topics.DEFAULT_REGISTRY` if not given.
    sndhwm : int
        Send high-water mark, in messages, per subscriber. Memory is bounded by this times the
        message size per subscriber: lower it for publishers of large images.
    send_timeout_ms : int
        How long an EVERY send may block on a full subscriber before it is counted as failed.
    linger_ms : int
        How long :meth:`close` lets queued messages drain.
    curve : CurveKeys, optional
        This socket's key pair: when binding, it becomes a CURVE server.
    curve_server_key : str | bytes, optional
        When connecting to a CURVE-server subscriber, that server's public key.
    copy_threshold : int, optional
        Array frames of at least this many bytes are sent zero-copy (and tracked until libzmq
        lets go of them); smaller ones are copied, which is cheaper for them. pyzmq's default,
        64 KiB, if not given; ``tools/bench_bus.py --sweep`` measures where zero-copy starts
        to pay off.
    context : zmq.Context, optional
        Defaults to the process-wide :meth:`zmq.Context.instance`.
    watch_subscriptions : bool
        XPUB (True: :meth:`wait_for_subscribers` and :meth:`subscriber_count` work) or PUB.

    Notes
    -----
    Like any ZeroMQ socket, a publisher belongs to one thread.
    """

    def __init__(
        self,
        endpoint: str = DEFAULT_ENDPOINT,
        *,
        bind: bool = True,
        name: str = "",
        registry: TopicRegistry | None = None,
        sndhwm: int = DEFAULT_HWM,
        send_timeout_ms: int = 1000,
        linger_ms: int = 200,
        curve: CurveKeys | None = None,
        curve_server_key: str | bytes | None = None,
        copy_threshold: int | None = None,
        context: zmq.Context | None = None,
        watch_subscriptions: bool = True,
    ) -> None:
        if bind:
            check_bind(endpoint, curve)
        self.registry = registry or DEFAULT_REGISTRY
        self.source = f"{name or 'pub'}:{os.getpid()}:{secrets.token_hex(3)}"
        self.stats = PublisherStats()
        self.subscriptions: Counter[str] = Counter()
        """Live subscriptions per prefix, as reported by the XPUB socket (brought up to date by
        :meth:`subscriber_count` and :meth:`wait_for_subscribers`)."""
        self._seq: dict[str, int] = {}
        self._linger_ms = linger_ms
        self._send_timeout_ms = send_timeout_ms
        self._inflight: deque[zmq.MessageTracker] = deque()
        self.wall_offset_s = 0.0
        """Added to ``time.time()`` for each message's ``wall_time`` (a node joined from another
        machine sets it to its wall-clock offset to the supervisor's)."""
        self.watches_subscriptions = watch_subscriptions
        self.ignored_subscriptions = 0
        """Subscription prefixes not counted because :data:`MAX_SUBSCRIPTION_PREFIXES` were."""
        ctx = context or zmq.Context.instance()
        sock = ctx.socket(zmq.XPUB if watch_subscriptions else zmq.PUB)
        try:
            sock.setsockopt(zmq.SNDHWM, sndhwm)
            sock.setsockopt(zmq.SNDTIMEO, send_timeout_ms)
            sock.setsockopt(zmq.XPUB_NODROP, 1)
            if watch_subscriptions:
                sock.setsockopt(zmq.XPUB_VERBOSER, 1)
            sock.setsockopt(zmq.LINGER, linger_ms)
            if copy_threshold is not None:
                sock.copy_threshold = copy_threshold
            # Frames at least this big go zero-copy (pyzmq copies smaller ones).
            self._zero_copy_from = sock.copy_threshold
            apply_curve(sock, bind=bind, curve=curve, server_key=curve_server_key)
            if bind:
                sock.bind(normalise_endpoint(endpoint))
                self.endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
            else:
                sock.connect(endpoint)
                self.endpoint = endpoint
        except Exception:
            sock.close(linger=0)
            raise
        self._sock = sock

    @property
    def socket(self) -> zmq.Socket:
        """The underlying XPUB socket (for polling; do not send on it directly)."""
        return self._sock

    def publish(
        self,
        topic: str,
        arrays: Iterable[np.ndarray] = (),
        *,
        kind: str = "data",
        meta: Mapping[str, Any] | None = None,
        lsl_time: float | None = None,
    ) -> bool:
        """Publish one message; its sequence number is the topic's next one.

        Arrays of at least ``copy_threshold`` bytes are sent zero-copy: do not write into them
        after this call (the I/O thread may still be reading them); publish a fresh array, or a
        copy, when the caller reuses a buffer. Smaller arrays are copied during the call.

        Parameters
        ----------
        topic : str
            Topic name (see :mod:`bci.bus.topics`).
        arrays : iterable of numpy.ndarray
            Payload; each array becomes one frame.
        kind : str
            Message kind for the receiver.
        meta : Mapping, optional
            Small msgpack-able metadata.
        lsl_time : float, optional
            LSL time of the data.

        Returns
        -------
        bool
            True if ZeroMQ accepted the message. False for an EVERY message that timed out
            (counted in ``stats.send_failed`` and logged at ERROR) or a LATEST message dropped
            because a subscriber is full (counted in ``stats.dropped_latest``).
        """
        seq = self._seq.get(topic)
        if seq is None:
            check_topic(topic)
            seq = 0
        self._seq[topic] = seq + 1  # used up even if the send fails: receivers see the gap
        msg = Message(
            topic=topic,
            kind=kind,
            seq=seq,
            lsl_time=lsl_time,
            wall_time=time.time() + self.wall_offset_s,
            arrays=list(arrays),
            meta=dict(meta) if meta else {},
            source=self.source,
        )
        frames = encode(msg)
        latest = self.registry.policy(topic) is Policy.LATEST
        flags = _NOBLOCK if latest else 0
        send = self._sock.send
        last = len(frames) - 1
        try:
            # Parts after the first cannot fail: libzmq checks the HWM per whole message.
            for i, frame in enumerate(frames):
                more = _SNDMORE if i < last else 0
                if i < 2:  # topic and header: small, always copied
                    send(frame, flags | more)
                elif frame.nbytes >= self._zero_copy_from:
                    self._track(send(frame, flags | more, copy=False, track=True))
                else:
                    send(frame, flags | more, copy=False)  # pyzmq copies it
        except zmq.Again:
            if latest:
                self.stats.dropped_latest[topic] += 1
            else:
                self.stats.send_failed[topic] += 1
                logger.error(
                    "bus: could not send %r seq %d within %d ms (a subscriber is not keeping up); "
                    "%d message(s) on this topic NOT sent so far",
                    topic,
                    seq,
                    self._send_timeout_ms,
                    self.stats.send_failed[topic],
                )
            return False
        self.stats.sent[topic] += 1
        return True

    def read_subscriptions(self) -> None:
        """Consume pending (un)subscription notifications without blocking (at most
        :data:`MAX_NOTES_PER_READ` of them, so that a flood cannot hold the caller)."""
        if not self.watches_subscriptions:
            return
        for _ in range(MAX_NOTES_PER_READ):
            if not self._sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                return
            try:
                note = self._sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if not note:
                continue
            prefix = note[1:].decode("utf-8", "replace")
            if note[0] == 1:
                if prefix not in self.subscriptions and (
                    len(self.subscriptions) >= MAX_SUBSCRIPTION_PREFIXES
                ):
                    self.ignored_subscriptions += 1
                    continue
                self.subscriptions[prefix] += 1
            elif note[0] == 0 and self.subscriptions[prefix] > 0:
                self.subscriptions[prefix] -= 1
                if not self.subscriptions[prefix]:
                    del self.subscriptions[prefix]

    def subscriber_count(self, topic: str | None = None) -> int:
        """Number of live subscriptions that would receive ``topic`` (any topic if None)."""
        if not self.watches_subscriptions:
            raise RuntimeError("a publisher made with watch_subscriptions=False cannot count them")
        self.read_subscriptions()
        if topic is None:
            return sum(self.subscriptions.values())
        return sum(n for prefix, n in self.subscriptions.items() if topic.startswith(prefix))

    def wait_for_subscribers(
        self, topic: str | None = None, count: int = 1, timeout_ms: float = 5000
    ) -> bool:
        """Block until ``count`` subscriptions that match ``topic`` have reached this socket.

        Once this returns True, messages published on ``topic`` reach those subscribers: the
        XPUB reports a subscription only after installing it. When the subscriber is the side
        that binds, it sends its subscriptions to a newly connected publisher only while its own
        thread uses the socket (``recv`` in its loop), as libzmq processes the connection then.

        Parameters
        ----------
        topic : str, optional
            The topic about to be published; None waits for any subscription.
        count : int
            Subscriptions to wait for (one per subscriber socket, when each subscribes once).
        timeout_ms : float
            Give up after this long.

        Returns
        -------
        bool
            False if the timeout passed first.
        """
        deadline = time.monotonic() + timeout_ms / 1000
        while self.subscriber_count(topic) < count:
            remaining_ms = (deadline - time.monotonic()) * 1000
            if remaining_ms <= 0:
                return False
            self._sock.poll(max(1, int(remaining_ms)), zmq.POLLIN)
        return True

    def _track(self, tracker: zmq.MessageTracker) -> None:
        """Remember a zero-copy send until libzmq has let go of its buffer."""
        inflight = self._inflight
        while inflight and inflight[0].done:
            inflight.popleft()
        inflight.append(tracker)

    def close(self, linger_ms: int | None = None) -> None:
        """Close the socket, letting queued messages drain for at most ``linger_ms``.

        Returns once libzmq has released every zero-copy array buffer (or after linger + 1 s):
        ``zmq_close`` is asynchronous, and an interpreter shutting down right after it could free
        an array that the I/O thread is still writing from.
        """
        if self._sock.closed:
            return
        linger_ms = self._linger_ms if linger_ms is None else linger_ms
        self._sock.close(linger=linger_ms)
        deadline = time.monotonic() + max(linger_ms, 0) / 1000 + 1.0
        while self._inflight:
            try:
                self._inflight[0].wait(timeout=max(0.0, deadline - time.monotonic()))
            except zmq.NotDone:
                logger.warning(
                    "bus: %d zero-copy message(s) still held by ZeroMQ after close",
                    len(self._inflight),
                )
                return
            self._inflight.popleft()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def deliver_queued(linger_ms: int = 200) -> None:
    """Let this process's queued messages go out (at most ``linger_ms``), then end its bus.

    libzmq sends what a closed socket still holds from its own thread, and an interpreter that
    exits normally waits for that; one that ends at once (:func:`bci.logs.flush_and_exit`) calls
    this first, or a node's last messages and its final heartbeat could be lost.
    """
    zmq.Context.instance().destroy(linger=linger_ms)
