"""Receiving side of the bus: decodes, validates, counts, and applies each topic's policy."""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence

import zmq

from bci.bus.counters import RejectLog, SequenceTracker, SubscriberStats
from bci.bus.message import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_HEADER_BYTES,
    BusMessageError,
    Message,
    decode,
)
from bci.bus.security import CurveKeys, apply_curve, check_bind, normalise_endpoint
from bci.bus.topics import DEFAULT_REGISTRY, Policy, TopicRegistry

DEFAULT_HWM = 10_000
DEFAULT_MAX_PENDING = 10_000
MAX_COUNTED_TOPICS = 128
"""Topics counted one by one in ``stats``; messages on further topics are still handed out but
only counted together, in ``stats.other_topics`` (no sequence tracking, EVERY policy)."""
_NOBLOCK = int(zmq.NOBLOCK)


class Subscriber:
    """Receives bus messages from one or more publishers.

    Parameters
    ----------
    endpoints : str or sequence of str
        Publisher endpoints to connect to (or, with ``bind=True``, one endpoint to bind).
    topics : iterable of str, optional
        Topics to receive, matched exactly; a name ending in ``"."`` is a prefix
        (``"heartbeat."``). None or ``[""]`` receives everything.
    bind : bool
        Bind instead of connecting (publishers then connect, e.g. to a recorder).
    registry : TopicRegistry, optional
        Topic policies; :data:`~bci.bus.topics.DEFAULT_REGISTRY` if not given.
    rcvhwm : int
        Receive high-water mark in messages; beyond it the socket stops reading and an EVERY
        publisher blocks (it never drops silently).
    max_bytes, max_header_bytes : int
        Messages (all frames) or headers larger than this are rejected as ``"oversized"``.
    max_pending : int
        At most this many messages are pulled ahead into the subscriber's own queue when it
        drains the socket for a LATEST topic.
    linger_ms : int
        Linger on close.
    curve : CurveKeys, optional
        This socket's key pair (the CURVE server's, when binding).
    curve_server_key : str | bytes, optional
        The CURVE public key of the publisher(s) to connect to; required for CURVE publishers.
    context : zmq.Context, optional
        Defaults to :meth:`zmq.Context.instance`.

    Notes
    -----
    :meth:`recv` never raises because of what arrives: malformed messages (and any error while
    decoding one) are counted in ``stats.rejected`` per reason and logged once per reason and
    subscriber (logger ``"bci.bus"``). Like any ZeroMQ socket, a subscriber belongs to one thread.
    """

    def __init__(
        self,
        endpoints: str | Sequence[str],
        topics: Iterable[str] | None = None,
        *,
        bind: bool = False,
        registry: TopicRegistry | None = None,
        rcvhwm: int = DEFAULT_HWM,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
        max_pending: int = DEFAULT_MAX_PENDING,
        linger_ms: int = 0,
        curve: CurveKeys | None = None,
        curve_server_key: str | bytes | None = None,
        context: zmq.Context | None = None,
    ) -> None:
        endpoints = [endpoints] if isinstance(endpoints, str) else list(endpoints)
        if bind:
            if len(endpoints) != 1:
                raise ValueError("a binding subscriber takes exactly one endpoint")
            check_bind(endpoints[0], curve)
        if isinstance(topics, str):
            raise TypeError("topics must be a list of names, not a single string")
        names = [""] if topics is None else list(topics)
        self._everything = "" in names
        self._exact = frozenset(t for t in names if t and not t.endswith("."))
        self._prefixes = tuple(t for t in names if t.endswith("."))
        self.registry = registry or DEFAULT_REGISTRY
        self.stats = SubscriberStats()
        self._seq = SequenceTracker(self.stats)
        self._rejects = RejectLog(self.stats)
        self._max_bytes = max_bytes
        self._max_header_bytes = max_header_bytes
        self._max_pending = max_pending
        # Pending messages in arrival order. EVERY messages have unique int keys; a LATEST topic
        # has the single key ("latest", topic), re-inserted at the end when a newer one arrives.
        self._pending: OrderedDict[object, Message] = OrderedDict()
        self._ids = itertools.count()
        self._latest_policy: dict[str, bool] = {}
        self._rcvtimeo = -1  # libzmq's default

        ctx = context or zmq.Context.instance()
        sock = ctx.socket(zmq.SUB)
        try:
            sock.setsockopt(zmq.RCVHWM, rcvhwm)
            sock.setsockopt(zmq.LINGER, linger_ms)
            apply_curve(sock, bind=bind, curve=curve, server_key=curve_server_key)
            for name in names:
                sock.setsockopt(zmq.SUBSCRIBE, name.encode("utf-8"))
            if bind:
                sock.bind(normalise_endpoint(endpoints[0]))
                self.endpoints = [sock.getsockopt_string(zmq.LAST_ENDPOINT)]
            else:
                for endpoint in endpoints:
                    sock.connect(endpoint)
                self.endpoints = endpoints
        except Exception:
            sock.close(linger=0)
            raise
        self._sock = sock

    @property
    def socket(self) -> zmq.Socket:
        """The underlying SUB socket, for a :class:`zmq.Poller`; check :attr:`pending` first."""
        return self._sock

    @property
    def pending(self) -> int:
        """Messages already pulled off the socket and waiting to be handed out by :meth:`recv`."""
        return len(self._pending)

    def recv(self, timeout_ms: float | None = None) -> Message | None:
        """Return the next message, or None if none arrives within ``timeout_ms``.

        EVERY messages come one by one, in arrival order. Before a LATEST message is handed out,
        the socket is drained without blocking so that only the newest message of that topic is
        returned (older ones are counted in ``stats.conflated``).

        Parameters
        ----------
        timeout_ms : float, optional
            0 polls without waiting; None waits for ever.

        Returns
        -------
        Message or None
            The message, or None on timeout.
        """
        deadline = None if timeout_ms is None else time.monotonic() + timeout_ms / 1000
        while True:
            if self._pending:
                if isinstance(next(iter(self._pending)), tuple):
                    self._drain()  # a newer message of that LATEST topic may be waiting
                return self._pending.popitem(last=False)[1]
            if deadline is None:
                wait_ms = -1
            else:
                wait_ms = max(0, int((deadline - time.monotonic()) * 1000))
            if not self._pull(wait_ms):
                return None  # timed out (a rejected or filtered message loops back here)

    def _drain(self) -> None:
        """Pull everything the socket already holds, up to ``max_pending`` queued messages."""
        while len(self._pending) < self._max_pending and self._pull(0):
            pass

    def _pull(self, wait_ms: int) -> bool:
        """Take one message off the socket, waiting up to ``wait_ms`` (-1: for ever, 0: not).

        Returns False if none came. Waiting is a blocking ``recv`` under ``RCVTIMEO`` (set only
        when it changes), which wakes up faster than a ``poll`` followed by a ``recv``.
        """
        sock = self._sock
        try:
            if wait_ms == 0:
                frame = sock.recv(_NOBLOCK, copy=False)
            else:
                if wait_ms != self._rcvtimeo:
                    sock.setsockopt(zmq.RCVTIMEO, wait_ms)
                    self._rcvtimeo = wait_ms
                frame = sock.recv(0, copy=False)
        except zmq.Again:
            return False
        frames = [frame]
        while frame.more:  # the rest of a multipart message is always there already
            frame = sock.recv(0, copy=False)
            frames.append(frame)
        try:
            msg = decode(frames, max_bytes=self._max_bytes, max_header_bytes=self._max_header_bytes)
        except BusMessageError as error:
            self._rejects.reject(error)
            return True
        except Exception as exc:  # a bug in decode must not kill the node: count and skip
            self._rejects.reject(BusMessageError("decode_error", f"{type(exc).__name__}: {exc}"))
            return True
        topic = msg.topic
        if not self._wanted(topic):
            self.stats.filtered += 1
            return True
        received = self.stats.received
        if topic not in received and len(received) >= MAX_COUNTED_TOPICS:
            # Per-topic counters (in every heartbeat) stay bounded whatever arrives.
            self.stats.other_topics += 1
            self._pending[next(self._ids)] = msg
            return True
        received[topic] += 1
        latest = self._latest_policy.get(topic)
        if latest is None:
            latest = self._latest_policy[topic] = self.registry.policy(topic) is Policy.LATEST
        self._seq.observe(topic, msg.source, msg.seq, loud=not latest)
        if latest:
            key = ("latest", topic)
            if self._pending.pop(key, None) is not None:
                self.stats.conflated[topic] += 1
            self._pending[key] = msg
        else:
            self._pending[next(self._ids)] = msg
        return True

    def _wanted(self, topic: str) -> bool:
        return self._everything or topic in self._exact or topic.startswith(self._prefixes)

    def close(self) -> None:
        """Close the socket (pending messages are discarded)."""
        if not self._sock.closed:
            self._sock.close()
        self._pending.clear()

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
