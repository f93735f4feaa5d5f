"""A tiny XDF 1.0 writer for tests (not part of the package).

Layout written (all integers little-endian):

* the magic ``XDF:``;
* chunks ``[NumLengthBytes: 1, 4 or 8][Length: uint of that size][Tag: uint16][Content]``,
  ``Length`` counting the tag and the content;
* a FileHeader (tag 1, XML), a StreamHeader (tag 2: StreamId uint32 + XML) per stream, then
  Samples chunks (tag 3: StreamId, a variable-length NumSamples, then per sample
  ``[TimeStampBytes 8][double]`` and the values: numbers packed in the channel format,
  strings each as a variable-length byte count and UTF-8 bytes), interleaved in time
  order, ClockOffset chunks (tag 4: StreamId, CollectionTime double, OffsetValue double) and a
  StreamFooter (tag 6: StreamId + XML) per stream.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

DTYPES = {
    "float32": "<f4",
    "double64": "<f8",
    "int64": "<i8",
    "int32": "<i4",
    "int16": "<i2",
    "int8": "<i1",
}


@dataclass
class XdfStream:
    """One stream to write; ``data`` is ``(n, n_channels)`` numbers or a list of string lists."""

    name: str
    type: str
    channel_format: str
    nominal_srate: float
    time_stamps: np.ndarray
    data: np.ndarray | list[list[str]]
    source_id: str = ""
    labels: list[str] | None = None
    units: list[str] | None = None
    channel_count: int | None = None
    desc_xml: str = ""
    clock_offsets: list[tuple[float, float]] = field(default_factory=list)
    chunk_samples: int = 4


def _varlen(value: int) -> bytes:
    if value < 256:
        return struct.pack("<BB", 1, value)
    if value < 2**32:
        return struct.pack("<BI", 4, value)
    return struct.pack("<BQ", 8, value)


def _chunk(tag: int, content: bytes) -> bytes:
    return _varlen(len(content) + 2) + struct.pack("<H", tag) + content


def _header_xml(s: XdfStream) -> bytes:
    n_channels = s.channel_count if s.channel_count is not None else _n_channels(s)
    channels = ""
    if s.labels is not None:
        parts = []
        for i, label in enumerate(s.labels):
            unit = f"<unit>{escape(s.units[i])}</unit>" if s.units else ""
            parts.append(f"<channel><label>{escape(label)}</label>{unit}</channel>")
        channels = "<channels>" + "".join(parts) + "</channels>"
    xml = (
        '<?xml version="1.0"?><info>'
        f"<name>{escape(s.name)}</name><type>{escape(s.type)}</type>"
        f"<channel_count>{n_channels}</channel_count>"
        f"<nominal_srate>{s.nominal_srate!r}</nominal_srate>"
        f"<channel_format>{s.channel_format}</channel_format>"
        f"<source_id>{escape(s.source_id)}</source_id>"
        "<version>1.1</version><created_at>0</created_at>"
        f"<uid>uid-{escape(s.name)}</uid><session_id>default</session_id>"
        "<hostname>test-host</hostname>"
        f"<desc>{channels}{s.desc_xml}</desc></info>"
    )
    return xml.encode()


def _n_channels(s: XdfStream) -> int:
    if s.channel_format == "string":
        return len(s.data[0]) if len(s.data) else 1
    return int(np.asarray(s.data).shape[1])


def _samples(s: XdfStream, stream_id: int, i0: int, i1: int) -> bytes:
    out = [struct.pack("<I", stream_id), _varlen(i1 - i0)]
    for i in range(i0, i1):
        out.append(struct.pack("<Bd", 8, float(s.time_stamps[i])))
        if s.channel_format == "string":
            for value in s.data[i]:
                raw = value.encode()
                out.append(_varlen(len(raw)) + raw)
        else:
            out.append(np.asarray(s.data[i], dtype=DTYPES[s.channel_format]).tobytes())
    return b"".join(out)


def write_xdf(path: str | Path, streams: list[XdfStream]) -> Path:
    """Write ``streams`` (stream ids 1, 2, ...) into an XDF file at ``path``."""
    path = Path(path)
    parts = [b"XDF:", _chunk(1, b'<?xml version="1.0"?><info><version>1.0</version></info>')]
    for k, s in enumerate(streams, start=1):
        parts.append(_chunk(2, struct.pack("<I", k) + _header_xml(s)))
    # Samples chunks interleaved by the time of their first sample.
    pieces = []
    for k, s in enumerate(streams, start=1):
        n = len(s.time_stamps)
        for i0 in range(0, n, s.chunk_samples):
            pieces.append((float(s.time_stamps[i0]), k, i0, min(i0 + s.chunk_samples, n)))
    for _, k, i0, i1 in sorted(pieces):
        parts.append(_chunk(3, _samples(streams[k - 1], k, i0, i1)))
    for k, s in enumerate(streams, start=1):
        for t, value in s.clock_offsets:
            parts.append(_chunk(4, struct.pack("<Idd", k, t, value)))
    for k, s in enumerate(streams, start=1):
        n = len(s.time_stamps)
        first = float(s.time_stamps[0]) if n else 0.0
        last = float(s.time_stamps[-1]) if n else 0.0
        footer = (
            '<?xml version="1.0"?><info>'
            f"<first_timestamp>{first!r}</first_timestamp>"
            f"<last_timestamp>{last!r}</last_timestamp>"
            f"<sample_count>{n}</sample_count><clock_offsets/></info>"
        )
        parts.append(_chunk(6, struct.pack("<I", k) + footer.encode()))
    path.write_bytes(b"".join(parts))
    return path
