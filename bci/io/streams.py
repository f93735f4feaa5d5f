"""What a recording holds: its streams (:class:`RecordedStream`) in one :class:`Recording`.

The readers (:mod:`bci.io.xdf` for LabRecorder files, :mod:`bci.io.mne_read` for anything MNE
reads) both produce these, so the MNE export and the replay player do not care where a
recording came from.

Conventions
-----------
* ``time_stamps`` are seconds on one clock shared by all streams of a file (for XDF the
  LSL clock of the recording machine after pyxdf's clock synchronisation; for MNE files the
  seconds since the start of the measurement).
* Numeric streams hold an ``np.ndarray`` of shape ``(n_samples, n_channels)`` in the stream's
  own dtype (``int16`` stays ``int16``). String streams hold a ``list`` of samples, each a
  ``list[str]`` of ``n_channels`` strings, the layout pyxdf reads and ``pylsl`` pushes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CHANNEL_FORMATS",
    "MARKER_TYPES",
    "NUMERIC_DTYPES",
    "RecordedStream",
    "Recording",
    "check_stream",
    "default_labels",
    "merge_streams",
]

NUMERIC_DTYPES: dict[str, np.dtype] = {
    "float32": np.dtype(np.float32),
    "double64": np.dtype(np.float64),
    "int64": np.dtype(np.int64),
    "int32": np.dtype(np.int32),
    "int16": np.dtype(np.int16),
    "int8": np.dtype(np.int8),
}
"""LSL channel format name -> numpy dtype of a numeric stream's data."""
CHANNEL_FORMATS = (*NUMERIC_DTYPES, "string")
"""Every LSL channel format a :class:`RecordedStream` can have."""
MARKER_TYPES = ("markers",)
"""Stream types (lower case) that make a stream a marker stream whatever its format."""


def default_labels(n_channels: int) -> list[str]:
    """Labels for a stream that does not name its channels: ``ch00``, ``ch01``, ..."""
    width = max(2, len(str(max(n_channels - 1, 0))))
    return [f"ch{i:0{width}d}" for i in range(n_channels)]


@dataclass
class RecordedStream:
    """One recorded stream: its LSL identity and its samples.

    Attributes
    ----------
    name, type, source_id : str
        The stream's LSL identity (``source_id`` may be empty).
    channel_format : str
        LSL format: ``"float32"``, ``"double64"``, ``"int64"``, ``"int32"``, ``"int16"``,
        ``"int8"`` or ``"string"``.
    nominal_srate : float
        Nominal rate in Hz; 0 for an irregular stream.
    channel_labels : list of str
        One label per channel (``ch00``, ``ch01``, ... when the file names none).
    time_stamps : ndarray of shape (n_samples,), float64
        Seconds, non-decreasing, on the clock shared by all streams of the file.
    data : ndarray of shape (n_samples, n_channels), or list of list of str
        The samples: a numeric array in the format's dtype, or for a string stream one list
        of ``n_channels`` strings per sample.
    desc : dict
        Flattened metadata: for XDF the header fields ``uid``, ``hostname``, ``session_id``,
        ``created_at``, ``version``, ``effective_srate``, ``xdf_stream_id`` and the ``<desc>``
        element as ``"desc/<path>"`` keys (``"desc/manufacturer"``,
        ``"desc/acquisition/model"``; repeated elements get ``[i]``), except its channel list,
        of which the per-channel ``type`` and ``unit`` are kept as the lists
        ``"channel_types"`` / ``"channel_units"`` when the file gives them.
    """

    name: str
    type: str
    source_id: str
    channel_format: str
    nominal_srate: float
    channel_labels: list[str]
    time_stamps: np.ndarray
    data: np.ndarray | list[list[str]]
    desc: dict[str, Any] = field(default_factory=dict)

    @property
    def n_channels(self) -> int:
        """Number of channels."""
        return len(self.channel_labels)

    @property
    def n_samples(self) -> int:
        """Number of samples."""
        return len(self.time_stamps)

    @property
    def is_numeric(self) -> bool:
        """Whether the samples are numbers (any format but ``"string"``)."""
        return self.channel_format != "string"

    @property
    def is_marker(self) -> bool:
        """Whether this is a marker stream: a string stream, or one of type ``Markers``."""
        return not self.is_numeric or self.type.lower() in MARKER_TYPES

    @property
    def duration_s(self) -> float:
        """Seconds from the first to the last sample (0 for fewer than two samples)."""
        if self.n_samples < 2:
            return 0.0
        return float(self.time_stamps[-1] - self.time_stamps[0])

    def describe(self) -> str:
        """``'BioSemi' (EEG, 8 x float32 at 100 Hz)``: how messages name the stream."""
        rate = f"{self.nominal_srate:g} Hz" if self.nominal_srate > 0 else "irregular rate"
        return f"{self.name!r} ({self.type}, {self.n_channels} x {self.channel_format} at {rate})"


@dataclass
class Recording:
    """The usable streams of a recording file, and the ones that were not usable.

    Attributes
    ----------
    path : Path
        The file read.
    streams : list of RecordedStream
        The usable streams, in file order.
    skipped : list of (str, str)
        ``(stream description, one-line reason)`` for each stream that could not be used.
    info : dict
        File-level metadata (the XDF file header fields, the MNE measurement date, ...).
    """

    path: Path
    streams: list[RecordedStream] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def data_streams(self) -> list[RecordedStream]:
        """The numeric streams that are not marker streams."""
        return [s for s in self.streams if not s.is_marker]

    def marker_streams(self) -> list[RecordedStream]:
        """The marker streams: string streams and streams of type ``Markers``."""
        return [s for s in self.streams if s.is_marker]

    @property
    def names(self) -> list[str]:
        """The usable streams' names."""
        return [s.name for s in self.streams]

    def stream(self, name: str) -> RecordedStream:
        """The usable stream called ``name`` (the first one if several are).

        Raises
        ------
        KeyError
            Naming the streams the recording has.
        """
        for s in self.streams:
            if s.name == name:
                return s
        available = ", ".join(repr(n) for n in self.names) or "none"
        raise KeyError(f"no stream {name!r} in {self.path.name}; streams: {available}")

    @property
    def t_first(self) -> float:
        """Time stamp of the earliest sample of any stream (nan when there is none)."""
        starts = [s.time_stamps[0] for s in self.streams if s.n_samples]
        return float(min(starts)) if starts else float("nan")

    @property
    def t_last(self) -> float:
        """Time stamp of the latest sample of any stream (nan when there is none)."""
        ends = [s.time_stamps[-1] for s in self.streams if s.n_samples]
        return float(max(ends)) if ends else float("nan")

    @property
    def duration_s(self) -> float:
        """Seconds from the earliest to the latest sample of any stream."""
        return self.t_last - self.t_first if self.streams else 0.0


def check_stream(stream: RecordedStream) -> str | None:
    """Why ``stream`` cannot be used, in one line, or None if it can.

    Checks the format, the channel count, that there are samples, that the data and the time
    stamps agree in shape and that the time stamps are finite.
    """
    if stream.channel_format not in CHANNEL_FORMATS:
        return (
            f"channel format {stream.channel_format!r} is not understood "
            f"(known: {', '.join(CHANNEL_FORMATS)})"
        )
    if stream.n_channels <= 0:
        return "it has no channels"
    if not np.isfinite(stream.nominal_srate) or stream.nominal_srate < 0:
        return f"nominal rate {stream.nominal_srate} is not a rate"
    n = stream.n_samples
    if n == 0:
        return "it has no samples"
    if stream.time_stamps.ndim != 1:
        return f"time stamps have shape {stream.time_stamps.shape}, expected ({n},)"
    if not np.isfinite(stream.time_stamps).all():
        return "it has non-finite time stamps"
    if stream.is_numeric:
        shape = getattr(stream.data, "shape", None)
        if shape != (n, stream.n_channels):
            return f"data has shape {shape}, expected ({n}, {stream.n_channels})"
    else:
        if len(stream.data) != n:
            return f"{len(stream.data)} string samples for {n} time stamps"
        bad = next((i for i, s in enumerate(stream.data) if len(s) != stream.n_channels), None)
        if bad is not None:
            n_values = len(stream.data[bad])
            return f"string sample {bad} has {n_values} values for {stream.n_channels} channels"
    return None


def merge_streams(streams: list[RecordedStream]) -> RecordedStream:
    """One stream holding the samples of ``streams``, in time order.

    A source restarted between two runs (a scanner bridge started again, with a new source_id
    or on a new host) is recorded as a new stream; merged, the runs are one stream again, with
    the pause between them. Identity, labels and metadata are the first stream's.

    Raises
    ------
    ValueError
        The streams differ in channel count or format.
    """
    first = streams[0]
    for other in streams[1:]:
        if (other.n_channels, other.channel_format) != (first.n_channels, first.channel_format):
            raise ValueError(
                f"cannot merge {other.describe()} into {first.describe()}: "
                "channel count or format differ"
            )
    if len(streams) == 1:
        return first
    stamps = np.concatenate([s.time_stamps for s in streams])
    order = np.argsort(stamps, kind="stable")
    if first.is_numeric:
        data: np.ndarray | list[list[str]] = np.concatenate([s.data for s in streams])[order]
    else:
        joined = [sample for s in streams for sample in s.data]
        data = [joined[i] for i in order]
    desc = {**first.desc, "merged_streams": len(streams)}
    return RecordedStream(
        first.name,
        first.type,
        first.source_id,
        first.channel_format,
        first.nominal_srate,
        list(first.channel_labels),
        stamps[order],
        data,
        desc,
    )


def as_path(path: str | Path) -> Path:
    """``path`` as a :class:`Path` (``~`` expanded)."""
    return Path(path).expanduser()
