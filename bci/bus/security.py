"""Where sockets may bind, and CURVE encryption for the ones that leave the machine."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import zmq


class BusConfigError(ValueError):
    """A bus socket was configured in a way we refuse (e.g. an open bind without encryption)."""


@dataclass(frozen=True)
class CurveKeys:
    """A CURVE key pair, Z85-encoded as :func:`zmq.curve_keypair` makes them.

    Attributes
    ----------
    public : bytes
        40-character Z85 public key (give it to peers).
    secret : bytes
        40-character Z85 secret key (keep it).
    """

    public: bytes
    secret: bytes

    @classmethod
    def generate(cls) -> CurveKeys:
        """A fresh key pair."""
        public, secret = zmq.curve_keypair()
        return cls(public, secret)

    @classmethod
    def from_strings(cls, public: str | bytes, secret: str | bytes) -> CurveKeys:
        """Build from Z85 strings (as stored in a TOML config)."""
        return cls(_as_key(public), _as_key(secret))


def _as_key(key: str | bytes) -> bytes:
    return key.encode("ascii") if isinstance(key, str) else bytes(key)


def is_local_endpoint(endpoint: str) -> bool:
    """True for endpoints that cannot be reached from another machine.

    Parameters
    ----------
    endpoint : str
        A ZeroMQ endpoint: ``tcp://127.0.0.1:5555``, ``tcp://[::1]:0``, ``ipc://...``, ...

    Returns
    -------
    bool
        ``inproc://``, ``ipc://`` and TCP on a loopback address or ``localhost``.
    """
    scheme, _, rest = endpoint.partition("://")
    if scheme in ("inproc", "ipc"):
        return True
    if scheme != "tcp":
        return False
    host = rest.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # "*", an interface name or a host name
        return False


def check_bind(endpoint: str, curve: CurveKeys | None) -> None:
    """Refuse to bind a non-local endpoint without CURVE keys.

    Raises
    ------
    BusConfigError
        ``"refusing to bind <endpoint> without CURVE keys; ..."``.
    """
    if curve is None and not is_local_endpoint(endpoint):
        raise BusConfigError(
            f"refusing to bind {endpoint} without CURVE keys; bind to tcp://127.0.0.1:<port> or "
            "pass curve=CurveKeys.generate() and give its public key to the peers"
        )


def normalise_endpoint(endpoint: str) -> str:
    """Turn ``tcp://host:0`` (random port) into ZeroMQ's ``tcp://host:*``."""
    if endpoint.startswith("tcp://") and endpoint.endswith(":0"):
        return endpoint[:-2] + ":*"
    return endpoint


def apply_curve(
    sock: zmq.Socket, *, bind: bool, curve: CurveKeys | None, server_key: str | bytes | None
) -> None:
    """Configure CURVE on ``sock`` before it binds or connects.

    The binding side is the CURVE server (needs ``curve``); a connecting side is a client when
    ``server_key`` (the server's public key) is given, with ``curve`` as its own key pair or a
    fresh one.
    """
    if bind and curve is not None:
        sock.curve_secretkey = curve.secret
        sock.curve_publickey = curve.public
        sock.curve_server = True
    elif not bind and server_key is not None:
        keys = curve or CurveKeys.generate()
        sock.curve_secretkey = keys.secret
        sock.curve_publickey = keys.public
        sock.curve_serverkey = _as_key(server_key)
