"""Node processes as the supervisor sees them: start, watch, stop, restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO


@dataclass
class NodeProcess:
    """One node's OS process and what the supervisor knows about it.

    Parameters
    ----------
    name : str
        Node name.
    session_file : Path
        The session JSON the node reads.
    log_path : Path
        Where its stdout and stderr go (appended across restarts).
    """

    name: str
    session_file: Path
    log_path: Path
    proc: subprocess.Popen | None = None
    state: str = "not started"
    restarts: int = 0
    last_beat: float = 0.0
    status: dict = field(default_factory=dict)
    past: list[dict] = field(default_factory=list)
    """The last heartbeat of each earlier run of a restarted node."""
    exit_code: int | None = None
    _log: IO[bytes] | None = None

    def start(self) -> None:
        """Start (or restart) the process; it gets its own process group."""
        self._log = open(self.log_path, "ab")  # noqa: SIM115
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bci.nodes", self.name, str(self.session_file)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        self.state = "starting"
        self.exit_code = None
        self.last_beat = time.monotonic()

    def poll(self) -> int | None:
        """The exit code if the process has ended, else None."""
        if self.proc is None:
            return self.exit_code
        code = self.proc.poll()
        if code is not None:
            self.exit_code = code
            if self._log:
                self._log.close()
                self._log = None
        return code

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.poll() is None

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the process (ignored if it has ended)."""
        if self.alive:
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        self.signal(signal.SIGKILL)

    def last_error(self) -> str:
        """The node's last ERROR line from its log, without the timestamp prefix, or ''."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        for line in reversed(lines):
            if " ERROR " in line:
                return line.split(": ", 1)[-1].strip()
            if line.startswith("Traceback") or "Error:" in line:
                return line.strip()
        return ""


def stop_all(nodes: list[NodeProcess], grace_s: float, kill_after_s: float) -> None:
    """Wait up to ``grace_s`` for nodes to exit, SIGTERM the rest, SIGKILL at ``kill_after_s``."""
    start = time.monotonic()
    terminated = False
    while any(n.alive for n in nodes):
        elapsed = time.monotonic() - start
        if elapsed >= kill_after_s:
            for n in nodes:
                n.kill()
            for n in nodes:
                if n.proc is not None:
                    n.proc.wait()
                    n.poll()
            break
        if elapsed >= grace_s and not terminated:
            for n in nodes:
                n.signal(signal.SIGTERM)
            terminated = True
        time.sleep(0.02)


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie, ended but not reaped, does not count)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): os.kill said it exists
    return stat.rsplit(") ", 1)[-1][:1] != "Z"
