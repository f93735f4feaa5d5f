"""The few requests a joining node sends the supervisor: join, clock, leave (msgpack maps).

A node on another machine (``bci-node``) talks to the supervisor's join socket (a CURVE-server
ROUTER at ``tcp://[bus] host:[bus] port``) with a REQ socket. Every request and reply is one
msgpack map: no pickle on the wire, and a reply that is not a map is refused like a bad message.

* ``{"op": "join", "node": NAME}`` -> ``{"ok": True, "session": ..., "config": ...,
  "endpoints": {"publish": ..., "subscribe": ..., "control": ...}}`` or ``{"ok": False,
  "error": "one line"}`` (an unknown name, or a name that has joined already);
* ``{"op": "clock", "node": NAME}`` -> ``{"ok": True, "lsl": ..., "wall": ...}``: the
  supervisor's LSL and wall clocks, for the ping-pong of :mod:`bci.nodes.clock_offset`; it is
  also how each side knows the other is still there;
* ``{"op": "leave", "node": NAME, "exit_code": CODE}`` -> ``{"ok": True}``.
"""

from __future__ import annotations

from typing import Any

import msgpack
import zmq

MAX_REQUEST_BYTES = 1 << 20
"""A join request or reply larger than this is refused (a reply carries the whole config)."""


def pack(fields: dict[str, Any]) -> bytes:
    """One request or reply as bytes."""
    return msgpack.packb(fields, use_bin_type=True)


def unpack(data: bytes) -> dict[str, Any] | None:
    """A request or reply, or None for anything that is not a msgpack map of a sane size."""
    if len(data) > MAX_REQUEST_BYTES:
        return None
    try:
        value = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except (ValueError, msgpack.UnpackException):
        return None
    return value if isinstance(value, dict) else None


def ask(sock: zmq.Socket, fields: dict[str, Any], timeout_ms: float) -> dict[str, Any] | None:
    """Send one request on a REQ socket (``REQ_RELAXED``) and wait for its reply.

    Returns
    -------
    dict or None
        The reply, or None if none came within ``timeout_ms`` (the next request may be sent).
    """
    sock.send(pack(fields))
    if not sock.poll(timeout_ms):
        return None
    return unpack(sock.recv())


def request_socket(context: zmq.Context, endpoint: str, keys: Any, server_key: bytes) -> zmq.Socket:
    """A REQ socket that may ask again after a lost reply, as a CURVE client of ``endpoint``."""
    sock = context.socket(zmq.REQ)
    sock.linger = 0
    sock.setsockopt(zmq.REQ_RELAXED, 1)
    sock.setsockopt(zmq.REQ_CORRELATE, 1)
    sock.curve_secretkey = keys.secret
    sock.curve_publickey = keys.public
    sock.curve_serverkey = server_key
    sock.connect(endpoint)
    return sock
