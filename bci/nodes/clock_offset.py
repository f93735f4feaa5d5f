"""How far this machine's clocks are from the supervisor's: ping-pong, as LSL's time_correction.

Each round trip sends a ``clock`` request at local time ``t0``, gets the supervisor's LSL and
wall clocks ``s`` and ``w``, and ends at ``t1``. Assuming the two legs take as long, the offset
is ``s - (t0 + t1) / 2``, wrong by at most half the round trip; like liblsl, the estimate is the
sample with the shortest round trip among the recent ones, and the jitter is the spread (standard
deviation) of the recent samples. The same thread's answers tell the node whether the
supervisor is still there.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
import zmq
from pylsl import local_clock

from bci.bus.join_protocol import ask, request_socket
from bci.bus.security import CurveKeys

WINDOW = 32
"""Recent round trips the estimate is taken from."""


@dataclass(frozen=True)
class Sample:
    """One round trip: its time, the LSL and wall offsets it measured, and how long it took."""

    rtt_s: float
    lsl_offset_s: float
    wall_offset_s: float


class ClockOffset:
    """The running estimate from recent round trips."""

    def __init__(self, window: int = WINDOW) -> None:
        self.samples: deque[Sample] = deque(maxlen=window)
        self.n = 0

    def add(
        self, t0: float, t1: float, remote_lsl: float, w0: float, w1: float, remote_wall: float
    ):
        """Add one round trip (local LSL times ``t0``/``t1``, wall times ``w0``/``w1``)."""
        self.samples.append(
            Sample(t1 - t0, remote_lsl - (t0 + t1) / 2, remote_wall - (w0 + w1) / 2)
        )
        self.n += 1

    def _best(self) -> Sample | None:
        return min(self.samples, key=lambda s: s.rtt_s) if self.samples else None

    @property
    def lsl_offset_s(self) -> float:
        """Add to this machine's LSL clock to get the supervisor's (0 before any sample)."""
        best = self._best()
        return best.lsl_offset_s if best else 0.0

    @property
    def wall_offset_s(self) -> float:
        """Add to this machine's ``time.time()`` to get the supervisor's."""
        best = self._best()
        return best.wall_offset_s if best else 0.0

    def summary(self) -> dict[str, float | int]:
        """Offset, jitter and round trip in ms, and the number of round trips so far."""
        if not self.samples:
            return {"n": 0}
        offsets = np.array([s.lsl_offset_s for s in self.samples])
        rtts = np.array([s.rtt_s for s in self.samples])
        return {
            "offset_ms": round(self.lsl_offset_s * 1e3, 4),
            "jitter_ms": round(float(offsets.std()) * 1e3, 4),
            "rtt_ms": round(float(np.median(rtts)) * 1e3, 4),
            "n": self.n,
        }


class ClockWatch:
    """Ping the supervisor on a thread: keep a :class:`ClockOffset`, know whether it answers.

    Parameters
    ----------
    context : zmq.Context
        For the thread's own socket.
    endpoint : str
        The supervisor's join door.
    keys, server_key
        This machine's CURVE key pair and the session's public key.
    node : str
        The node's name, sent with each request.
    timeout_s : float
        The supervisor counts as gone after this long without an answer.
    interval_s : float
        Time between round trips.
    """

    def __init__(
        self,
        context: zmq.Context,
        endpoint: str,
        keys: CurveKeys,
        server_key: bytes,
        node: str,
        timeout_s: float,
        interval_s: float = 0.25,
    ) -> None:
        self.offset = ClockOffset()
        self.timeout_s, self.interval_s = timeout_s, interval_s
        self.last_answer = time.monotonic()
        self._stop = threading.Event()
        self._sock = request_socket(context, endpoint, keys, server_key)
        self._node = node
        self._thread = threading.Thread(target=self._run, name="bci-clock", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            w0, t0 = time.time(), local_clock()
            reply = ask(self._sock, {"op": "clock", "node": self._node}, self.interval_s * 4e3)
            t1, w1 = local_clock(), time.time()
            if (
                reply
                and isinstance(reply.get("lsl"), float)
                and isinstance(reply.get("wall"), float)
            ):
                self.offset.add(t0, t1, reply["lsl"], w0, w1, reply["wall"])
                self.last_answer = time.monotonic()
            self._stop.wait(self.interval_s)
        self._sock.close()

    def alive(self) -> bool:
        """Whether the supervisor answered within the timeout."""
        return time.monotonic() - self.last_answer < self.timeout_s

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
