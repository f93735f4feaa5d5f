"""The message bus between nodes: ZeroMQ PUB/SUB, msgpack headers, raw numpy array frames.

A message is ``[topic, header, *arrays]`` (see :mod:`bci.bus.message`); each topic has a delivery
policy, EVERY or LATEST (see :mod:`bci.bus.topics`); losses are counted, never silent (see
:mod:`bci.bus.counters`).

Example
-------
>>> pub = Publisher("tcp://127.0.0.1:0", name="acquire")              # doctest: +SKIP
>>> sub = Subscriber(pub.endpoint, topics=["responses"])              # doctest: +SKIP
>>> pub.wait_for_subscribers("responses")                             # doctest: +SKIP
>>> pub.publish("responses", [x], kind="response", lsl_time=t)        # doctest: +SKIP
>>> msg = sub.recv(timeout_ms=100)                                    # doctest: +SKIP
"""

from bci.bus.counters import PublisherStats, SubscriberStats
from bci.bus.message import (
    REJECT_REASONS,
    SCHEMA_VERSION,
    BusMessageError,
    Message,
    decode,
    encode,
)
from bci.bus.publisher import Publisher
from bci.bus.security import BusConfigError, CurveKeys
from bci.bus.subscriber import Subscriber
from bci.bus.topics import DEFAULT_REGISTRY, Policy, TopicRegistry, heartbeat_topic

__all__ = [
    "DEFAULT_REGISTRY",
    "REJECT_REASONS",
    "SCHEMA_VERSION",
    "BusConfigError",
    "BusMessageError",
    "CurveKeys",
    "Message",
    "Policy",
    "Publisher",
    "PublisherStats",
    "Subscriber",
    "SubscriberStats",
    "TopicRegistry",
    "decode",
    "encode",
    "heartbeat_topic",
]
