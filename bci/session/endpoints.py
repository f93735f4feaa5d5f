"""Where the processes of a session meet: private ipc:// endpoints, chosen in one place.

Every process of a session binds one socket (the supervisor's carries only ``control``). On one
machine the sockets are Unix-domain (``ipc://``) files in a directory that only the session's
user can enter (mode 0700, made by :func:`tempfile.mkdtemp`): another user of the machine can
neither read the bus nor send on it, and no TCP port has to be found free (which could be taken
by another program between the check and the bind).

:func:`endpoint_for` is the one place that maps a node to its endpoint. Nodes on this machine
meet on ipc:// whatever ``[bus] host`` is; a node on another machine reaches them through the
supervisor's CURVE-protected TCP relays on ``[bus] host`` (:mod:`bci.session.remote`), and its
endpoint here is its relay's outlet.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bci.bus.security import BusConfigError

MAX_IPC_PATH = 100
"""Unix socket paths are limited to about 107 bytes; stay clearly below."""


@dataclass
class SessionEndpoints:
    """The endpoint of every process of a session, and the private directory they live in.

    Attributes
    ----------
    endpoints : dict[str, str]
        Process name -> endpoint it binds.
    directory : Path
        The session's private (0700) socket directory; :meth:`remove` deletes it.
    """

    endpoints: dict[str, str]
    directory: Path

    def remove(self) -> None:
        """Delete the socket directory (after every process has closed its socket)."""
        shutil.rmtree(self.directory, ignore_errors=True)


def endpoint_for(name: str, host: str, directory: Path) -> str:
    """The endpoint process ``name`` binds for a bus on ``host``.

    Parameters
    ----------
    name : str
        Process name (``"supervisor"``, ``"acquire"``, ...).
    host : str
        The ``[bus] host`` of the config (the supervisor's TCP relays bind there; the ipc://
        endpoints are the same for every host).
    directory : Path
        The session's private socket directory.

    Returns
    -------
    str
        ``ipc://<directory>/<name>``.

    Raises
    ------
    BusConfigError
        For a socket path too long for a Unix socket.
    """
    path = f"{directory}/{name}"
    if len(path.encode()) > MAX_IPC_PATH:
        raise BusConfigError(
            f"socket path {path} is longer than {MAX_IPC_PATH} bytes; "
            "set TMPDIR to a shorter folder"
        )
    return f"ipc://{path}"


def session_endpoints(names: list[str], host: str = "127.0.0.1") -> SessionEndpoints:
    """Make a private socket directory and one endpoint per process name in it.

    Parameters
    ----------
    names : list of str
        Process names.
    host : str
        The ``[bus] host`` of the config (see :func:`endpoint_for`).

    Returns
    -------
    SessionEndpoints
        The endpoints; call :meth:`SessionEndpoints.remove` when the session is over.
    """
    directory = Path(tempfile.mkdtemp(prefix="bci-bus-"))
    info = directory.stat()
    if stat.S_IMODE(info.st_mode) & 0o077 or info.st_uid != os.getuid():
        shutil.rmtree(directory, ignore_errors=True)
        raise BusConfigError(f"socket directory {directory} is not private to this user")
    try:
        endpoints = {name: endpoint_for(name, host, directory) for name in names}
    except BusConfigError:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return SessionEndpoints(endpoints, directory)
