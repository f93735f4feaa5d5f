"""Free TCP ports for tests that must name a port (the session's door and its relays)."""

from __future__ import annotations

import random
import socket

# Linux hands out outgoing ports from 32768 up (ip_local_port_range), and an outgoing connection
# of another test can take any of them; a fixed or hashed port there collides now and then.
_LOW, _HIGH = 20000, 32000


def free_port_block(count: int = 8) -> int:
    """Return the first of ``count`` consecutive TCP ports that nothing is bound to now.

    Parameters
    ----------
    count : int
        How many consecutive ports the caller will bind (the door, control and two per relay).

    Returns
    -------
    int
        The first port of the block, below the kernel's range for outgoing connections.
    """
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(_LOW, _HIGH - count)
        probes: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                probes.append(probe)
                probe.bind(("", port))
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
        return base
    raise RuntimeError(f"no {count} consecutive free TCP ports between {_LOW} and {_HIGH}")
