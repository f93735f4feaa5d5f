"""The session's bus log: every message that crossed the bus, replayable offline.

Layout inside ``<session>/bus/``: ``messages.jsonl`` holds one JSON line per message (topic, kind,
seq, lsl_time, wall_time, meta, and for each array its dtype, shape, file and byte offset); the
array bytes are appended to ``<topic>.bin`` for the project's registered topics
(:data:`bci.bus.topics.DEFAULT_POLICIES`) and to ``other.bin`` for any other topic, so a topic
name never becomes a path and the number of open files stays bounded. Both files only ever
grow, and the writer flushes them at least every ``flush_s`` seconds, so a crash loses at most
that much.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from bci.bus import Message
from bci.bus.topics import DEFAULT_POLICIES

INDEX = "messages.jsonl"
OTHER_BLOB = "other.bin"
"""Array file of the topics that are not registered ones."""


def blob_name(topic: str) -> str:
    """The file (inside ``bus/``) that holds the arrays of ``topic``: never a path."""
    return f"{topic}.bin" if topic in DEFAULT_POLICIES else OTHER_BLOB


class BusLogWriter:
    """Append bus messages to a session's bus log.

    Parameters
    ----------
    folder : Path
        The ``bus/`` folder (created if needed).
    flush_s : float
        Longest time between flushes to disk.
    """

    def __init__(self, folder: str | Path, flush_s: float = 0.5) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / INDEX
        cut_short = path.is_file() and path.stat().st_size and not path.read_bytes().endswith(b"\n")
        self.index = open(path, "a", encoding="utf-8")  # noqa: SIM115
        if cut_short:  # a resumed session: end the line a crash cut short, keep the rest readable
            self.index.write("\n")
        self.blobs: dict[str, BinaryIO] = {}
        self.flush_s = flush_s
        self.last_flush = time.monotonic()
        self.count = 0

    def _blob(self, name: str) -> BinaryIO:
        if name not in self.blobs:
            self.blobs[name] = open(self.folder / name, "ab")  # noqa: SIM115
        return self.blobs[name]

    def write(self, msg: Message) -> None:
        """Append one message."""
        arrays = []
        if msg.arrays:
            name = blob_name(msg.topic)
            blob = self._blob(name)
            for array in msg.arrays:
                offset = blob.tell()
                blob.write(memoryview(np.ascontiguousarray(array)).cast("B"))
                arrays.append(
                    {
                        "dtype": array.dtype.str,
                        "shape": list(array.shape),
                        "file": name,
                        "offset": offset,
                    }
                )
        record = {
            "topic": msg.topic,
            "kind": msg.kind,
            "seq": msg.seq,
            "lsl_time": msg.lsl_time,
            "wall_time": msg.wall_time,
            "source": msg.source,
            "meta": msg.meta,
            "arrays": arrays,
        }
        self.index.write(json.dumps(record, default=_jsonable) + "\n")
        self.count += 1
        self.maybe_flush()

    def maybe_flush(self) -> None:
        """Flush if ``flush_s`` has passed since the last flush."""
        if time.monotonic() - self.last_flush >= self.flush_s:
            self.flush()

    def flush(self) -> None:
        """Push everything written so far to the operating system."""
        for blob in self.blobs.values():
            blob.flush()
        self.index.flush()
        self.last_flush = time.monotonic()

    def close(self) -> None:
        """Flush and close the files."""
        self.flush()
        for blob in self.blobs.values():
            blob.close()
        self.index.close()


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


@dataclass
class LoggedMessage:
    """One message read back from a bus log (arrays are read-only memory maps)."""

    topic: str
    kind: str
    seq: int
    lsl_time: float | None
    wall_time: float
    meta: dict
    arrays: list[np.ndarray] = field(default_factory=list)


def read_bus_log(folder: str | Path, topics: tuple[str, ...] | None = None) -> list[LoggedMessage]:
    """Read a bus log back, in the order it was written.

    Parameters
    ----------
    folder : str | Path
        The ``bus/`` folder.
    topics : tuple of str, optional
        Keep only these topics.

    Returns
    -------
    list of LoggedMessage
        A line cut short by a crash is left out; the lines after it (a resumed session's) are
        read on.
    """
    folder = Path(folder)
    index = folder / INDEX
    if not index.is_file():
        return []
    maps: dict[str, np.memmap] = {}
    out = []
    for line in index.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # cut short by a crash (a resumed session writes on after it)
        if topics is not None and rec["topic"] not in topics:
            continue
        arrays = []
        for spec in rec["arrays"]:
            name = spec["file"]
            if Path(name).name != name or name in ("", ".", ".."):
                break  # not a file of this folder
            if name not in maps:
                maps[name] = np.memmap(folder / name, dtype=np.uint8, mode="r")
            dtype = np.dtype(spec["dtype"])
            n = int(np.prod(spec["shape"], dtype=np.int64)) * dtype.itemsize
            raw = maps[name][spec["offset"] : spec["offset"] + n]
            if len(raw) < n:
                break
            arrays.append(raw.view(dtype).reshape(spec["shape"]))
        out.append(
            LoggedMessage(
                rec["topic"],
                rec["kind"],
                rec["seq"],
                rec["lsl_time"],
                rec["wall_time"],
                rec["meta"],
                arrays,
            )
        )
    return out
