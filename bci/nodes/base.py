"""What every node is: a loop of receive → compute → publish, with heartbeats and a clean stop.

A node subclasses :class:`Node`, names the topics it listens to, and fills in :meth:`Node.setup`
(heavy start-up work: load a model, open a window, resolve LSL streams), :meth:`Node.handle`
(one message in, zero or more published) and, when it also acts on time rather than on messages,
:meth:`Node.tick`. The runner (:mod:`bci.nodes.runner`) owns the sockets, the heartbeat and the
stop signal, so a node's file reads as its data flow.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from bci.bus import Message, Publisher
from bci.config import SessionConfig


class NodeError(RuntimeError):
    """A node cannot go on (e.g. a stream never appeared); the message says why, in one line."""


class Node:
    """Base class of the session's processes.

    Parameters
    ----------
    config : SessionConfig
        The validated session config (:func:`bci.session.config.load_config`).
    out : Path
        The session folder.
    publisher : Publisher
        This node's bus socket.

    Attributes
    ----------
    name : str
        Node name (``"acquire"``, ``"render"``, ...), also its heartbeat topic suffix.
    topics : tuple of str
        Bus topics this node receives (besides ``control``).
    poll_ms : float
        Longest wait for a message before :meth:`tick` runs again.
    needs_meta : dict
        Per topic, the meta fields :meth:`handle` reads and their types (a type or a tuple of
        types); the runner skips and counts messages without them.
    waits_for_subscribers : bool
        Whether the node calls ``publisher.wait_for_subscribers`` (its socket is then an XPUB).
    drain_on_stop_ms : float
        On ``stop``, keep handling messages until none has come for this long (0: stop at once).
    """

    name: ClassVar[str] = "node"
    topics: ClassVar[tuple[str, ...]] = ()
    poll_ms: float = 50.0
    needs_meta: ClassVar[Mapping[str, Mapping[str, type | tuple[type, ...]]]] = {}
    waits_for_subscribers: ClassVar[bool] = False
    drain_on_stop_ms: ClassVar[float] = 0.0
    clock_offset_s: float = 0.0
    """Added to this machine's LSL clock to stamp on the session's (the supervisor's) clock; set
    by a node joined from another machine (:mod:`bci.nodes.join`), 0 on the supervisor's."""

    def __init__(self, config: SessionConfig, out: Path, publisher: Publisher) -> None:
        self.config = config
        self.out = Path(out)
        self.publisher = publisher
        self.log = logging.getLogger(f"bci.nodes.{self.name}")
        self.started = False
        self.finished = False
        self.counters: dict[str, int] = {}

    # -- what subclasses fill in -------------------------------------------------------------
    def setup(self) -> None:
        """Heavy start-up work; the node is reported ready when this returns."""

    def start(self) -> None:
        """Called once when the supervisor starts the session (all nodes are ready)."""
        self.started = True

    def handle(self, msg: Message) -> None:
        """React to one received message."""

    def tick(self) -> None:
        """Time-driven work, called after every receive (or receive timeout)."""

    def quiet(self) -> None:
        """The session is ending: stop reading LSL (close inlets), keep the outlets open.

        Called once, on the supervisor's ``quiet`` (sent to the sources); after it the node gets
        no more messages or ticks. The sources read each other's streams (the simulator the
        display's markers, the display the simulator's triggers): an inlet still open when its
        outlet goes logs liblsl's ``ERR| Stream transmission broke off``.
        """

    def teardown(self) -> None:
        """Release resources and flush files; called once, also after an error."""

    # -- helpers -------------------------------------------------------------------------------
    def publish(
        self,
        topic: str,
        arrays: Iterable[np.ndarray] = (),
        *,
        kind: str = "data",
        meta: Mapping[str, Any] | None = None,
        lsl_time: float | None = None,
    ) -> bool:
        """Publish on the bus (see :meth:`bci.bus.Publisher.publish`)."""
        return self.publisher.publish(topic, arrays, kind=kind, meta=meta, lsl_time=lsl_time)

    def count(self, key: str, n: int = 1) -> None:
        """Add to a named counter, reported in heartbeats and the summary."""
        self.counters[key] = self.counters.get(key, 0) + n

    def event(self, kind: str, **meta: Any) -> None:
        """Publish an event (``events`` topic), stamped with the LSL clock."""
        from pylsl import local_clock

        stamp = local_clock() + self.clock_offset_s
        self.publish("events", kind=kind, meta={"node": self.name, **meta}, lsl_time=stamp)

    def status(self) -> dict[str, Any]:
        """Heartbeat payload: counters and anything a subclass adds."""
        return {"counters": dict(self.counters), "time": time.time()}
