"""Count the samples an XDF file holds from its chunk headers, also while LabRecorder writes it.

An XDF file is a magic code (``XDF:``) and a sequence of chunks: a variable-length length, a
2-byte tag, the content (format: https://github.com/sccn/xdf/wiki/Specifications). A stream's
header chunk (tag 2) names it; each samples chunk (tag 3) starts with its stream id and its
number of samples. :class:`XdfScan` reads the complete chunks only, from where it stopped last
time, so it can follow a file that is still being written (the record node watches LabRecorder's
file with it until every sample sent is on disk, see :mod:`bci.io.labrecorder`).
:func:`cut_incomplete_chunk` removes a last chunk that a process killed while writing left half
written.
"""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
from pathlib import Path

MAGIC = b"XDF:"
STREAM_HEADER, SAMPLES = 2, 3
_LENGTH_BYTES = {1: "<B", 4: "<I", 8: "<Q"}


def _varlen(buf: bytes | memoryview, i: int) -> tuple[int, int] | None:
    """The variable-length integer at ``buf[i]`` and the index after it (None: incomplete)."""
    if i >= len(buf):
        return None
    size = buf[i]
    fmt = _LENGTH_BYTES.get(size)
    if fmt is None:
        raise ValueError(f"bad XDF length byte {size} at byte {i}")
    if i + 1 + size > len(buf):
        return None
    return struct.unpack_from(fmt, buf, i + 1)[0], i + 1 + size


class XdfScan:
    """Samples per stream name in an XDF file, read incrementally from its complete chunks.

    Parameters
    ----------
    path : str | Path
        The file (it may not exist yet, or be growing).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.end = 0
        """Bytes of the file that are whole chunks (after the magic code), read so far."""
        self.names: dict[int, str] = {}
        self.samples: dict[int, int] = {}

    def update(self) -> dict[str, int]:
        """Read the chunks completed since the last call; return samples per stream name.

        Raises
        ------
        ValueError
            The file is not XDF, or a chunk header is malformed.
        """
        try:
            with open(self.path, "rb") as f:
                f.seek(self.end)
                buf = f.read()
        except FileNotFoundError:
            return self.counts()
        i = 0
        if self.end == 0:
            if len(buf) < len(MAGIC):
                return self.counts()
            if buf[: len(MAGIC)] != MAGIC:
                raise ValueError(f"{self.path.name} is not an XDF file")
            i = len(MAGIC)
        view = memoryview(buf)
        while (head := _varlen(view, i)) is not None:
            length, start = head
            if length < 2 or start + length > len(view):
                break
            (tag,) = struct.unpack_from("<H", view, start)
            content = view[start + 2 : start + length]
            if tag == STREAM_HEADER and len(content) >= 4:
                sid = struct.unpack_from("<I", content)[0]
                self.names[sid] = _stream_name(bytes(content[4:]))
            elif tag == SAMPLES and len(content) >= 4:
                sid = struct.unpack_from("<I", content)[0]
                n = _varlen(content, 4)
                if n is not None:
                    self.samples[sid] = self.samples.get(sid, 0) + n[0]
            i = start + length
        self.end += i
        return self.counts()

    def counts(self) -> dict[str, int]:
        """Samples per stream name so far (streams with the same name are added up)."""
        out: dict[str, int] = {}
        for sid, name in self.names.items():
            out[name] = out.get(name, 0) + self.samples.get(sid, 0)
        return out


def _stream_name(xml: bytes) -> str:
    try:
        return (ET.fromstring(xml.decode("utf-8", "replace")).findtext("name") or "").strip()
    except ET.ParseError:
        return ""


def cut_incomplete_chunk(path: str | Path) -> int:
    """Truncate ``path`` after its last whole chunk; return the bytes removed (0 if none)."""
    scan = XdfScan(path)
    scan.update()
    size = Path(path).stat().st_size
    whole = scan.end
    if 0 < whole < size:
        with open(path, "r+b") as f:
            f.truncate(whole)
        return size - whole
    return 0
