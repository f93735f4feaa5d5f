"""Read a recording file, whatever made it: XDF through pyxdf, anything else through MNE.

>>> rec = read_recording("session-01.xdf")          # doctest: +SKIP
>>> [s.name for s in rec.data_streams()], rec.skipped  # doctest: +SKIP

See :mod:`bci.io.streams` for what a :class:`Recording` holds, :mod:`bci.io.xdf` and
:mod:`bci.io.mne_read` for how each kind of file is read (clock synchronisation, units).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np

from bci.io.mne_read import read_mne
from bci.io.streams import RecordedStream, Recording, as_path
from bci.io.xdf import XDF_SUFFIXES, is_xdf, read_xdf

__all__ = ["RecordedStream", "Recording", "read_recording", "read_recording_parts"]


def read_recording(path: str | Path) -> Recording:
    """Read the streams of a recording file.

    Parameters
    ----------
    path : str or Path
        An XDF file (``.xdf``, ``.xdfz``, ``.xdf.gz``, or any file starting with the XDF
        magic bytes), read with pyxdf with clock synchronisation, clock-reset handling and
        dejittering of regular-rate streams; or any file :func:`mne.io.read_raw` reads (FIF,
        EDF, BDF, BrainVision ``.vhdr``, ...), read as a data stream and an annotation
        marker stream.

    Returns
    -------
    Recording
        The usable streams, and in ``skipped`` the ones that are not, each with a reason.

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    ValueError
        If the file cannot be read (``cannot read x.dat with MNE: Unsupported file type``).
    """
    path = as_path(path)
    if not path.exists():
        raise FileNotFoundError(f"no recording file {str(path)!r}")
    if path.is_dir() and not path.name.lower().endswith(".ds"):
        raise ValueError(f"{path.name} is a folder, not a recording file")
    if path.name.lower().endswith(XDF_SUFFIXES) or is_xdf(path):
        return read_xdf(path)
    return read_mne(path)


def recording_parts(path: str | Path) -> list[Path]:
    """An XDF file and, beside it, its continuations, in order.

    A session whose record node was restarted, or that was resumed, goes on recording into
    ``recording-2.xdf``, ``recording-3.xdf``, ... beside ``recording.xdf``. For the first part
    (a name without ``-N``) this returns it and each continuation up to the first missing
    number; for any other file, that file alone.
    """
    path = as_path(path)
    match = re.fullmatch(r"(.+)(\.xdf)", path.name, flags=re.IGNORECASE)
    if match is None or re.search(r"-\d+$", match[1]):
        return [path]
    parts, k = [path], 2
    while (part := path.with_name(f"{match[1]}-{k}{match[2]}")).is_file():
        parts.append(part)
        k += 1
    return parts


def read_recording_parts(path: str | Path) -> Recording:
    """Read a recording and its continuations (:func:`recording_parts`) as one recording.

    The streams of every part are listed in file order (a stream recorded in two parts is two
    streams of the same name; :func:`bci.io.streams.merge_streams` makes them one), without the
    samples an earlier part holds already (a restarted record node's LabRecorder starts while
    the old one still records: the stamps of a stream go on from the earlier part's last), and
    so are the skipped ones; ``path`` and ``info`` are the first part's.
    """
    parts = [read_recording(p) for p in recording_parts(path)]
    first = parts[0]
    if len(parts) > 1:
        first.info["parts"] = ", ".join(p.path.name for p in parts)
    streams: list[RecordedStream] = []
    for part in parts:
        last: dict[str, float] = {}
        for s in streams:
            if s.n_samples:
                last[s.name] = max(last.get(s.name, -np.inf), float(s.time_stamps.max()))
        streams += [_after(s, last.get(s.name, -np.inf)) for s in part.streams]
    return Recording(
        path=first.path,
        streams=[s for s in streams if s.n_samples or len(parts) == 1],
        skipped=[s for part in parts for s in part.skipped],
        info=first.info,
    )


IRREGULAR_TOLERANCE_S = 1e-3
"""The stamps of one sample in two files differ by the files' clock-offset estimates (tens of
microseconds on one machine, measured): a later file's sample this close to an earlier file's
last, or before it, is one both recorded. Half a sample period for a regular stream; this for an
irregular one (markers come milliseconds apart or more)."""


def _after(stream: RecordedStream, t: float) -> RecordedStream:
    """``stream`` without the samples stamped at or before ``t`` (a restarted record node's file
    begins with what the previous LabRecorder, still recording then, has too)."""
    rate = stream.nominal_srate
    keep = stream.time_stamps > t + (0.5 / rate if rate > 0 else IRREGULAR_TOLERANCE_S)
    if keep.all():
        return stream
    data = (
        stream.data[keep]
        if isinstance(stream.data, np.ndarray)
        else [row for row, k in zip(stream.data, keep, strict=True) if k]
    )
    return dataclasses.replace(stream, time_stamps=stream.time_stamps[keep], data=data)
