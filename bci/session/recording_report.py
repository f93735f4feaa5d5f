"""Did the recording keep every sample? (``summary["recording"]``).

Every LSL outlet of a session counts the samples it pushes (:mod:`bci.lsl.counting_outlet`) and
reports them in its node's heartbeats; the record node reports the XDF file it records into.
After the session this report reads the file and compares, stream by stream, the samples sent
with the samples recorded. A stream with fewer samples in the file than were sent, a recording
that is missing or cannot be read: each is an error of the session (unless ``[record] optional``).

A record node that died and was restarted (``[session] restart``) records on into a new file,
``recording-2.xdf``: the counts are over every file of the session and every run of every node
(a sample both files hold, recorded while the old LabRecorder still ran, counts once), and a
loss names the files and the time between them that no file holds.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

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


def samples_recorded(path: Path) -> dict[str, tuple[np.ndarray, Any]]:
    """Per stream name in an XDF file: its raw stamps (no clock processing) and its samples
    (streams of the same name concatenated)."""
    streams, _ = pyxdf.load_xdf(
        str(path),
        synchronize_clocks=False,
        handle_clock_resets=False,
        dejitter_timestamps=False,
    )
    out: dict[str, tuple[np.ndarray, Any]] = {}
    for stream in streams:
        name = stream["info"]["name"][0]
        stamps = np.asarray(stream["time_stamps"], float)
        data = stream["time_series"]
        if name in out:
            before, values = out[name]
            stamps = np.concatenate([before, stamps])
            data = (
                np.concatenate([values, data])
                if isinstance(data, np.ndarray) and isinstance(values, np.ndarray)
                else [*values, *data]
            )
        out[name] = (stamps, data)
    return out


def _row(data: Any, i: int) -> Any:
    return data[i].tobytes() if isinstance(data, np.ndarray) else tuple(data[i])


def _new_samples(part: dict, earlier: dict) -> dict[str, int]:
    """Per stream, the samples of ``part`` that no earlier file holds: while a restarted record
    node's LabRecorder starts, the old one still records, and both files hold those samples
    (the same raw stamp and values)."""
    out = {}
    for name, (stamps, data) in part.items():
        prev = earlier.get(name)
        if prev is None or not stamps.size or not prev[0].size:
            out[name] = int(stamps.size)
            continue
        prev_stamps, prev_data = prev
        known = {
            (prev_stamps[i], _row(prev_data, i))
            for i in np.flatnonzero(prev_stamps >= stamps.min())
        }
        again = sum(
            (stamps[i], _row(data, i)) in known for i in np.flatnonzero(stamps <= prev_stamps.max())
        )
        out[name] = int(stamps.size) - again
    return out


def _span(part: dict) -> dict[str, tuple[int, float, float]]:
    return {
        n: (t.size, float(t.min()) if t.size else math.nan, float(t.max()) if t.size else math.nan)
        for n, (t, _) in part.items()
    }


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
    earlier: dict = {}
    for part in parts:
        recorded.update(_new_samples(part, earlier))
        for name, (stamps, data) in part.items():
            if name in earlier:
                before, values = earlier[name]
                merged = (
                    np.concatenate([values, data])
                    if isinstance(data, np.ndarray) and isinstance(values, np.ndarray)
                    else [*values, *data]
                )
                earlier[name] = (np.concatenate([before, stamps]), merged)
            else:
                earlier[name] = (stamps, data)
    spans = [_span(part) for part in parts]
    sent = samples_sent(statuses, past)
    streams = {
        stream: {"sent": sent.get(stream, 0), "recorded": recorded.get(stream, 0)}
        for stream in sorted(set(sent) | set(recorded))
    }
    report = {"file": names[0], "files": names, "streams": streams}
    where, why = names[0], ""
    if len(parts) > 1:
        lost = {n: c["sent"] - c["recorded"] for n, c in streams.items()}
        gaps = [_gap(a, b, lost) for a, b in zip(spans, spans[1:], strict=False)]
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
