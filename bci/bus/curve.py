"""CURVE key files for a session across machines, and the ZAP handler that admits only their keys.

``bci-keys DIR MACHINE...`` (:func:`create_keys`) writes, in ZeroMQ's certificate format (plain
text, Z85 keys; no pickle):

* ``DIR/server.key_secret`` (and ``server.key``): the session's key pair; every socket the
  supervisor's machine binds for other machines is a CURVE server with it;
* ``DIR/authorized/MACHINE.key``: the public key of each machine allowed to join;
* ``DIR/MACHINE/``: what to copy to that machine, its own key pair (``client.key_secret``) and
  the session's public key (``server.key``); ``bci-node --keys`` reads that folder.

:class:`ZapHandler` answers ZeroMQ's authentication requests (ZAP, RFC 27) for one context:
a CURVE client whose public key is not in ``authorized/`` is refused, and logged with its
address, before it can send or receive anything.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import zmq
import zmq.auth
from zmq.utils import z85

from bci.bus.security import BusConfigError, CurveKeys

log = logging.getLogger("bci.bus.curve")

AUTHORIZED = "authorized"
ZAP_ENDPOINT = "inproc://zeromq.zap.01"


def create_keys(directory: Path, machines: list[str]) -> list[Path]:
    """Create the session's server keys (if missing) and one client key per machine.

    Parameters
    ----------
    directory : Path
        The keys folder (created).
    machines : list of str
        Machine names (a host name or address); each gets ``directory/MACHINE/``.

    Returns
    -------
    list of Path
        The per-machine folders to copy.
    """
    for machine in machines:  # before anything is written
        if not machine or "/" in machine or machine.startswith("."):
            raise BusConfigError(f"machine name {machine!r} cannot name a folder")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    if not (directory / "server.key_secret").is_file():
        _, secret = zmq.auth.create_certificates(directory, "server")
        Path(secret).chmod(0o600)  # pyzmq leaves it to the umask; it is copied around
    server_public = (directory / "server.key").read_text()
    folders = []
    for machine in machines:
        folder = directory / machine
        folder.mkdir(exist_ok=True)
        folder.chmod(0o700)
        public, secret = zmq.auth.create_certificates(folder, "client")
        Path(secret).chmod(0o600)
        (folder / "server.key").write_text(server_public)
        (directory / AUTHORIZED).mkdir(exist_ok=True)
        (directory / AUTHORIZED / f"{machine}.key").write_text(Path(public).read_text())
        Path(public).unlink()  # the machine's public key lives in authorized/
        folders.append(folder)
    return folders


def _load(path: Path, what: str) -> tuple[bytes, bytes | None]:
    try:
        return zmq.auth.load_certificate(path)
    except (OSError, ValueError) as err:
        raise BusConfigError(f"cannot read the {what} {path}: {err}") from None


def server_keys(directory: Path) -> CurveKeys:
    """The session's key pair from a keys folder made by ``bci-keys``."""
    public, secret = _load(Path(directory) / "server.key_secret", "session's secret key")
    if secret is None:
        raise BusConfigError(f"{directory}/server.key_secret holds no secret key")
    return CurveKeys(public, secret)


def client_keys(directory: Path) -> tuple[CurveKeys, bytes]:
    """A joining machine's key pair and the session's public key (``bci-node --keys DIR``)."""
    public, secret = _load(Path(directory) / "client.key_secret", "machine's secret key")
    server, _ = _load(Path(directory) / "server.key", "session's public key")
    if secret is None:
        raise BusConfigError(f"{directory}/client.key_secret holds no secret key")
    return CurveKeys(public, secret), server


def authorized_keys(directory: Path) -> dict[bytes, str]:
    """Public key -> machine name of every machine in ``directory/authorized/``."""
    folder = Path(directory) / AUTHORIZED
    keys = {}
    for path in sorted(folder.glob("*.key")) if folder.is_dir() else []:
        public, _ = _load(path, "authorised key")
        keys[public] = path.stem
    return keys


class ZapHandler:
    """Admit CURVE clients whose key is authorised; refuse and log the others.

    Parameters
    ----------
    context : zmq.Context
        The context whose CURVE-server sockets this handler guards (bind it before they bind).
    allowed : dict
        Z85 public key -> name (the name becomes the connection's ZAP User-Id).
    """

    def __init__(self, context: zmq.Context, allowed: dict[bytes, str]) -> None:
        self.allowed = dict(allowed)
        self.refused: list[str] = []
        self._sock = context.socket(zmq.REP)
        self._sock.linger = 0
        self._sock.bind(ZAP_ENDPOINT)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bci-zap", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        sock = self._sock
        while not self._stop.is_set():
            if not sock.poll(100):
                continue
            frames = sock.recv_multipart()
            version, request_id, _domain, address, _identity, mechanism = frames[:6]
            user, status, text = "", b"400", b"refused"
            if mechanism == b"CURVE" and len(frames) > 6:
                key = z85.encode(frames[6])
                name = self.allowed.get(key)
                if name is not None:
                    user, status, text = name, b"200", b"OK"
                else:
                    note = f"{key.decode()} from {address.decode(errors='replace')}"
                    self.refused.append(note)
                    log.warning("refused a CURVE peer whose key is not authorised: %s", note)
            else:
                log.warning("refused a %s peer (only CURVE is accepted)", mechanism.decode())
            sock.send_multipart([version, request_id, status, text, user.encode(), b""])
        sock.close(linger=0)

    def close(self) -> None:
        """Stop answering (call after the guarded sockets have closed)."""
        self._stop.set()
        self._thread.join(timeout=2)
