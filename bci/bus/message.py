"""The bus message and its wire codec: ``[topic, header, *array_frames]``.

Wire format (schema version 1)
------------------------------
frame 0
    The topic, UTF-8 bytes (ZeroMQ subscriptions filter on this frame).
frame 1
    A msgpack map with the keys

    ``kind`` (str), ``v`` (int, schema version), ``seq`` (int, per-topic sequence number assigned
    by the publisher), ``lsl_time`` (float or nil: LSL time of the source data),
    ``wall_time`` (float: ``time.time()`` at publication), ``arrays`` (list of
    ``{"dtype": numpy dtype.str, "shape": [int, ...]}``), ``meta`` (map) and, optionally,
    ``src`` (str: identity of the publishing socket, so that sequence numbers of two publishers on
    one topic, or of a restarted publisher, are not mistaken for drops).
frames 2..
    One raw frame per array: the C-ordered bytes of the array, nothing else. Arrays are never
    pickled and never copied into the msgpack header.

:func:`decode` validates everything it reads before it builds anything from it (the topic's
charset and length, every header field's type, each array's dtype, number of dimensions, element
count and frame size) and raises a single exception type, :class:`BusMessageError`, whose
``reason`` is one of :data:`REJECT_REASONS`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np

from bci.bus.topics import is_valid_topic

SCHEMA_VERSION = 1
"""Header layout version written by :func:`encode`; the only one :func:`decode` accepts."""

DEFAULT_MAX_BYTES = 256 * 1024 * 1024
"""Largest message (all frames together) :func:`decode` accepts by default."""

DEFAULT_MAX_HEADER_BYTES = 1024 * 1024
"""Largest msgpack header :func:`decode` accepts by default (metadata is small by design)."""

MAX_NDIM = 32
MAX_KIND_LENGTH = 64

ALLOWED_DTYPE_KINDS = frozenset("biufcmMSU")
"""numpy dtype kinds that may travel: bool, integers, floats, complex, datetimes, bytes, unicode.

Object (``'O'``) and void / structured (``'V'``) dtypes are refused in both directions.
"""

REJECT_REASONS = (
    "frame_count",  # fewer than 2 frames, or array frames != header's array list
    "bad_topic",  # topic frame is not UTF-8, or not a valid topic name (see bci.bus.topics)
    "oversized",  # message or header larger than the configured maximum
    "bad_msgpack",  # header frame is not valid msgpack
    "header_not_map",  # header decodes to something other than a map
    "missing_field",  # a required header key is absent
    "bad_field",  # a header value has the wrong type or range
    "schema_version",  # header written by another schema version
    "bad_dtype",  # dtype string unknown, or of a refused kind (object, structured)
    "frame_size",  # array frame size != prod(shape) * itemsize
    "too_many_elements",  # an array's shape, zero dimensions aside, exceeds the message limit
    "decode_error",  # anything else that went wrong while decoding (counted, never raised)
)
"""Every ``reason`` a :class:`BusMessageError` can carry."""

_REQUIRED = ("kind", "v", "seq", "lsl_time", "wall_time", "arrays", "meta")
_REQUIRED_KEYS = frozenset(_REQUIRED)


class BusMessageError(ValueError):
    """A received message that cannot be decoded.

    Parameters
    ----------
    reason : str
        Machine-readable reason kind, one of :data:`REJECT_REASONS`; subscribers count rejections
        per reason.
    detail : str
        Human-readable one-line detail.
    """

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = " ".join(str(detail).split())  # always a single line
        super().__init__(f"{reason}: {self.detail}")


@dataclass
class Message:
    """One bus message.

    Attributes
    ----------
    topic : str
        Topic the message was published on (see :mod:`bci.bus.topics`).
    kind : str
        What the message is, e.g. ``"response"``, ``"latents"``, ``"heartbeat"``.
    seq : int
        Per-topic sequence number assigned by the publisher (0, 1, 2, ...).
    lsl_time : float | None
        LSL time of the data the message carries, if it has one.
    wall_time : float
        ``time.time()`` when the message was published.
    arrays : list[numpy.ndarray]
        Payload arrays. Decoded arrays are read-only views on the received frames (zero copy);
        call ``.copy()`` before writing into one.
    meta : dict
        Small msgpack-able metadata (trial index, subject id, ...).
    source : str
        Identity of the publishing socket (empty if the sender did not set one).
    """

    topic: str
    kind: str = "data"
    seq: int = 0
    lsl_time: float | None = None
    wall_time: float = field(default_factory=time.time)
    arrays: list[np.ndarray] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    source: str = ""


def check_dtype(dtype: np.dtype) -> None:
    """Raise ``TypeError`` unless ``dtype`` may travel on the bus.

    Parameters
    ----------
    dtype : numpy.dtype
        The dtype to check.
    """
    if dtype.kind not in ALLOWED_DTYPE_KINDS or dtype.hasobject or dtype.itemsize == 0:
        raise TypeError(
            f"dtype {dtype!r} cannot travel on the bus (allowed kinds: bool, int, uint, float, "
            "complex, datetime, timedelta, bytes, str; no object or structured dtypes)"
        )


def _meta_default(obj: Any) -> Any:
    """msgpack fallback: numpy scalars become Python scalars; everything else is refused."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        raise TypeError("numpy arrays do not belong in meta; pass them as arrays=")
    raise TypeError(f"meta value of type {type(obj).__name__} is not msgpack-able")


def encode(msg: Message) -> list[bytes | np.ndarray]:
    """Encode a message into ZeroMQ frames ``[topic, header, *arrays]``.

    Array frames are uint8 *views* of the (C-contiguous) arrays, not copies: send them with
    ``copy=False`` and do not write into the arrays until the send has completed. Non-contiguous
    arrays are copied once into C order.

    Parameters
    ----------
    msg : Message
        The message; ``msg.seq`` and ``msg.wall_time`` are written as they are.

    Returns
    -------
    list of bytes or numpy.ndarray
        The frames, ready for ``socket.send_multipart``.

    Raises
    ------
    TypeError
        An array has a dtype that cannot travel (see :func:`check_dtype`), or ``meta`` holds
        something msgpack cannot write.
    """
    specs: list[dict[str, Any]] = []
    payload: list[np.ndarray] = []
    for array in msg.arrays:
        a = np.asarray(array)
        check_dtype(a.dtype)
        if not a.flags.c_contiguous:
            a = a.copy(order="C")
        specs.append({"dtype": a.dtype.str, "shape": list(a.shape)})
        # A flat uint8 view exports a plain byte buffer for every dtype (datetime64 cannot
        # export a buffer of its own) without copying.
        payload.append(a.reshape(-1).view(np.uint8))
    header = {
        "kind": msg.kind,
        "v": SCHEMA_VERSION,
        "seq": int(msg.seq),
        "lsl_time": None if msg.lsl_time is None else float(msg.lsl_time),
        "wall_time": float(msg.wall_time),
        "arrays": specs,
        "meta": {} if msg.meta is None else msg.meta,
        "src": msg.source,
    }
    try:
        packed = msgpack.packb(header, use_bin_type=True, default=_meta_default)
    except (TypeError, ValueError, OverflowError) as exc:
        raise TypeError(f"cannot encode header of message on {msg.topic!r}: {exc}") from exc
    return [msg.topic.encode("utf-8"), packed, *payload]


def _view(frame: Any) -> memoryview:
    """A flat byte view of a frame given as bytes, a buffer, or a :class:`zmq.Frame`."""
    buf = getattr(frame, "buffer", frame)  # zmq.Frame exposes its data as .buffer
    view = buf if type(buf) is memoryview else memoryview(buf)
    if view.ndim != 1 or view.format != "B":
        view = view.cast("B")
    return view


_DTYPE_CACHE: dict[str, np.dtype] = {}
_DTYPE_CACHE_SIZE = 256


def _parse_dtype(dtype_str: Any, index: int) -> np.dtype:
    dtype = _DTYPE_CACHE.get(dtype_str) if type(dtype_str) is str else None
    if dtype is not None:
        return dtype
    if not isinstance(dtype_str, str) or len(dtype_str) > 32:
        raise BusMessageError("bad_dtype", f"arrays[{index}] dtype is not a short string")
    try:
        dtype = np.dtype(dtype_str)
    except Exception:
        raise BusMessageError("bad_dtype", f"arrays[{index}] dtype {dtype_str!r} unknown") from None
    try:
        check_dtype(dtype)
    except TypeError:
        raise BusMessageError("bad_dtype", f"arrays[{index}] dtype {dtype_str!r} refused") from None
    if len(_DTYPE_CACHE) < _DTYPE_CACHE_SIZE:
        _DTYPE_CACHE[dtype_str] = dtype
    return dtype


def _parse_shape(shape: Any, index: int, itemsize: int, max_bytes: int) -> tuple[int, ...]:
    """The shape as a tuple, refused unless numpy can build it within ``max_bytes``.

    The size is checked with every zero dimension counted as one: numpy refuses a shape such as
    ``(0, 2**62)`` even though it holds no element, and a shape that large is never meant.
    """
    if type(shape) is not list or len(shape) > MAX_NDIM:
        raise BusMessageError("bad_field", f"arrays[{index}] shape is not a list of <= {MAX_NDIM}")
    nominal = itemsize
    for n in shape:
        if type(n) is not int or n < 0:  # type() check: bool and float are refused
            raise BusMessageError("bad_field", f"arrays[{index}] shape {shape!r} is not valid")
        nominal *= max(n, 1)
        if nominal > max_bytes:
            raise BusMessageError(
                "too_many_elements",
                f"arrays[{index}] shape {shape!r:.80} would need more than {max_bytes} bytes",
            )
    return tuple(shape)


def _parse_header(view: memoryview, max_header_bytes: int) -> dict:
    if view.nbytes > max_header_bytes:
        raise BusMessageError(
            "oversized", f"header of {view.nbytes} bytes exceeds {max_header_bytes}"
        )
    try:
        header = msgpack.unpackb(view, raw=False, strict_map_key=True, use_list=True)
    except Exception as exc:  # msgpack raises many types (ExtraData, FormatError, ValueError...)
        raise BusMessageError("bad_msgpack", f"{type(exc).__name__}: {exc}") from None
    if type(header) is not dict:
        raise BusMessageError("header_not_map", f"header is a {type(header).__name__}")
    if not _REQUIRED_KEYS <= header.keys():
        missing = [key for key in _REQUIRED if key not in header]
        raise BusMessageError("missing_field", f"header lacks {', '.join(missing)}")
    version = header["v"]
    if version != SCHEMA_VERSION or type(version) is not int:
        raise BusMessageError(
            "schema_version", f"schema version {version!r}, this reader speaks {SCHEMA_VERSION}"
        )
    return header


_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "kind": (str,),
    "seq": (int,),
    "lsl_time": (float, int, type(None)),
    "wall_time": (float, int),
    "arrays": (list,),
    "meta": (dict,),
    "src": (str,),
}


def _check_fields(header: dict) -> None:
    """Raise ``bad_field`` for the first header value of a wrong type or range."""
    for key, types in _FIELD_TYPES.items():
        value = header.get(key, "")  # "src" is optional
        if type(value) not in types:  # exact types: msgpack makes no subclasses; bool is refused
            raise BusMessageError(
                "bad_field", f"header field {key!r} has type {type(value).__name__}"
            )
    if header["seq"] < 0:
        raise BusMessageError("bad_field", f"negative seq {header['seq']}")


def _check_keys(meta: dict) -> None:
    """Raise ``bad_field`` unless every map in ``meta``, at any depth, has string keys only.

    msgpack lets bytes keys through ``strict_map_key``; a node's lookups would miss them and the
    bus log (JSON) cannot write them. Iterative: nesting is as deep as msgpack allows.
    """
    stack: list[Any] = [meta]
    while stack:
        node = stack.pop()
        if type(node) is dict:
            for key, value in node.items():
                if type(key) is not str:
                    raise BusMessageError("bad_field", f"meta has a {type(key).__name__} key")
                if type(value) in (dict, list):
                    stack.append(value)
        else:  # a list
            stack.extend(v for v in node if type(v) in (dict, list))


def decode(
    frames: Sequence[Any],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
) -> Message:
    """Decode ZeroMQ frames ``[topic, header, *arrays]`` into a :class:`Message`.

    Arrays are zero-copy, read-only views on the frames (``np.frombuffer``); a small frame that
    ZeroMQ delivered at an address unsuitable for its dtype is copied to an aligned array.

    Parameters
    ----------
    frames : sequence of bytes, buffers or zmq.Frame
        The multipart message as received (``recv_multipart(copy=False)`` is the intended source).
    max_bytes : int
        Refuse messages whose frames add up to more bytes than this.
    max_header_bytes : int
        Refuse headers larger than this.

    Returns
    -------
    Message
        The decoded message.

    Raises
    ------
    BusMessageError
        For every kind of malformed message; ``reason`` says which (see :data:`REJECT_REASONS`).
    """
    if len(frames) < 2:
        raise BusMessageError("frame_count", f"{len(frames)} frame(s), need topic and header")
    views = [_view(f) for f in frames]
    total = sum(v.nbytes for v in views)
    if total > max_bytes:
        raise BusMessageError("oversized", f"message of {total} bytes exceeds {max_bytes}")
    try:
        topic = views[0].tobytes().decode("utf-8")
    except UnicodeDecodeError:
        raise BusMessageError("bad_topic", "topic frame is not UTF-8") from None
    if not is_valid_topic(topic):
        raise BusMessageError("bad_topic", f"topic {topic[:80]!r} is not a valid topic name")
    header = _parse_header(views[1], max_header_bytes)

    kind, seq, lsl_time = header["kind"], header["seq"], header["lsl_time"]
    wall_time, specs, meta = header["wall_time"], header["arrays"], header["meta"]
    source = header.get("src", "")
    if not (
        type(kind) is str
        and type(seq) is int
        and seq >= 0
        and type(wall_time) is float
        and (lsl_time is None or type(lsl_time) is float)
        and type(specs) is list
        and type(meta) is dict
        and type(source) is str
    ):
        _check_fields(header)  # slow path: says which field, or accepts int times
        wall_time = float(wall_time)
        lsl_time = None if lsl_time is None else float(lsl_time)
    if len(kind) > MAX_KIND_LENGTH:
        raise BusMessageError("bad_field", f"kind of {len(kind)} characters")
    if meta:
        _check_keys(meta)
    if not math.isfinite(wall_time) or (lsl_time is not None and not math.isfinite(lsl_time)):
        raise BusMessageError("bad_field", f"non-finite time (wall {wall_time}, lsl {lsl_time})")
    if len(specs) != len(views) - 2:
        raise BusMessageError(
            "frame_count", f"header lists {len(specs)} array(s), message has {len(views) - 2}"
        )

    arrays = []
    for index, spec in enumerate(specs):
        if type(spec) is not dict or "dtype" not in spec or "shape" not in spec:
            raise BusMessageError("bad_field", f"arrays[{index}] is not a {{dtype, shape}} map")
        dtype = _parse_dtype(spec["dtype"], index)
        shape = _parse_shape(spec["shape"], index, dtype.itemsize, max_bytes)
        view = views[index + 2]
        expected = math.prod(shape) * dtype.itemsize
        if view.nbytes != expected:
            raise BusMessageError(
                "frame_size",
                f"arrays[{index}] frame has {view.nbytes} bytes, {dtype.str}{list(shape)} "
                f"needs {expected}",
            )
        array = np.frombuffer(view, dtype=dtype).reshape(shape)
        if not array.flags.aligned:
            array = array.copy()
        array.flags.writeable = False
        arrays.append(array)

    return Message(topic, kind, seq, lsl_time, wall_time, arrays, meta, source)
