"""The scanner's trigger: what starts each run, from an LSL stream, a key, or nothing.

``[trigger] source``:

* ``"lsl"``: every sample on the LSL stream ``[trigger] stream`` (any type, any content: the
  scanner bridge, a trigger-box app, the simulator) is one trigger, at the sample's time stamp.
* ``"key"``: the key ``[trigger] key`` typed into the display window (``5`` is what most
  fibre-optic trigger boxes send), at the LSL time the display reads the key event (within a
  display tick, at most :data:`bci.nodes.display.IDLE_POLL_MS`, after the key).
* ``"none"``: free-running; each run starts one TR after the display asks for it (a scanner
  started then has acquired its first volume by that time).

A run starts on the first trigger stamped at or after the moment the display asked for the run
(older triggers, a scanner's test volumes, do not start it).
"""

from __future__ import annotations

import pylsl

from bci.config import SessionConfig
from bci.lsl.streams import (
    MARKER_PROCESSING,
    open_inlet,
    pull_markers,
    resolve,
    trigger_query,
)


class TriggerListener:
    """Collects trigger times from the configured source (see the module docstring).

    Parameters
    ----------
    config : SessionConfig
        Validated session config; uses ``[trigger]`` and ``[acquire] resolve_timeout_s``.
    """

    def __init__(self, config: SessionConfig) -> None:
        trigger = config.trigger
        self.source: str = trigger.source
        self.key: str = trigger.key
        self.timeout_s = float(config.acquire.resolve_timeout_s)
        self.query = trigger_query(config)
        self.inlet: pylsl.StreamInlet | None = None
        self._pending: list[float] = []
        self.count = 0

    def open(self) -> None:
        """Connect to the trigger stream (``source = "lsl"``); raises StreamNotFoundError."""
        if self.source == "lsl":
            info = resolve(self.query, self.timeout_s)
            self.inlet = open_inlet(info, processing=MARKER_PROCESSING)

    def key_pressed(self, text: str, t: float) -> bool:
        """A key typed at LSL time ``t``; returns whether it is a trigger."""
        if self.source == "key" and text == self.key:
            self._pending.append(float(t))
            return True
        return False

    def poll(self) -> list[float]:
        """The triggers that came since the last poll (LSL times, in order)."""
        times = self._pending
        self._pending = []
        if self.inlet is not None:
            times = times + [t for _, t in pull_markers(self.inlet)]
        self.count += len(times)
        return sorted(times)

    def close(self) -> None:
        self.inlet = None
