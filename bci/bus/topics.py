"""Topic names of the project and the delivery policy of each.

Two policies
------------
``Policy.EVERY`` -- every message matters (trial responses, latents, fitness, markers, control).
    *Publisher*: the socket is an XPUB with ``XPUB_NODROP``, so when a subscriber's queue (send HWM
    on our side, receive HWM on its side, plus the TCP buffers in between) is full, a send does not
    silently drop as a plain PUB would: it blocks, for at most ``send_timeout_ms``; if it still
    cannot go, the message is *not* sent, the failure is counted per topic and logged at ERROR with
    the running count. Its sequence number is used up all the same, so every subscriber also sees
    the loss as a gap. The back-pressure is to the slowest subscriber of the topic: one stuck
    subscriber holds the topic back for all of them, for at most the send timeout per message.
    *Subscriber*: messages are handed out one by one in arrival order; gaps in the per-topic
    sequence numbers are counted in ``stats.dropped[topic]`` and logged.

``Policy.LATEST`` -- only the newest message is worth anything (frames for a live display,
    heartbeats). A stale frame shown late is worse than a skipped one.
    *Publisher*: sends with ``NOBLOCK``: if a subscriber is full the message is dropped at once and
    counted quietly in ``stats.dropped_latest`` (the publisher's loop never waits for a display).
    *Subscriber*: ``ZMQ_CONFLATE`` would be the obvious tool, but it keeps the last *frame*, not the
    last multipart message, so it breaks ``[topic, header, *arrays]`` messages (libzmq documents
    that CONFLATE does not support multipart); and it applies to the whole socket, so it would also
    conflate the EVERY topics sharing that socket. Instead, before the subscriber hands out a LATEST
    message it drains its socket without blocking and keeps, per LATEST topic, only the newest
    message (older ones are counted in ``stats.conflated[topic]``, not as drops). EVERY messages
    drained on the way are queued in order, untouched. A small receive HWM on a LATEST-only
    subscriber would bound memory too, but it drops silently inside libzmq and would make the
    publisher's EVERY traffic to that subscriber lossy, so it is not used.

Topic names
-----------
ZeroMQ subscriptions match by prefix. Our :class:`~bci.bus.subscriber.Subscriber` matches names
*exactly*, except names ending in ``"."`` which stay prefixes (``"heartbeat."`` receives
``"heartbeat.acquire"``, ``"heartbeat.render"``, ...). A topic's policy is the one registered
for its longest dotted prefix (``"heartbeat.render"`` -> ``"heartbeat"``); unknown topics are
EVERY, the safe choice.

A topic name is 1 to :data:`MAX_TOPIC_LENGTH` characters of ``A-Z a-z 0-9 _ - .``, starting with a
letter (:func:`check_topic`): publishers refuse other names, and :func:`bci.bus.message.decode`
rejects messages that carry one, so a topic is always safe as a file name and a counter key.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping

MAX_TOPIC_LENGTH = 64
"""Longest topic name, in characters."""

_TOPIC_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]*\Z")


def is_valid_topic(name: object) -> bool:
    """Whether ``name`` is a topic name the bus carries (see the module docstring)."""
    return (
        type(name) is str
        and 0 < len(name) <= MAX_TOPIC_LENGTH
        and _TOPIC_RE.match(name) is not None
    )


def check_topic(name: object) -> str:
    """Return ``name`` if it is a valid topic name, else raise ``ValueError`` saying why.

    Parameters
    ----------
    name : object
        The candidate topic name.

    Returns
    -------
    str
        ``name``, unchanged.
    """
    if not is_valid_topic(name):
        raise ValueError(
            f"topic {name!r} is not valid: 1 to {MAX_TOPIC_LENGTH} characters of "
            "A-Z a-z 0-9 _ - ., starting with a letter"
        )
    return name


RESPONSES = "responses"
"""acquire -> decode / evolve / record: one response vector per trial (EVERY)."""
LATENTS = "latents"
"""decode -> render / record: a predicted latent per trial (EVERY)."""
GENERATIONS = "generations"
"""evolve -> render / record: the latents of one generation, shape (n, latent_dim) (EVERY)."""
FITNESS = "fitness"
"""evolve -> record / supervisor: fitness of a generation (EVERY)."""
IMAGES = "images"
"""render -> display / record: stimulus images, each must be shown and kept (EVERY)."""
IMAGES_DISPLAY = "images.display"
"""render -> display: live view (e.g. reconstructions); only the newest frame counts (LATEST)."""
EVENTS = "events"
"""any -> record: events and markers (stimulus onsets, trial boundaries) (EVERY)."""
HEARTBEAT = "heartbeat"
"""``heartbeat.<node>``, every node -> supervisor: newest state per node (LATEST)."""
CONTROL = "control"
"""supervisor -> nodes: start / pause / stop commands (EVERY)."""


def heartbeat_topic(node: str) -> str:
    """Heartbeat topic of ``node``, e.g. ``"heartbeat.render"``; subscribe to ``"heartbeat."``."""
    return f"{HEARTBEAT}.{node}"


class Policy(enum.Enum):
    """How a topic's messages are delivered (see the module docstring)."""

    EVERY = "every"
    LATEST = "latest"


DEFAULT_POLICIES: Mapping[str, Policy] = {
    RESPONSES: Policy.EVERY,
    LATENTS: Policy.EVERY,
    GENERATIONS: Policy.EVERY,
    FITNESS: Policy.EVERY,
    IMAGES: Policy.EVERY,
    IMAGES_DISPLAY: Policy.LATEST,
    EVENTS: Policy.EVERY,
    HEARTBEAT: Policy.LATEST,
    CONTROL: Policy.EVERY,
}


_CACHE_SIZE = 1024


class TopicRegistry:
    """Maps topic names to policies, by longest dotted prefix.

    Parameters
    ----------
    policies : Mapping[str, Policy], optional
        Overrides and additions on top of :data:`DEFAULT_POLICIES`.
    default : Policy
        Policy for topics with no registered prefix.
    """

    def __init__(
        self, policies: Mapping[str, Policy] | None = None, default: Policy = Policy.EVERY
    ) -> None:
        self._policies = dict(DEFAULT_POLICIES)
        self._policies.update(policies or {})
        self.default = default
        self._cache: dict[str, Policy] = {}

    def register(self, topic: str, policy: Policy) -> None:
        """Set the policy of ``topic`` and of its dotted sub-topics without their own entry."""
        self._policies[topic] = policy
        self._cache.clear()

    def policy(self, topic: str) -> Policy:
        """Return the policy of ``topic``.

        Parameters
        ----------
        topic : str
            A topic name such as ``"responses"`` or ``"heartbeat.render"``.

        Returns
        -------
        Policy
            The policy registered for the longest dotted prefix of ``topic``, else the default.
        """
        cached = self._cache.get(topic)
        if cached is not None:
            return cached
        name = topic
        while True:
            if name in self._policies:
                found = self._policies[name]
                break
            if "." not in name:
                found = self.default
                break
            name = name.rsplit(".", 1)[0]
        if len(self._cache) < _CACHE_SIZE:  # bounded: topics on the wire are not all ours
            self._cache[topic] = found
        return found

    def as_dict(self) -> dict[str, str]:
        """The registered names and their policy values, for logs and session summaries."""
        return {name: policy.value for name, policy in sorted(self._policies.items())}


DEFAULT_REGISTRY = TopicRegistry()
"""The registry used by publishers and subscribers that are not given one."""
