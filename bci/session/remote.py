"""Nodes on other machines: which ones the supervisor waits for, and the door they join by.

A config marks a node as remote with ``[nodes.NAME] host = "..."``: the supervisor does not
start it but waits (within ``[session] ready_timeout_s``) for ``bci-node NAME --join
tcp://HOST:PORT --keys DIR`` (:mod:`bci.nodes.join`) to join from that machine. The door is a
CURVE-server ROUTER at ``tcp://[bus] host:[bus] port`` (requests: :mod:`bci.bus.join_protocol`);
next to it, on the following ports, the relays of :mod:`bci.session.relay` carry the remote
nodes' bus traffic and the supervisor's ``control``. Port ``P`` is the door, ``P + 1`` control,
and remote node ``i`` (in config order) publishes into ``P + 2 + 2i`` and receives from
``P + 3 + 2i``.

Security: every TCP socket here is a CURVE server with the session's keys, and the ZAP handler
admits only the machines in the keys folder's ``authorized/`` (:mod:`bci.bus.curve`). A bus
host that is not loopback, or a remote node, without ``[bus] keys`` is refused at start.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import zmq
from pylsl import local_clock

from bci.bus.curve import ZapHandler, authorized_keys, server_keys
from bci.bus.join_protocol import pack, unpack
from bci.bus.security import BusConfigError, is_local_endpoint
from bci.config import SessionConfig
from bci.session.relay import Relay

log = logging.getLogger(__name__)


@dataclass
class RemoteNode:
    """A node that runs on another machine, as the supervisor sees it (like a NodeProcess).

    It is never started, signalled or killed from here: it joins, heartbeats over the bus, and
    says when it leaves (with its exit code).
    """

    name: str
    host: str
    log_path: Path | None = None
    proc: None = None
    state: str = "not joined"
    restarts: int = 0
    last_beat: float = 0.0
    status: dict = field(default_factory=dict)
    exit_code: int | None = None
    machine: str = ""
    joined: bool = False
    left: bool = False
    error: str = ""
    last_contact: float = 0.0
    """When its clock pings last reached the door (they go on while the node sets up)."""

    def start(self) -> None:
        """Remote nodes are started on their machine; the supervisor only waits for them."""
        self.last_beat = time.monotonic()

    def poll(self) -> int | None:
        return self.exit_code

    @property
    def alive(self) -> bool:
        return self.joined and not self.left

    def signal(self, sig: int) -> None:
        """A remote node is stopped over the bus only."""

    def kill(self) -> None:
        """A remote node is stopped over the bus only."""

    def last_error(self) -> str:
        """The error line the node sent when it left, or ''."""
        return self.error

    def facts(self) -> dict:
        """What the summary reports about this node besides its exit code."""
        clock = self.status.get("clock") or {}
        return {"remote": True, "host": self.host, "machine": self.machine, "clock": clock}


def remote_nodes(config: SessionConfig) -> dict[str, RemoteNode]:
    """The config's ``[nodes.NAME] host`` entries as remote nodes."""
    return {name: RemoteNode(name, table.host) for name, table in config.nodes.items()}


def label(node: object) -> str:
    """``node 'render'``, with where it runs for a remote node."""
    name = getattr(node, "name", "?")
    if isinstance(node, RemoteNode):
        return f"node {name!r} (remote, on {node.host})"
    return f"node {name!r}"


def needs_host(config: SessionConfig) -> bool:
    """Whether the session binds TCP sockets: a remote node, or a bus host that is not loopback."""
    return bool(config.nodes) or not is_local_endpoint(f"tcp://{config.bus.host}:1")


def check_keys(config: SessionConfig) -> None:
    """Refuse a session that would face the network without CURVE keys.

    Raises
    ------
    BusConfigError
        One line naming the host or node and what to do.
    """
    bus = config.bus
    if not needs_host(config) or bus.keys:
        if bus.keys and not (Path(bus.keys) / "server.key_secret").is_file():
            raise BusConfigError(
                f"[bus] keys = {bus.keys!r} holds no server.key_secret; make the keys with "
                f"bci-keys {bus.keys} MACHINE..."
            )
        return
    what = (
        f"[bus] host = {bus.host!r} is not loopback"
        if not is_local_endpoint(f"tcp://{bus.host}:1")
        else f"remote node(s) {', '.join(config.nodes)}"
    )
    raise BusConfigError(
        f"{what}: the bus then needs CURVE keys; make them with bci-keys DIR MACHINE... and set "
        "[bus] keys = DIR"
    )


class RemoteHost:
    """The door and the relays for the remote nodes of one session.

    Parameters
    ----------
    config : SessionConfig
        The validated config.
    endpoints : dict
        Every process's ipc:// endpoint (the remote nodes' are their relays' outlets).
    nodes : dict
        The session's remote nodes (updated as they join, clock and leave).
    session : str
        The session's name (its folder's), told to joining nodes.
    """

    def __init__(
        self,
        config: SessionConfig,
        endpoints: dict[str, str],
        nodes: dict[str, RemoteNode],
        session: str,
    ) -> None:
        bus = config.bus
        self.config, self.nodes, self.session = config, nodes, session
        self.host, self.port = bus.host, bus.port
        self.keys = server_keys(Path(bus.keys))
        allowed = authorized_keys(Path(bus.keys))
        allowed[self.keys.public] = "session"
        self.context = zmq.Context()
        self.zap = ZapHandler(self.context, allowed)
        self.relays: list[Relay] = []
        self.ports: dict[str, dict[str, int]] = {}
        self._stop = threading.Event()
        tcp = f"tcp://{self.host}"
        try:
            self.relays.append(
                Relay(
                    self.context,
                    "control",
                    [endpoints["supervisor"]],
                    f"{tcp}:{self.port + 1}",
                    self.keys,
                )
            )
            for i, name in enumerate(nodes):
                up, down = self.port + 2 + 2 * i, self.port + 3 + 2 * i
                others = [ep for n, ep in endpoints.items() if n not in (name, "supervisor")]
                self.relays.append(
                    Relay(self.context, name, f"{tcp}:{up}", endpoints[name], self.keys)
                )
                self.relays.append(Relay(self.context, name, others, f"{tcp}:{down}", self.keys))
                self.ports[name] = {"publish": up, "subscribe": down, "control": self.port + 1}
            self.door = self.context.socket(zmq.ROUTER)
            self.door.linger = 0
            self.door.curve_secretkey = self.keys.secret
            self.door.curve_publickey = self.keys.public
            self.door.curve_server = True
            self.door.bind(f"{tcp}:{self.port}")
        except zmq.ZMQError as err:
            self.close()
            raise BusConfigError(
                f"cannot bind the session's network sockets on {self.host} ports "
                f"{self.port}-{self.port + 1 + 2 * len(nodes)}: {zmq.strerror(err.errno)}; another "
                "program holds one of them: set [bus] port to the first of a block of free ports"
            ) from None
        self._thread = threading.Thread(target=self._serve, name="bci-join", daemon=True)
        self._thread.start()

    def commands(self, keys_folder: str) -> list[str]:
        """For each awaited node, the line to run on its machine."""
        host = self.host if self.host not in ("*", "0.0.0.0", "::") else "THIS-MACHINE"
        lines = []
        for node in self.nodes.values():
            folder = Path(keys_folder) / node.host
            lines.append(
                f"waiting for node {node.name!r} to join from {node.host}; run there: "
                f"bci-node {node.name} --join tcp://{host}:{self.port} --keys {folder}"
                + (
                    ""
                    if folder.is_dir()
                    else f"  (no such folder: bci-keys {keys_folder} {node.host} makes it)"
                )
            )
        return lines

    # -- the door ---------------------------------------------------------------------------
    def _serve(self) -> None:
        door = self.door
        while not self._stop.is_set():
            if not door.poll(100):
                continue
            frames = door.recv_multipart(copy=False)
            if len(frames) < 3:
                continue
            # [peer, request id (REQ_CORRELATE), b"", request]: answer on the same envelope
            machine = frames[-1].get("User-Id") or ""
            request = unpack(frames[-1].bytes)
            reply = self._answer(request, machine) if request else {"ok": False, "error": "bad"}
            door.send_multipart([f.bytes for f in frames[:-1]] + [pack(reply)])

    def _answer(self, request: dict, machine: str) -> dict:
        op, name = request.get("op"), request.get("node")
        node = self.nodes.get(name) if isinstance(name, str) else None
        if op == "clock":
            if node is not None:
                node.last_contact = time.monotonic()
            return {"ok": True, "lsl": local_clock(), "wall": time.time()}
        if node is None:
            waiting = ", ".join(self.nodes) or "none"
            return {
                "ok": False,
                "error": f"this session has no remote node {name!r} (remote nodes: {waiting})",
            }
        if op == "join":
            if node.joined and not node.left:
                log.warning(
                    "refused a second node %r (from %s): it has joined already", name, machine
                )
                return {
                    "ok": False,
                    "error": f"node {name!r} has already joined session "
                    f"{self.session} (from {node.machine})",
                }
            node.joined, node.left, node.machine = True, False, machine
            node.state, node.last_beat = "joined", time.monotonic()
            node.last_contact = node.last_beat
            log.info("node %r joined from %s", name, machine)
            return {
                "ok": True,
                "session": self.session,
                "config": self.config.to_dict(),
                "ports": self.ports[name],
            }
        if op == "leave":
            code = request.get("exit_code")
            node.exit_code = code if isinstance(code, int) else None
            error = request.get("error")
            node.error = error[:500] if isinstance(error, str) else ""
            node.left = True
            node.state = "stopped"
            return {"ok": True}
        return {"ok": False, "error": f"unknown request {op!r}"}

    def close(self) -> None:
        """Close the door and the relays (after every node has stopped)."""
        self._stop.set()
        if getattr(self, "_thread", None) is not None:
            self._thread.join(timeout=2)
        if getattr(self, "door", None) is not None:
            self.door.close()
        for relay in self.relays:
            relay.close()
        self.zap.close()
        self.context.term()


def remote_headline(nodes: dict[str, dict]) -> list[str]:
    """One line per remote node of a summary's ``nodes``: where it ran and its clock offset."""
    lines = []
    for name, facts in nodes.items():
        if not facts.get("remote"):
            continue
        clock = facts.get("clock") or {}
        line = f"remote node {name} on {facts['host']} (key {facts.get('machine') or '-'})"
        if clock.get("n"):
            line += (
                f": clock offset {clock['offset_ms']:.3f} ms, jitter {clock['jitter_ms']:.3f} ms, "
                f"round trip {clock['rtt_ms']:.3f} ms ({clock['n']} round trips)"
            )
        lines.append(line)
    return lines


def silent_remote(nodes: dict, timeout_s: float) -> RemoteNode | None:
    """A remote node that joined, has not left, and has not pinged for ``timeout_s``."""
    now = time.monotonic()
    for node in nodes.values():
        if isinstance(node, RemoteNode) and node.alive and now - node.last_contact > timeout_s:
            return node
    return None
