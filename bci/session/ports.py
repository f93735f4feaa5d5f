"""Free TCP endpoints for the processes of a session."""

from __future__ import annotations

import socket
from contextlib import ExitStack


def free_endpoints(names: list[str], host: str = "127.0.0.1") -> dict[str, str]:
    """Reserve one free TCP port per name on ``host`` and return ``tcp://host:port`` endpoints.

    The ports are found by binding to port 0 and released just before returning, so another
    program could in principle take one in between; the node that binds it then fails at once
    with a clear error rather than silently talking to a stranger.
    """
    with ExitStack() as stack:
        ports = {}
        for name in names:
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            ports[name] = sock.getsockname()[1]
    return {name: f"tcp://{host}:{port}" for name, port in ports.items()}
