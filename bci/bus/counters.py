"""Counters that make losses on the bus visible: sequence gaps, rejections, failed sends."""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field

from bci.bus.message import BusMessageError

logger = logging.getLogger(__name__)

GAP_LOG_INTERVAL_S = 1.0
"""A topic's sequence gaps are logged at most this often (all of them are counted)."""
MAX_TRACKED_SOURCES = 4096
"""(source, topic) pairs whose sequence numbers are tracked; later ones go untracked."""


@dataclass
class SubscriberStats:
    """What a subscriber has seen.

    Attributes
    ----------
    received : Counter[str]
        Valid messages received per topic (including LATEST messages later superseded).
    dropped : Counter[str]
        Messages lost per topic, inferred from gaps in the publisher's sequence numbers.
    conflated : Counter[str]
        LATEST messages superseded by a newer one before they were handed out (by design).
    rejected : Counter[str]
        Malformed messages skipped, per reason kind (see ``bci.bus.message.REJECT_REASONS``).
    resets : Counter[str]
        Sequence numbers that went backwards per topic (a publisher restarted).
    filtered : int
        Messages on topics that matched a ZeroMQ prefix but not the exact subscription.
    other_topics : int
        Messages received on topics beyond the first ``MAX_COUNTED_TOPICS`` (counted together
        so that the per-topic counters, sent in every heartbeat, stay bounded).
    """

    received: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    conflated: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    resets: Counter[str] = field(default_factory=Counter)
    filtered: int = 0
    other_topics: int = 0

    def as_dict(self) -> dict[str, object]:
        """Plain-dict copy, for JSON summaries."""
        return {
            "received": dict(self.received),
            "dropped": dict(self.dropped),
            "conflated": dict(self.conflated),
            "rejected": dict(self.rejected),
            "resets": dict(self.resets),
            "filtered": self.filtered,
            "other_topics": self.other_topics,
        }


@dataclass
class PublisherStats:
    """What a publisher has sent.

    Attributes
    ----------
    sent : Counter[str]
        Messages handed to ZeroMQ per topic.
    send_failed : Counter[str]
        EVERY messages that could not be sent within the send timeout (logged at ERROR).
    dropped_latest : Counter[str]
        LATEST messages dropped because a subscriber was full (by design, not logged).
    """

    sent: Counter[str] = field(default_factory=Counter)
    send_failed: Counter[str] = field(default_factory=Counter)
    dropped_latest: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, object]:
        """Plain-dict copy, for JSON summaries."""
        return {
            "sent": dict(self.sent),
            "send_failed": dict(self.send_failed),
            "dropped_latest": dict(self.dropped_latest),
        }


class SequenceTracker:
    """Detects gaps in per-(source, topic) sequence numbers and counts them.

    The first message seen from a source on a topic sets the baseline (messages published before
    the subscriber joined are not drops). A sequence number lower than or equal to the last one
    is a reset, counted separately.

    Parameters
    ----------
    stats : SubscriberStats
        Where gaps and resets are counted.
    """

    def __init__(self, stats: SubscriberStats) -> None:
        self._stats = stats
        self._last: dict[tuple[str, str], int] = {}
        self._last_log: dict[str, float] = {}

    def observe(self, topic: str, source: str, seq: int, *, loud: bool = True) -> int:
        """Record a received sequence number and return how many messages were missed before it.

        Parameters
        ----------
        topic, source : str
            Where the message came from.
        seq : int
            Its sequence number.
        loud : bool
            Log gaps (rate-limited per topic) at WARNING; off for LATEST topics.

        Returns
        -------
        int
            Number of messages missing between the previous one and this one.
        """
        key = (source, topic)
        last = self._last.get(key)
        if last is None:
            if len(self._last) < MAX_TRACKED_SOURCES:  # bounded, whatever sources claim to be
                self._last[key] = seq
            return 0
        self._last[key] = seq
        if seq <= last:
            self._stats.resets[topic] += 1
            return 0
        gap = seq - last - 1
        if gap:
            self._stats.dropped[topic] += gap
            now = time.monotonic()
            if loud and now - self._last_log.get(topic, -GAP_LOG_INTERVAL_S) >= GAP_LOG_INTERVAL_S:
                self._last_log[topic] = now
                logger.warning(
                    "bus: %d message(s) lost on %r before seq %d (%d lost on this topic so far)",
                    gap,
                    topic,
                    seq,
                    self._stats.dropped[topic],
                )
        return gap


class RejectLog:
    """Counts rejected messages per reason and logs only the first of each reason.

    Parameters
    ----------
    stats : SubscriberStats
        Where rejections are counted.
    """

    def __init__(self, stats: SubscriberStats) -> None:
        self._stats = stats

    def reject(self, error: BusMessageError) -> None:
        """Count ``error``; log it at WARNING if it is the first of its reason kind."""
        first = self._stats.rejected[error.reason] == 0
        self._stats.rejected[error.reason] += 1
        if first:
            logger.warning(
                "bus: rejected a malformed message (%s); further %r rejections are only counted",
                error,
                error.reason,
            )
