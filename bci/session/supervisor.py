"""The supervisor: start the nodes, wait until they are ready, run, watch, stop, summarise.

One supervisor runs one session. It writes the session file every node reads (config, session
folder, bus endpoints: private ipc:// sockets, see :mod:`bci.session.endpoints`; only the
supervisor's carries ``control``), starts each node as its own process, and then watches three
things: exit codes (a node that died is named, and restarted when the config lists it under
``[session] restart``), heartbeats (a node silent for ``heartbeat_timeout_s`` is treated as hung),
and the ``events`` topic (a ``schedule_done`` from the display, the evolve node or the replay,
or the display's ``abort``, ends the session). Ctrl-C and SIGTERM stop the nodes in
:data:`STOP_ORDER`: a ``stop`` on the bus first, then SIGTERM, then SIGKILL. The sources are
stopped only once LabRecorder, the record node's child, has closed the XDF file (up to 5 s;
:data:`RECORDER_CLOSE_S` at most), so that none of its inlets sees its outlet go first.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from bci.bus import BusConfigError, Publisher, Subscriber
from bci.config import SessionConfig
from bci.io.labrecorder import hold_open
from bci.session.endpoints import session_endpoints
from bci.session.processes import NodeProcess, process_alive, stop_all
from bci.session.remote import (
    RemoteHost,
    RemoteNode,
    check_keys,
    label,
    needs_host,
    remote_nodes,
    silent_remote,
)

log = logging.getLogger(__name__)

STOP_GRACE_S = 2.5
STOP_KILL_S = 4.5
STAGE_GRACE_S = 0.5
"""Each stage of the stop gets at least this long before SIGTERM (a SIGTERM that arrives while a
node exits on its own, after its handler is gone, would kill it with -15)."""
STAGE_STOP_S = 1.5
"""Each stage of the stop gets at least this long before SIGKILL, even past ``STOP_KILL_S``."""
RECORD_STOP_S = 8.0
"""The record node's stage gets at least this long: it drains the bus, lets LabRecorder pull and
waits while LabRecorder closes the file (up to 5 s, see :mod:`bci.io.labrecorder`)."""
RECORDER_CLOSE_S = 15.0
"""How long the supervisor waits, after the nodes, for LabRecorder to close the XDF file."""

SOURCES = ("simulate", "display", "replay")
STOP_ORDER: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("quiet", SOURCES),
    ("stop", ()),
    ("stop", ("record",)),
    ("stop", SOURCES),
)
"""The end of a session: the sources go quiet (their outlets stay open, their inlets on each
other's streams close), everything else stops (the empty stage), then the recorder (it gets the
last samples of every open outlet), and the sources last."""


def _staged(name: str) -> bool:
    return name in SOURCES or name == "record"


NODES_BY_MODE = {
    "decode": ("record", "simulate", "render", "display", "acquire", "decode"),
    "evolve": ("record", "simulate", "render", "display", "acquire", "evolve"),
}
REPLAY_NODES_BY_MODE = {
    "decode": ("record", "replay", "render", "acquire", "decode"),
    "evolve": ("record", "replay", "render", "acquire", "evolve"),
}
"""A replay's recorded streams stand in for the simulator and the display's markers."""


@dataclass
class SessionResult:
    """How a session ended: exit code, reason, per-node facts and what the nodes reported."""

    exit_code: int = 0
    reason: str = ""
    errors: list[str] = field(default_factory=list)
    nodes: dict[str, dict] = field(default_factory=dict)
    statuses: dict[str, dict] = field(default_factory=dict)
    past_statuses: dict[str, list[dict]] = field(default_factory=dict)
    """Per restarted node, the last heartbeat of each of its earlier runs."""
    duration_s: float = 0.0


class Supervisor:
    """Run one session.

    Parameters
    ----------
    config : SessionConfig
        Validated config (:func:`bci.session.config.load_config`).
    out : Path
        Session folder (created).
    duration_s : float
        Stop after this many seconds (0: when the schedule is done).
    """

    def __init__(self, config: SessionConfig, out: Path, duration_s: float = 0.0) -> None:
        # the session's id, in the source_id of every LSL stream the session creates
        config = dataclasses.replace(config, session_id=uuid.uuid4().hex[:12])
        self.config = config
        self.out = Path(out)
        self.duration_s = duration_s or config.session.duration_s
        mode = config.session.mode
        if config.replay is not None:
            names = list(REPLAY_NODES_BY_MODE[mode])
        else:
            names = [n for n in NODES_BY_MODE[mode] if n != "simulate" or config.simulate.enabled]
        (self.out / "logs").mkdir(parents=True, exist_ok=True)
        check_keys(config)
        remote = {n: node for n, node in remote_nodes(config).items() if n in names}
        self.bus = session_endpoints(["supervisor", *names], config.bus.host)
        self.endpoints = self.bus.endpoints
        self.session_file = self.out / "session.json"
        self.session_file.write_text(
            json.dumps(
                {"config": config.to_dict(), "out": str(self.out), "endpoints": self.endpoints},
                indent=1,
            )
        )
        self.nodes: dict[str, NodeProcess | RemoteNode] = {
            n: remote.get(n) or NodeProcess(n, self.session_file, self.out / "logs" / f"{n}.log")
            for n in names
        }
        self.remote_host: RemoteHost | None = None
        self.result = SessionResult()
        self._signalled: str = ""
        self._recorder_inputs: dict[str, int] = {}

    # -- signals -----------------------------------------------------------------------------
    def _on_signal(self, signum: int, _frame: object) -> None:
        self._signalled = signal.Signals(signum).name

    # -- the session -------------------------------------------------------------------------
    def run(self) -> SessionResult:
        """Run the session to its end; always leaves no node process behind."""
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        control = Publisher(self.endpoints["supervisor"], name="supervisor")
        watch = Subscriber([self.endpoints[n] for n in self.nodes], topics=["heartbeat.", "events"])
        start = time.monotonic()
        try:
            if not self._open_remote_host():
                return self._finish(start)
            for node in self.nodes.values():
                node.start()
            log.info(
                "started %s",
                ", ".join(f"{n.name} (pid {n.proc.pid})" for n in self.nodes.values() if n.proc),
            )
            if self._wait_ready(watch, control):
                remote = any(isinstance(n, RemoteNode) for n in self.nodes.values())
                local = sum(not isinstance(n, RemoteNode) for n in self.nodes.values())
                # the control relay subscribes once for all remote nodes
                control.wait_for_subscribers("control", count=local + remote, timeout_ms=5000)
                control.publish("control", kind="control", meta={"command": "start"})
                log.info("all nodes ready; session running")
                self._watch(watch, control, start)
        finally:
            self._stop_in_order(control)
            self._drain(watch)
            self._wait_for_recorder()
            watch.close()
            control.close()
            if self.remote_host is not None:
                self.remote_host.close()
            self.bus.remove()
            for s, handler in previous.items():
                signal.signal(s, handler)
        return self._finish(start)

    def _finish(self, start: float) -> SessionResult:
        self.result.duration_s = time.monotonic() - start
        self.result.nodes = {
            n.name: {
                "exit_code": n.exit_code,
                "restarts": n.restarts,
                **(n.facts() if isinstance(n, RemoteNode) else {}),
            }
            for n in self.nodes.values()
        }
        self.result.statuses = {n.name: n.status for n in self.nodes.values()}
        self.result.past_statuses = {
            n.name: list(n.past) for n in self.nodes.values() if getattr(n, "past", None)
        }
        return self.result

    def _open_remote_host(self) -> bool:
        """Open the door and relays for nodes on other machines, and print how they join."""
        if not needs_host(self.config):
            return True
        remote = {n: node for n, node in self.nodes.items() if isinstance(node, RemoteNode)}
        try:
            self.remote_host = RemoteHost(self.config, self.endpoints, remote, self.out.name)
        except BusConfigError as err:
            self._fail(str(err), code=2)
            return False
        for line in self.remote_host.commands(self.config.bus.keys):
            print(line, flush=True)
        return True

    def _fail(self, reason: str, code: int = 1) -> None:
        if not self.result.reason:
            self.result.reason = reason
        self.result.errors.append(reason)
        self.result.exit_code = self.result.exit_code or code
        log.error("%s", reason)

    def _note_message(self, msg) -> str | None:
        """Track heartbeats; return the kind of a session-ending event, if any."""
        if msg.topic.startswith("heartbeat."):
            node = self.nodes.get(msg.meta.get("node", ""))
            if node is not None:
                node.state = msg.meta.get("state", node.state)
                node.status = msg.meta
                node.last_beat = time.monotonic()
                if node.name == "record":
                    self._hold_recorder_input(msg.meta.get("labrecorder_stdin"))
            return None
        if msg.topic == "events" and msg.kind in ("schedule_done", "abort"):
            return msg.kind
        return None

    def _stop_in_order(self, control: Publisher) -> None:
        """End the session in :data:`STOP_ORDER`, within one stop budget.

        The record node, stopped after the pipeline, receives what the others sent before they
        exited, and LabRecorder pulls the quiet sources' last samples before their outlets go
        (see :mod:`bci.nodes.record`); acquire's inlets close before the outlets they read.
        """
        start = time.monotonic()
        for command, stage in STOP_ORDER:
            names = [n for n in self.nodes if n in stage or (not stage and not _staged(n))]
            if not names:
                continue
            control.publish("control", kind="control", meta={"command": command, "nodes": names})
            if command == "quiet":
                continue
            elapsed = time.monotonic() - start
            grace = max(STAGE_GRACE_S, STOP_GRACE_S - elapsed)
            least = RECORD_STOP_S if "record" in names else STAGE_STOP_S
            stop_all([self.nodes[n] for n in names], grace, max(least, STOP_KILL_S - elapsed))
            if "record" in names:  # the sources' outlets stay until LabRecorder closed its inlets
                self._wait_for_recorder()

    def _drain(self, watch: Subscriber) -> None:
        while (msg := watch.recv(timeout_ms=0)) is not None:
            self._note_message(msg)

    def _hold_recorder_input(self, fifo: object) -> None:
        """Hold LabRecorder's input pipe open (the record node reports it, in this session's
        private socket directory), so that LabRecorder records on if the record node dies: a
        restarted one ends it once its own LabRecorder collects, and the stop lets it go."""
        if not isinstance(fifo, str) or fifo in self._recorder_inputs:
            return
        if Path(fifo).parent != self.bus.directory:
            return
        fd = hold_open(fifo)
        if fd is not None:
            self._recorder_inputs[fifo] = fd

    def _release_recorder_inputs(self) -> None:
        """Let go of LabRecorders' input pipes: one whose record node has died sees its input
        end, which it takes as Enter, and closes its file."""
        for fd in self._recorder_inputs.values():
            os.close(fd)
        self._recorder_inputs.clear()

    def _wait_for_recorder(self) -> None:
        """Wait while LabRecorder (started by the record node, by each run of it if it was
        restarted) closes the XDF file."""
        self._release_recorder_inputs()
        record = self.nodes.get("record")
        if record is None:
            return
        runs = [*getattr(record, "past", []), record.status]
        pids = {int(p) for s in runs if type(p := s.get("labrecorder_pid")) is int and p > 0}
        deadline = time.monotonic() + RECORDER_CLOSE_S
        while any(map(process_alive, pids)) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in filter(process_alive, pids):
            os.kill(pid, signal.SIGKILL)
            self.result.errors.append(
                f"LabRecorder did not close the XDF file within {RECORDER_CLOSE_S:g} s; killed"
            )
            log.error("%s", self.result.errors[-1])

    def _dead_node(self) -> NodeProcess | None:
        for node in self.nodes.values():
            if node.poll() is not None:  # a remote node's, once it has left
                return node
        return None

    def _wait_ready(self, watch: Subscriber, control: Publisher) -> bool:
        deadline = time.monotonic() + self.config.session.ready_timeout_s
        while time.monotonic() < deadline:
            if self._signalled:
                self._fail(f"stopped by {self._signalled} while starting", code=130)
                return False
            dead = self._dead_node()
            if dead is not None:
                detail = dead.last_error() or "no error logged"
                self._fail(
                    f"node {dead.name!r} exited with code {dead.exit_code} while starting: {detail}"
                )
                return False
            silent = silent_remote(self.nodes, self.config.session.heartbeat_timeout_s)
            if silent is not None:
                silent.left = True
                self._fail(f"{label(silent)} joined but stopped answering while starting")
                return False
            msg = watch.recv(timeout_ms=50)
            if msg is not None:
                self._note_message(msg)
            if all(n.state in ("ready", "running") for n in self.nodes.values()):
                return True
        waiting = [
            n.name + (f" (remote, {n.state} from {n.host})" if isinstance(n, RemoteNode) else "")
            for n in self.nodes.values()
            if n.state not in ("ready", "running")
        ]
        self._fail(
            f"nodes not ready after {self.config.session.ready_timeout_s:.0f} s: "
            f"{', '.join(waiting)}"
        )
        return False

    def _watch(self, watch: Subscriber, control: Publisher, start: float) -> None:
        hb_timeout = self.config.session.heartbeat_timeout_s
        restartable = set(self.config.session.restart)
        max_restarts = self.config.session.max_restarts
        while True:
            if self._signalled:
                self.result.reason = f"stopped by {self._signalled}"
                self.result.exit_code = 130 if self._signalled == "SIGINT" else 143
                log.warning("%s: stopping all nodes", self.result.reason)
                return
            if self.duration_s and time.monotonic() - start >= self.duration_s:
                self.result.reason = f"duration of {self.duration_s:g} s reached"
                return
            msg = watch.recv(timeout_ms=50)
            if msg is not None and (ending := self._note_message(msg)):
                self.result.reason = "schedule done" if ending == "schedule_done" else "aborted"
                return
            now = time.monotonic()
            for node in self.nodes.values():
                code = node.poll()
                hung = code is None and now - node.last_beat > hb_timeout
                if code is None and not hung:
                    continue
                what = (
                    f"{label(node)} died (exit code {code})"
                    if code is not None
                    else f"{label(node)} sent no heartbeat for {hb_timeout:g} s"
                )
                if hung and node.proc is not None:
                    node.kill()
                    node.proc.wait()
                    node.poll()
                elif hung:
                    node.left = True  # a silent remote node: nothing to wait for at the stop
                detail = node.last_error()
                local = node.proc is not None
                if local and node.name in restartable and node.restarts < max_restarts:
                    self.result.errors.append(what + (f": {detail}" if detail else ""))
                    node.restarts += 1
                    log.warning("%s; restarting it (%d/%d)", what, node.restarts, max_restarts)
                    node.past.append(node.status)  # what it sent and wrote counts too
                    node.status = {}
                    node.start()
                    continue
                self._fail(what + (f": {detail}" if detail else ""))
                return
            if msg is not None and any(
                n.restarts and n.state == "ready" for n in self.nodes.values()
            ):
                # A restarted node reports ready again: start it.
                control.publish("control", kind="control", meta={"command": "start"})
