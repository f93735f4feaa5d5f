"""Did the recording keep every sample? (``summary["recording"]``).

Every LSL outlet of a session counts the samples it pushes (:mod:`bci.lsl.counting_outlet`) and
reports them in its node's heartbeats; the record node reports the XDF file it records into.
After the session this report reads the file and compares, stream by stream, the samples sent
with the samples recorded. A stream with fewer samples in the file than were sent, a recording
that is missing or cannot be read: each is an error of the session (unless ``[record] optional``).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyxdf

from bci.config import SessionConfig


def samples_sent(statuses: dict[str, dict]) -> dict[str, int]:
    """Samples pushed per LSL stream name, from every node's last heartbeat."""
    sent: Counter[str] = Counter()
    for status in statuses.values():
        for name, n in (status.get("lsl_sent") or {}).items():
            sent[str(name)] += int(n)
    return dict(sent)


def samples_recorded(path: Path) -> dict[str, int]:
    """Samples per stream name in an XDF file (raw counts: no clock processing)."""
    streams, _ = pyxdf.load_xdf(
        str(path),
        synchronize_clocks=False,
        handle_clock_resets=False,
        dejitter_timestamps=False,
    )
    counts: Counter[str] = Counter()
    for stream in streams:
        name = stream["info"]["name"][0]
        counts[name] += len(stream["time_stamps"])
    return dict(counts)


def recording_report(
    out: str | Path, config: SessionConfig, statuses: dict[str, dict]
) -> tuple[dict, list]:
    """Compare what was sent with what ``recording*.xdf`` holds.

    Parameters
    ----------
    out : str | Path
        The session folder.
    config : SessionConfig
        The session's validated config.
    statuses : dict
        Each node's last heartbeat (:attr:`SessionResult.statuses`).

    Returns
    -------
    (dict, list of str)
        ``{"file", "streams": {name: {"sent", "recorded"}}, "samples_lost"}`` (empty when XDF
        recording is off), and the one-line errors (an empty list when nothing was lost).
    """
    if not config.record.xdf:
        return {}, []
    name = (statuses.get("record") or {}).get("xdf")
    if not name:
        return {"file": None, "streams": {}, "samples_lost": None}, [
            "no XDF recording was made (see logs/record.log)"
        ]
    path = Path(out) / name
    try:
        recorded = samples_recorded(path)
    except Exception as err:  # pyxdf raises anything on a damaged file
        detail = " ".join(str(err).split()) or type(err).__name__
        return {"file": name, "streams": {}, "samples_lost": None}, [
            f"{name} cannot be read: {detail}"
        ]
    sent = samples_sent(statuses)
    streams = {
        stream: {"sent": sent.get(stream, 0), "recorded": recorded.get(stream, 0)}
        for stream in sorted(set(sent) | set(recorded))
    }
    errors = [
        f"{name} lost {c['sent'] - c['recorded']} of {c['sent']} samples of stream {stream!r}"
        for stream, c in streams.items()
        if c["recorded"] < c["sent"]
    ]
    lost = sum(max(0, c["sent"] - c["recorded"]) for c in streams.values())
    return {"file": name, "streams": streams, "samples_lost": lost}, errors
