"""Run real node processes in tests: the test plays the supervisor on a real bus."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bci.bus import Message, Publisher, Subscriber
from bci.session.endpoints import session_endpoints


class NodeProcess:
    """One node started as ``python -m bci.nodes NAME SESSION_JSON`` with the test as supervisor.

    Parameters
    ----------
    name : str
        Node to run.
    config : SessionConfig
        A validated config (``validate_config``); the node reads it back from the session file.
    out : Path
        Session folder (logs go to ``out/logs/NAME.log``).
    topics : list of str
        What the test subscribes to from the node (heartbeats are always included).
    peers : dict, optional
        Extra endpoints (e.g. another node started by the test) the node should connect to.
    """

    def __init__(
        self,
        name: str,
        config: dict,
        out: Path,
        topics: list[str],
        peers: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.out = Path(out)
        (self.out / "logs").mkdir(parents=True, exist_ok=True)
        self.bus = session_endpoints(["supervisor", name])
        endpoints = dict(self.bus.endpoints)
        endpoints.update(peers or {})
        self.endpoints = endpoints
        self.control = Publisher(endpoints["supervisor"], name="supervisor")
        self.session_file = self.out / f"session-{name}.json"
        self.session_file.write_text(
            json.dumps({"config": config.to_dict(), "out": str(self.out), "endpoints": endpoints})
        )
        self.log_path = self.out / "logs" / f"{name}.log"
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bci.nodes", name, str(self.session_file)],
            stdout=open(self.log_path, "w"),
            stderr=subprocess.STDOUT,
            env=env,
        )
        self.sub = Subscriber([endpoints[name]], topics=[*topics, "heartbeat."])
        self.state = "starting"

    def recv(self, timeout_s: float = 5.0, topic: str | None = None) -> Message | None:
        """Next message (of ``topic`` if given, heartbeats tracked but skipped)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            msg = self.sub.recv(timeout_ms=50)
            if msg is None:
                if self.proc.poll() is not None:
                    return None
                continue
            if msg.topic.startswith("heartbeat."):
                self.state = msg.meta.get("state", self.state)
                continue
            if topic is None or msg.topic == topic:
                return msg
        return None

    def wait_state(self, state: str, timeout_s: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.state != state:
            msg = self.sub.recv(timeout_ms=50)
            if msg is not None and msg.topic.startswith("heartbeat."):
                self.state = msg.meta.get("state", self.state)
            if self.proc.poll() is not None:
                return False
        return self.state == state

    def send(self, command: str, **meta) -> None:
        self.control.wait_for_subscribers("control", timeout_ms=5000)
        self.control.publish("control", kind="control", meta={"command": command, **meta})

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def stop(self, timeout_s: float = 5.0) -> int:
        """Ask the node to stop; kill it if it does not; return its exit code."""
        if self.proc.poll() is None:
            try:
                self.send("stop")
            except Exception:
                pass
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.sub.close()
        self.control.close()
        self.bus.remove()
        return self.proc.returncode
