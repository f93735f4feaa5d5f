"""Stimulus markers: what the display pushes on its LSL marker stream at each flip.

A marker is one LSL string sample holding a small JSON object, e.g.
``{"event": "stimulus", "trial": 3, "stimulus": "face-0012", "phase": "train"}``, stamped with
the LSL time of the flip. JSON keeps markers readable in LabRecorder files and in MNE
annotations while carrying the trial index that the pipeline needs.
"""

from __future__ import annotations

import json
import math
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


MAX_MARKER_CHARS = 4096
"""Longest marker string :func:`decode_marker` reads (ours are well under 200 characters)."""
MAX_INDEX = 2**53 - 1
"""Largest index a marker may carry (exact in JSON and in msgpack; a console may number its
volume files with a date and time)."""
MAX_NAME_CHARS = 256
INDEX_FIELDS = ("trial", "run", "trials", "volume", "volumes")
"""Fields that, when present, are whole numbers in ``[0, MAX_INDEX]``."""
NAME_FIELDS = ("stimulus", "phase", "source")
"""Fields that, when present, are strings of at most ``MAX_NAME_CHARS`` that UTF-8 can encode."""


def _refuse_constant(name: str) -> None:
    raise ValueError(f"marker holds {name}")


def decode_marker(text: str) -> dict[str, Any]:
    """Parse a marker string; raise ValueError with a one-line reason if it is not one of ours.

    Besides the JSON and its ``event``, the fields the pipeline reads are checked (a marker
    stream may be a stranger's, or come from a hostile recording): :data:`INDEX_FIELDS` are whole
    numbers in ``[0, MAX_INDEX]``, :data:`NAME_FIELDS` short strings, ``tr_s`` a finite number;
    NaN and Infinity are refused, and so is a marker longer than :data:`MAX_MARKER_CHARS`.
    """
    if isinstance(text, str) and len(text) > MAX_MARKER_CHARS:
        raise ValueError(f"marker of {len(text)} characters (at most {MAX_MARKER_CHARS})")
    try:
        marker = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, TypeError, RecursionError):  # JSONDecodeError is a ValueError
        raise ValueError(f"marker is not JSON: {str(text)[:60]!r}") from None
    if not isinstance(marker, dict) or marker.get("event") not in EVENTS:
        raise ValueError(f"marker has no known 'event': {str(text)[:60]!r}")
    for key in INDEX_FIELDS:
        value = marker.get(key)
        if value is not None and not (type(value) is int and 0 <= value <= MAX_INDEX):
            raise ValueError(f"marker field {key!r} is not an index: {str(value)[:40]!r}")
    for key in NAME_FIELDS:
        value = marker.get(key)
        if value is not None and not (
            type(value) is str and len(value) <= MAX_NAME_CHARS and _encodable(value)
        ):
            raise ValueError(f"marker field {key!r} is not a name: {str(value)[:40]!r}")
    tr_s = marker.get("tr_s")
    if tr_s is not None and not (type(tr_s) in (int, float) and math.isfinite(tr_s)):
        raise ValueError(f"marker field 'tr_s' is not a number: {str(tr_s)[:40]!r}")
    return marker


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: it could not travel on the bus
        return False
    return True
