"""The record node: every bus message into the session folder (``bus/``), flushed often."""

from __future__ import annotations

from bci.bus import Message
from bci.nodes.base import Node
from bci.session.bus_log import BusLogWriter


class RecordNode(Node):
    """Write every message except heartbeats to the session's bus log."""

    name = "record"
    topics = ("",)
    poll_ms = 100.0

    def setup(self) -> None:
        self.writer = BusLogWriter(self.out / "bus")

    def handle(self, msg: Message) -> None:
        if msg.topic.startswith("heartbeat.") or msg.topic == "control":
            return
        self.writer.write(msg)
        self.count("messages")

    def tick(self) -> None:
        self.writer.maybe_flush()

    def teardown(self) -> None:
        self.writer.close()


NODE = RecordNode
