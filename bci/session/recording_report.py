"""Did the recording keep every sample? (``summary["recording"]``).

Every LSL outlet of a session counts the samples it pushes (:mod:`bci.lsl.counting_outlet`) and
reports them in its node's heartbeats; the record node reports the XDF file it records into.
After the session this report reads the file and compares, stream by stream, the samples sent
with the samples recorded. A stream with fewer samples in the file than were sent, a recording
that is missing or cannot be read: each is an error of the session (unless ``[record] optional``).

A record node that died and was restarted (``[session] restart``) records on into a new file,
``recording-2.xdf``: the counts are over every file of the session and every run of every node,
and a loss names the files and the time between them that no file holds.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pyxdf

from bci.config import SessionConfig


def samples_sent(
    statuses: dict[str, dict], past: dict[str, list[dict]] | None = None
) -> dict[str, int]:
    """Samples pushed per LSL stream name, from every node's last heartbeat, and from the last
    heartbeat of each earlier run of a restarted node (``past``)."""
    sent: Counter[str] = Counter()
    runs = [*statuses.values(), *(s for earlier in (past or {}).values() for s in earlier)]
    for status in runs:
        for name, n in (status.get("lsl_sent") or {}).items():
            sent[str(name)] += int(n)
    return dict(sent)


def samples_recorded(path: Path) -> dict[str, tuple[int, float, float]]:
    """Per stream name in an XDF file: samples, first and last stamp (raw: no clock processing;
    NaN stamps for a stream without samples)."""
    streams, _ = pyxdf.load_xdf(
        str(path),
        synchronize_clocks=False,
        handle_clock_resets=False,
        dejitter_timestamps=False,
    )
    out: dict[str, tuple[int, float, float]] = {}
    for stream in streams:
        name = stream["info"]["name"][0]
        stamps = np.asarray(stream["time_stamps"], float)
        n, first, last = out.get(name, (0, math.inf, -math.inf))
        if stamps.size:
            first, last = min(first, stamps.min()), max(last, stamps.max())
        out[name] = (n + stamps.size, first, last)
    return {k: (n, a if n else math.nan, b if n else math.nan) for k, (n, a, b) in out.items()}


def recording_files(statuses: dict[str, dict], past: dict[str, list[dict]] | None) -> list[str]:
    """The XDF files the record node wrote in this session, in order (one per run of it)."""
    runs = [*(past or {}).get("record", []), statuses.get("record") or {}]
    files = [str(s["xdf"]) for s in runs if s.get("xdf")]
    return list(dict.fromkeys(files))


def recording_report(
    out: str | Path,
    config: SessionConfig,
    statuses: dict[str, dict],
    past: dict[str, list[dict]] | None = None,
) -> tuple[dict, list]:
    """Compare what was sent with what the session's ``recording*.xdf`` files hold.

    Parameters
    ----------
    out : str | Path
        The session folder.
    config : SessionConfig
        The session's validated config.
    statuses : dict
        Each node's last heartbeat (:attr:`SessionResult.statuses`).
    past : dict, optional
        Per restarted node, the last heartbeat of each of its earlier runs
        (:attr:`SessionResult.past_statuses`): what they sent counts too, and a restarted record
        node records into a new file (``recording-2.xdf``, ...).

    Returns
    -------
    (dict, list of str)
        ``{"file", "files", "streams": {name: {"sent", "recorded"}}, "samples_lost"}``, with
        ``gaps_s`` (seconds between one file's last sample and the next one's first, of the
        stream that lost most) when there are several files; empty when XDF recording is off.
        And the one-line errors (an empty list when nothing was lost).
    """
    if not config.record.xdf:
        return {}, []
    names = recording_files(statuses, past)
    if not names:
        return {"file": None, "files": [], "streams": {}, "samples_lost": None}, [
            "no XDF recording was made (see logs/record.log)"
        ]
    parts = []
    for name in names:
        try:
            parts.append(samples_recorded(Path(out) / name))
        except Exception as err:  # pyxdf raises anything on a damaged file
            detail = " ".join(str(err).split()) or type(err).__name__
            return {"file": names[0], "files": names, "streams": {}, "samples_lost": None}, [
                f"{name} cannot be read: {detail}"
            ]
    recorded: Counter[str] = Counter()
    for part in parts:
        recorded.update({stream: n for stream, (n, _, _) in part.items()})
    sent = samples_sent(statuses, past)
    streams = {
        stream: {"sent": sent.get(stream, 0), "recorded": recorded.get(stream, 0)}
        for stream in sorted(set(sent) | set(recorded))
    }
    report = {"file": names[0], "files": names, "streams": streams}
    where, why = names[0], ""
    if len(parts) > 1:
        lost = {n: c["sent"] - c["recorded"] for n, c in streams.items()}
        gaps = [_gap(a, b, lost) for a, b in zip(parts, parts[1:], strict=False)]
        report["gaps_s"] = [round(g, 3) for g in gaps]
        where = " + ".join(names)
        why = (
            f" (the record node restarted: {len(names)} files, with "
            + ", ".join(
                f"{g:.2f} s unrecorded before {n}" for g, n in zip(gaps, names[1:], strict=True)
            )
            + ")"
        )
    errors = [
        f"{where} lost {c['sent'] - c['recorded']} of {c['sent']} samples of stream {stream!r}{why}"
        for stream, c in streams.items()
        if c["recorded"] < c["sent"]
    ]
    report["samples_lost"] = sum(max(0, c["sent"] - c["recorded"]) for c in streams.values())
    return report, errors


def _gap(before: dict, after: dict, lost: dict[str, int]) -> float:
    """Seconds between one file and the next: from the last sample in one to the first in the
    next, of the stream that lost the most samples (of the stream with the most samples when
    none did: the derived streams carry the stamps of what they derive from, not of when they
    were pushed); 0 if they overlap."""
    both = [n for n in before if n in after and before[n][0] and after[n][0]]
    if not both:
        return 0.0
    key = max(both, key=lambda n: (lost.get(n, 0), before[n][0] + after[n][0]))
    return max(after[key][1] - before[key][2], 0.0)
