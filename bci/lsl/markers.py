"""Stimulus markers: what the display pushes on its LSL marker stream at each flip.

A marker is one LSL string sample holding a small JSON object, e.g.
``{"event": "stimulus", "trial": 3, "stimulus": "face-0012", "phase": "train"}``, stamped with
the LSL time of the flip. JSON keeps markers readable in LabRecorder files and in MNE
annotations while carrying the trial index that the pipeline needs.
"""

from __future__ import annotations

import json
from typing import Any

MARKER_STREAM_TYPE = "Markers"
EVENTS = ("stimulus", "blank", "reconstruction", "phase", "run", "trigger")
"""``run``: a scanner run began (stamped with its first trigger; ``run``, ``phase``, ``trials``,
``volumes``, ``tr_s``); ``trigger``: a scanner trigger (one per volume; the simulator's trigger
stream and a keyboard trigger write these, with ``run`` and ``volume`` when known)."""


def encode_marker(event: str, **fields: Any) -> str:
    """Return the marker string for ``event`` with ``fields`` (JSON, compact, keys sorted)."""
    if event not in EVENTS:
        raise ValueError(f"unknown marker event {event!r}; events: {', '.join(EVENTS)}")
    return json.dumps({"event": event, **fields}, separators=(",", ":"), sort_keys=True)


def decode_marker(text: str) -> dict[str, Any]:
    """Parse a marker string; raise ValueError with a one-line reason if it is not one of ours."""
    try:
        marker = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        raise ValueError(f"marker is not JSON: {str(text)[:60]!r}") from None
    if not isinstance(marker, dict) or marker.get("event") not in EVENTS:
        raise ValueError(f"marker has no known 'event': {str(text)[:60]!r}")
    return marker
