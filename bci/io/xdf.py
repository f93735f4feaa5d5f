"""Read XDF files (what LabRecorder writes) through pyxdf into a :class:`~bci.io.streams.Recording`.

pyxdf is called with ``synchronize_clocks=True`` (each stream's time stamps are mapped onto
the recording machine's LSL clock using the clock offsets LabRecorder measured, so all streams
share one clock) and ``handle_clock_resets=True`` (a stream whose host clock was reset mid-file,
e.g. after a reboot, is synchronised segment by segment), but with pyxdf's dejittering off: its
segments only break at pauses longer than 500 sample periods, so one least-squares fit spread a
40 s pause between two fMRI runs at TR 2 s over the whole stream. Regular streams are dejittered
here instead (:mod:`bci.io.dejitter`): segment by segment, a segment ending at any pause, and a
fit used only where it moves no stamp by more than 0.5 ms. Every stamp comes back within 1 ms of
the recorded one (after clock synchronisation), whatever the rate and however long the pauses.

Streams that cannot be used (no samples, no channels, an unknown format, inconsistent
shapes) are listed in :attr:`Recording.skipped` with a reason; they never fail the file.
"""

from __future__ import annotations

import gzip
import io
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyxdf

from bci.io.dejitter import dejitter, segments
from bci.io.streams import (
    CHANNEL_FORMATS,
    NUMERIC_DTYPES,
    RecordedStream,
    Recording,
    as_path,
    check_stream,
    default_labels,
)
from bci.io.xdf_chunks import MAGIC

__all__ = ["XDF_SUFFIXES", "is_xdf", "read_xdf"]

log = logging.getLogger(__name__)

XDF_SUFFIXES = (".xdf", ".xdfz", ".xdf.gz")
"""File name endings read as XDF (``.xdfz`` and ``.xdf.gz`` are gzip-compressed)."""
_GZIP_MAGIC = b"\x1f\x8b"
_HEADER_EXTRAS = ("uid", "hostname", "session_id", "created_at", "version")
MAX_CHANNELS = 2**21
"""Most channels a stream may declare (a whole brain at 1 mm has ~1.5 million voxels)."""


def _opener(path: Path) -> Callable[[], io.BufferedIOBase]:
    """A function opening ``path`` for reading (through gzip when it is compressed)."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head.startswith(_GZIP_MAGIC):
        return lambda: gzip.open(path, "rb")
    return lambda: open(path, "rb")


def is_xdf(path: str | Path) -> bool:
    """Whether ``path`` is named like an XDF file or starts with the XDF magic bytes."""
    path = as_path(path)
    if path.name.lower().endswith(XDF_SUFFIXES):
        return True
    try:
        with open(path, "rb") as f:
            return f.read(4) == MAGIC
    except OSError:
        return False


def _text(info: dict, key: str, default: str = "") -> str:
    """The text of a pyxdf header field (pyxdf gives each as a one-element list)."""
    value = info.get(key)
    if isinstance(value, list):
        value = value[0] if value else None
    return default if value is None else str(value).strip()


def _first(node: Any, key: str) -> Any:
    """``node[key][0]`` for pyxdf's dict-of-lists XML trees, or None."""
    if not isinstance(node, dict):
        return None
    values = node.get(key)
    if isinstance(values, list) and values:
        return values[0]
    return None


def _flatten(node: dict, prefix: str, out: dict[str, Any], skip: tuple[str, ...] = ()) -> None:
    """Flatten a pyxdf XML tree into ``out`` as ``prefix + "a/b[1]/c"`` -> text."""
    for key, values in node.items():
        if key in skip or not isinstance(values, list):
            continue
        for i, value in enumerate(values):
            name = f"{prefix}{key}" + (f"[{i}]" if len(values) > 1 else "")
            if isinstance(value, dict):
                _flatten(value, name + "/", out)
            else:
                out[name] = "" if value is None else str(value).strip()


def _channels(desc: Any, n_channels: int, name: str) -> tuple[list[str], dict[str, list[str]]]:
    """Channel labels (and per-channel types/units) from ``desc/channels/channel``."""
    node = _first(desc, "channels")
    channels = node.get("channel") if isinstance(node, dict) else None
    extra: dict[str, list[str]] = {}
    if not isinstance(channels, list) or not channels:
        return default_labels(n_channels), extra
    if len(channels) != n_channels:
        log.warning(
            "stream %r describes %d channels for a channel count of %d; labels not used",
            name,
            len(channels),
            n_channels,
        )
        return default_labels(n_channels), extra
    labels = []
    for i, ch in enumerate(channels):
        label = _first(ch, "label") or _first(ch, "name")
        labels.append(str(label).strip() if label is not None else default_labels(n_channels)[i])
    if len(set(labels)) != len(labels):
        log.warning("stream %r has duplicate channel labels; kept as they are", name)
    for key, out_key in (("type", "channel_types"), ("unit", "channel_units")):
        values = [_first(ch, key) for ch in channels]
        if any(v is not None for v in values):
            extra[out_key] = ["" if v is None else str(v).strip() for v in values]
    return labels, extra


def _describe(info: dict) -> str:
    """How a stream that could not be read is named in :attr:`Recording.skipped`."""
    name = _text(info, "name", "?")
    kind = _text(info, "type", "?")
    fmt = _text(info, "channel_format", "?")
    return f"{name!r} (xdf stream {info.get('stream_id', '?')}, type {kind!r}, {fmt})"


def _header_problem(info: dict) -> str | None:
    """What in a stream header keeps pyxdf from reading the stream, or None."""
    fmt = _text(info, "channel_format")
    if fmt not in CHANNEL_FORMATS:
        return f"channel format {fmt!r} is not understood (known: {', '.join(CHANNEL_FORMATS)})"
    try:
        n = int(_text(info, "channel_count"))
    except ValueError:
        return f"channel count {_text(info, 'channel_count')!r} is not a number"
    if n <= 0:
        return "it has no channels"
    if n > MAX_CHANNELS:  # its default labels alone would fill the memory
        return f"it declares {n} channels (at most {MAX_CHANNELS})"
    try:
        rate = float(_text(info, "nominal_srate"))
    except ValueError:
        return f"nominal rate {_text(info, 'nominal_srate')!r} is not a number"
    if not np.isfinite(rate) or rate < 0:
        return f"nominal rate {rate} is not a rate"
    return None


def _to_stream(raw: dict) -> tuple[RecordedStream | None, str | None]:
    """A pyxdf stream dict as a :class:`RecordedStream`, or None and why it is unusable."""
    info = raw["info"]
    problem = _header_problem(info)
    if problem is not None:
        return None, problem
    name = _text(info, "name")
    fmt = _text(info, "channel_format")
    n_channels = int(_text(info, "channel_count"))
    desc_tree = _first(info, "desc")
    labels, channel_extra = _channels(desc_tree, n_channels, name)
    desc: dict[str, Any] = {key: _text(info, key) for key in _HEADER_EXTRAS if _text(info, key)}
    desc["xdf_stream_id"] = int(info.get("stream_id", -1))
    if isinstance(desc_tree, dict):
        _flatten(desc_tree, "desc/", desc, skip=("channels",))
    desc.update(channel_extra)

    stamps = np.asarray(raw["time_stamps"], dtype=np.float64).reshape(-1)
    series = raw["time_series"]
    if fmt == "string":
        data: np.ndarray | list[list[str]] = [
            ["" if v is None else str(v) for v in sample] for sample in series
        ]
    else:
        data = np.asarray(series)
        if data.size == 0:
            data = data.reshape(0, n_channels)
        data = data.astype(NUMERIC_DTYPES[fmt], copy=False)
    stream = RecordedStream(
        name=name,
        type=_text(info, "type"),
        source_id=_text(info, "source_id"),
        channel_format=fmt,
        nominal_srate=float(_text(info, "nominal_srate")),
        channel_labels=labels,
        time_stamps=stamps,
        data=data,
        desc=desc,
    )
    problem = check_stream(stream)
    if problem is not None:
        return None, problem
    stream = _sorted(stream)
    stream.time_stamps = dejitter(stream.time_stamps, stream.nominal_srate)
    stream.desc["effective_srate"] = effective_rate(stream.time_stamps)
    return stream, None


def effective_rate(stamps: np.ndarray) -> float:
    """Samples per second within the segments (pauses left out); 0 for fewer than 2 samples."""
    counts = durations = 0.0
    for start, stop in segments(stamps):
        if stop - start > 1:
            counts += stop - start - 1
            durations += float(stamps[stop - 1] - stamps[start])
    return counts / durations if durations > 0 else 0.0


def _sorted(stream: RecordedStream) -> RecordedStream:
    """``stream`` with its samples in time order (pyxdf keeps file order)."""
    if np.all(np.diff(stream.time_stamps) >= 0):
        return stream
    order = np.argsort(stream.time_stamps, kind="stable")
    n_moved = int(np.count_nonzero(order != np.arange(len(order))))
    log.warning("stream %r: %d samples out of time order were sorted", stream.name, n_moved)
    stream.time_stamps = stream.time_stamps[order]
    if stream.is_numeric:
        stream.data = stream.data[order]
    else:
        stream.data = [stream.data[i] for i in order]
    return stream


class _SegmentNote(logging.Filter):
    """Turn pyxdf's "Segments and clock-segments differ" warning into an info message.

    pyxdf warns whenever a stream's time-stamp breaks and its clock resets differ, which is
    normal for irregular streams across a clock reset and for streams without clock offsets.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "Segments and clock-segments differ" in message:
            log.info("pyxdf: %s", message)
            return False
        return True


def _load(open_file: Callable[[], io.BufferedIOBase], select: list[int] | None) -> tuple:
    pyxdf_log = logging.getLogger("pyxdf.pyxdf")
    note = _SegmentNote()
    pyxdf_log.addFilter(note)
    try:
        with open_file() as f:
            return pyxdf.load_xdf(
                f,
                select_streams=select,
                synchronize_clocks=True,
                handle_clock_resets=True,
                dejitter_timestamps=False,
            )
    finally:
        pyxdf_log.removeFilter(note)


def _load_tolerant(path: Path) -> tuple[list[dict], dict | None, list[tuple[str, str]]]:
    """pyxdf's streams and file header; streams pyxdf cannot parse are left out and listed."""
    open_file = _opener(path)
    try:
        streams, header = _load(open_file, None)
        return streams, header, []
    except Exception as exc:  # pyxdf raises anything
        first_error = exc
    # pyxdf gives up on a whole file for one unparseable stream header (an unknown format,
    # a channel count that is not a number): find those from the headers and read the rest.
    try:
        with open_file() as f:
            headers = pyxdf.resolve_streams(f)
    except Exception as exc:
        raise ValueError(f"cannot read {path.name} as XDF: {_one_line(exc)}") from None
    skipped, good = [], []
    for h in headers:
        info = {k: v for k, v in h.items() if v is not None}
        problem = _header_problem(info)
        if problem is None:
            good.append(int(h["stream_id"]))
        else:
            skipped.append((_describe(info), problem))
    if not skipped:
        raise ValueError(f"cannot read {path.name} as XDF: {_one_line(first_error)}") from None
    if not good:
        return [], None, skipped
    try:
        streams, header = _load(open_file, good)
    except Exception as exc:
        raise ValueError(f"cannot read {path.name} as XDF: {_one_line(exc)}") from None
    return streams, header, skipped


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def read_xdf(path: str | Path) -> Recording:
    """Read an XDF file (``.xdf``, or gzip-compressed ``.xdfz`` / ``.xdf.gz``).

    Parameters
    ----------
    path : str or Path
        The file.

    Returns
    -------
    Recording
        Its usable streams in stream-id order, time stamps synchronised onto the recording
        machine's LSL clock and dejittered segment by segment, within 1 ms of the recorded
        ones (see the module docstring), and the skipped streams with reasons.

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    ValueError
        If the file is not XDF, pyxdf cannot read it, or it holds no stream header.
    """
    path = as_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no recording file {str(path)!r}")
    open_file = _opener(path)
    with open_file() as f:
        try:
            magic = f.read(4)
        except OSError as exc:
            raise ValueError(f"cannot read {path.name}: {_one_line(exc)}") from None
    if magic != MAGIC:
        raise ValueError(f"{path.name} is not an XDF file (it does not start with 'XDF:')")
    raw_streams, header, skipped = _load_tolerant(path)
    if not raw_streams and not skipped:
        raise ValueError(f"{path.name} holds no XDF stream (no stream header could be read)")
    recording = Recording(path=path, skipped=list(skipped))
    if isinstance(header, dict) and isinstance(header.get("info"), dict):
        _flatten(header["info"], "", recording.info)
    for raw in sorted(raw_streams, key=lambda s: int(s["info"].get("stream_id", 0))):
        stream, problem = _to_stream(raw)
        if stream is None:
            recording.skipped.append((_describe(raw["info"]), problem))
            log.info("%s: skipped stream %s: %s", path.name, _describe(raw["info"]), problem)
        else:
            recording.streams.append(stream)
    log.info(
        "%s: %d streams read, %d skipped",
        path.name,
        len(recording.streams),
        len(recording.skipped),
    )
    return recording
