"""A session across machines: ``render`` joins with ``bci-node`` over TCP + CURVE.

The acceptance run puts the joined node in its own network namespace (a veth pair, so its
traffic really crosses a network link) where the test may create one, else on loopback, which
takes the same join path. Real processes, LSL, ZeroMQ with CURVE, pygame on the dummy driver.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from free_ports import free_port_block
from session_helpers import REPO, node_processes, read_summary, start_session, write_config

from bci.bus.curve import create_keys

pytestmark = pytest.mark.slow


class _Lines:
    """Collect a process's stdout and stderr lines on threads (so that pipes never fill)."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: list[str] = []
        for stream in (proc.stdout, proc.stderr):
            threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if text in line:
                    return line
            time.sleep(0.05)
        raise AssertionError(f"no line with {text!r} in {self.lines[-20:]}")

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def _join(command: list[str], prefix: tuple[str, ...] = ()) -> subprocess.Popen:
    env = dict(os.environ, SDL_VIDEODRIVER="dummy")
    return subprocess.Popen(
        [*prefix, *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )


def _node_command(name: str, door: str, keys: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "bci.nodes.join",
        name,
        "--join",
        door,
        "--keys",
        str(keys),
        "--out",
        str(out),
        *extra,
    ]


class _Netns:
    """A network namespace joined to this one by a veth pair, or None where it cannot be made."""

    def __init__(self) -> None:
        tag = os.getpid() % 10000
        self.name, self.here, self.there = f"bci-t{tag}", f"vbh{tag}", f"vbn{tag}"
        subnet = f"10.211.{tag % 250}"
        self.host, self.peer = f"{subnet}.1", f"{subnet}.2"
        steps = [
            ["ip", "netns", "add", self.name],
            ["ip", "link", "add", self.here, "type", "veth", "peer", "name", self.there],
            ["ip", "link", "set", self.there, "netns", self.name],
            ["ip", "addr", "add", f"{self.host}/30", "dev", self.here],
            ["ip", "link", "set", self.here, "up"],
            [*self.exec, "ip", "addr", "add", f"{self.peer}/30", "dev", self.there],
            [*self.exec, "ip", "link", "set", self.there, "up"],
            [*self.exec, "ip", "link", "set", "lo", "up"],
        ]
        for step in steps:
            if subprocess.run(step, capture_output=True).returncode != 0:
                self.remove()
                raise OSError(f"cannot make a network namespace ({' '.join(step)})")

    @property
    def exec(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]

    def remove(self) -> None:
        subprocess.run(["ip", "link", "del", self.here], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


@pytest.fixture(scope="module")
def remote_session(tmp_path_factory):
    """A decode session whose render node joins from a network namespace (or loopback)."""
    tmp = tmp_path_factory.mktemp("remote")
    try:
        netns = _Netns()
        host, peer, prefix = netns.host, netns.peer, tuple(netns.exec)
    except (OSError, FileNotFoundError):
        netns, host, peer, prefix = None, "127.0.0.1", "127.0.0.1", ()
    port = free_port_block()
    create_keys(tmp / "keys", [peer])
    out = tmp / "session"
    config = write_config(
        tmp / "s.toml",
        bus={"host": host, "port": port, "keys": str(tmp / "keys")},
        nodes={"render": {"host": peer}},
    )
    session = node = None
    try:
        session = start_session(config, out)
        session_lines = _Lines(session)
        waiting = session_lines.wait_for("waiting for node 'render'")
        command = waiting.split("run there: ", 1)[1]
        door = command.split("--join ", 1)[1].split()[0]
        node = _join(_node_command("render", door, tmp / "keys" / peer, tmp / "node"), prefix)
        node_lines = _Lines(node)
        joined = node_lines.wait_for("joined session")
        # A second node under the same name is refused while the first runs.
        second = subprocess.run(
            [*prefix, *_node_command("render", door, tmp / "keys" / peer, tmp / "node2")],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
        )
        session.wait(timeout=120)
        node.wait(timeout=30)
    finally:
        for proc in (session, node):
            if proc is not None and proc.poll() is None:
                proc.kill()
        if netns is not None:
            netns.remove()
    yield {
        "tmp": tmp,
        "out": out,
        "session": session,
        "session_lines": session_lines,
        "node": node,
        "joined": joined,
        "second": second,
        "command": command,
        "door": door,
        "host": host,
        "peer": peer,
        "netns": netns is not None,
    }


def test_render_joined_over_curve_decodes_as_well_as_a_local_run(remote_session):
    r = remote_session
    assert r["session"].returncode == 0, r["session_lines"].text[-3000:]
    summary = read_summary(r["out"])
    assert summary["reason"] == "schedule done" and summary["errors"] == []
    # The local run's bar (tests/test_session_decode.py), on the same config.
    assert summary["trials"] == {"train": 60, "test": 8}
    decoding = summary["decoding"]
    assert decoding["n"] == 8
    assert decoding["latent_correlation"] > 0.3
    assert decoding["identification_2way"] > 0.7
    assert summary["latency_ms"]["n"] == 8 and summary["latency_ms"]["p50"] > 0
    assert summary["dropped"] == {}
    render = summary["nodes"]["render"]
    assert render["remote"] is True and render["host"] == r["peer"] and render["exit_code"] == 0
    assert render["machine"] == r["peer"]  # the key it was admitted with
    assert render["clock"]["n"] > 5 and abs(render["clock"]["offset_ms"]) < 5
    assert render["clock"]["jitter_ms"] >= 0
    assert f"remote node render on {r['peer']}" in r["session_lines"].text
    assert all(f["exit_code"] == 0 for f in summary["nodes"].values()), summary["nodes"]
    # Every image the remote node sent was recorded from its relay.
    assert summary["nodes"]["render"]["counters"]["stimuli_rendered"] == 68


def test_join_command_is_printed_and_the_node_names_the_session(remote_session):
    r = remote_session
    keys = r["tmp"] / "keys" / r["peer"]
    assert r["command"] == f"bci-node render --join {r['door']} --keys {keys}"
    assert r["door"].startswith(f"tcp://{r['host']}:")
    assert r["joined"] == f"bci-node: render joined session session at {r['door']}"
    assert r["node"].returncode == 0


def test_second_node_under_the_same_name_is_refused(remote_session):
    second = remote_session["second"]
    assert second.returncode == 2
    assert second.stderr.strip() == (
        "bci-node: node 'render' has already joined session session (from "
        f"{remote_session['peer']})"
    )


def test_no_orphan_processes(remote_session):
    assert node_processes(str(remote_session["tmp"])) == []


def test_unauthorised_key_is_refused_and_a_killed_remote_node_is_named(tmp_path):
    port = free_port_block()
    create_keys(tmp_path / "keys", ["127.0.0.1", "revoked"])
    (tmp_path / "keys" / "authorized" / "revoked.key").unlink()
    out = tmp_path / "session"
    config = write_config(
        tmp_path / "s.toml",
        session={"heartbeat_timeout_s": 3.0, "ready_timeout_s": 30.0},
        bus={"port": port, "keys": str(tmp_path / "keys")},
        nodes={"render": {"host": "127.0.0.1"}},
    )
    door = f"tcp://127.0.0.1:{port}"
    session, node = start_session(config, out), None
    lines = _Lines(session)
    try:
        lines.wait_for("waiting for node 'render'")
        refused = subprocess.run(
            _node_command(
                "render", door, tmp_path / "keys" / "revoked", tmp_path / "n0", "--timeout", "3"
            ),
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
        )
        assert refused.returncode == 2
        assert refused.stderr.startswith(f"bci-node: no answer from {door} within 3 s")
        lines.wait_for("refused a CURVE peer whose key is not authorised")
        node = _join(
            _node_command("render", door, tmp_path / "keys" / "127.0.0.1", tmp_path / "n1", "-v")
        )
        node_lines = _Lines(node)
        node_lines.wait_for("render ready", timeout=60)
        time.sleep(1.0)
        node.send_signal(signal.SIGKILL)
        session.wait(timeout=60)
    finally:
        session.kill()
        if node is not None:
            node.kill()
    assert session.returncode == 1, lines.text[-2000:]
    summary = read_summary(out)
    error = summary["errors"][0]
    assert error.startswith("node 'render' (remote, on 127.0.0.1) "), error
    assert "sent no heartbeat for 3 s" in error or "stopped answering while starting" in error
    others = {n: f["exit_code"] for n, f in summary["nodes"].items() if n != "render"}
    assert all(code == 0 for code in others.values()), others
    assert summary["nodes"]["render"]["remote"] is True
    assert node_processes(str(tmp_path)) == []


def test_a_bus_facing_the_network_without_keys_is_one_line(tmp_path):
    config = write_config(tmp_path / "s.toml", bus={"host": "10.1.2.3"})
    env = dict(os.environ, SDL_VIDEODRIVER="dummy")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bci.session.cli",
            "--mode",
            "decode",
            "--config",
            str(config),
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=REPO,
    )
    assert done.returncode == 2
    assert done.stderr == (
        "bci-session: [bus] host = '10.1.2.3' is not loopback: the bus then needs CURVE keys; "
        "make them with bci-keys DIR MACHINE... and set [bus] keys = DIR\n"
    )
