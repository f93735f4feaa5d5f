"""Free TCP endpoints for the processes of a session."""

from __future__ import annotations

import random
import socket
from contextlib import ExitStack

PORT_RANGE = (20000, 32767)
"""Ports are chosen below Linux's ephemeral range (32768-60999 by default), from which the kernel
hands out the local ports of outgoing connections: LSL and LabRecorder open many, and one of them
could otherwise take a chosen port before its node binds it."""
ATTEMPTS = 200


def free_endpoints(names: list[str], host: str = "127.0.0.1") -> dict[str, str]:
    """Reserve one free TCP port per name on ``host`` and return ``tcp://host:port`` endpoints.

    Each port is drawn at random from :data:`PORT_RANGE` and checked by binding it; all are
    released just before returning, so another program could in principle take one in between;
    the node that binds it then fails at once with a clear error rather than silently talking to
    a stranger.
    """
    rng = random.SystemRandom()
    with ExitStack() as stack:
        ports: dict[str, int] = {}
        for name in names:
            for _ in range(ATTEMPTS):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                try:
                    sock.bind((host, rng.randint(*PORT_RANGE)))
                except OSError:
                    sock.close()
                    continue
                stack.enter_context(sock)
                ports[name] = sock.getsockname()[1]
                break
            else:
                raise OSError(f"no free TCP port in {PORT_RANGE} on {host} for {name!r}")
    return {name: f"tcp://{host}:{port}" for name, port in ports.items()}
