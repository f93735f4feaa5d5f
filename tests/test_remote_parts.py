"""The parts of a session across machines, without a session: keys, the ZAP handler, the door,
the clock offset estimate and the config tables."""

from __future__ import annotations

import stat
import tempfile
from pathlib import Path

import numpy as np
import pytest
import zmq
import zmq.auth
from free_ports import free_port_block

from bci.bus import BusConfigError, Publisher, Subscriber
from bci.bus.curve import authorized_keys, client_keys, create_keys, server_keys
from bci.bus.join_protocol import ask, request_socket, unpack
from bci.nodes.clock_offset import ClockOffset
from bci.session.config import config_to_toml, load_config, validate_config
from bci.session.remote import RemoteHost, RemoteNode
from bci.session.schema import ConfigError


def test_clock_offset_takes_the_shortest_round_trip_and_reports_the_spread():
    est = ClockOffset(window=8)
    true = 12.5
    rng = np.random.default_rng(0)
    for i in range(20):
        t0 = float(i)
        out_leg, back_leg = 0.001 + rng.uniform(0, 0.004), 0.001 + rng.uniform(0, 0.004)
        remote = t0 + out_leg + true
        est.add(t0, t0 + out_leg + back_leg, remote, t0, t0 + out_leg + back_leg, remote)
    best = min(est.samples, key=lambda s: s.rtt_s)
    assert est.lsl_offset_s == best.lsl_offset_s
    assert abs(est.lsl_offset_s - true) <= best.rtt_s / 2  # the bound of the method
    summary = est.summary()
    assert summary["n"] == 20 and summary["jitter_ms"] > 0
    spread = np.std([s.lsl_offset_s for s in est.samples]) * 1e3
    assert summary["jitter_ms"] == pytest.approx(spread, abs=1e-4)


def test_keys_folders_hold_what_each_machine_needs(tmp_path):
    folders = create_keys(tmp_path / "keys", ["gpu", "stim"])
    assert [f.name for f in folders] == ["gpu", "stim"]
    server = server_keys(tmp_path / "keys")
    keys, server_public = client_keys(tmp_path / "keys" / "gpu")
    assert server_public == server.public
    assert authorized_keys(tmp_path / "keys") == {
        keys.public: "gpu",
        client_keys(tmp_path / "keys" / "stim")[0].public: "stim",
    }
    assert not (tmp_path / "keys" / "gpu" / "server.key_secret").exists()
    create_keys(tmp_path / "keys", ["later"])  # adding a machine keeps the session's keys
    assert server_keys(tmp_path / "keys") == server
    # secret keys are the owner's alone (they were 0644 under the usual umask)
    secrets = sorted((tmp_path / "keys").rglob("*.key_secret"))
    assert len(secrets) == 4 and {stat.S_IMODE(p.stat().st_mode) for p in secrets} == {0o600}
    # a bad machine name writes nothing (the server keys were made first)
    with pytest.raises(BusConfigError, match=r"machine name '\.\./x' cannot name a folder"):
        create_keys(tmp_path / "new", ["ok", "../x"])
    assert not (tmp_path / "new").exists()


def test_door_admits_authorised_keys_refuses_others_and_relays_curve_traffic(tmp_path, caplog):
    create_keys(tmp_path / "keys", ["gpu"])
    port = free_port_block()
    config = validate_config(
        {
            "stimuli": {"path": "faces"},
            "bus": {"host": "127.0.0.1", "port": port, "keys": str(tmp_path / "keys")},
            "nodes": {"render": {"host": "gpu"}},
        }
    )
    folder = Path(tempfile.mkdtemp(dir="/tmp"))
    endpoints = {n: f"ipc://{folder}/{n}" for n in ("supervisor", "render", "display")}
    host = RemoteHost(config, endpoints, {"render": RemoteNode("render", "gpu")}, "s1")
    ctx = zmq.Context()
    door = f"tcp://127.0.0.1:{port}"
    try:
        keys, server = client_keys(tmp_path / "keys" / "gpu")
        sock = request_socket(ctx, door, keys, server)
        reply = ask(sock, {"op": "join", "node": "render"}, 5000)
        assert reply["ok"] and reply["session"] == "s1" and host.nodes["render"].machine == "gpu"
        again = ask(sock, {"op": "join", "node": "render"}, 5000)
        assert again == {
            "ok": False,
            "error": "node 'render' has already joined session s1 (from gpu)",
        }
        unknown = ask(sock, {"op": "join", "node": "decode"}, 5000)
        assert unknown["error"] == "this session has no remote node 'decode' (remote nodes: render)"
        # A key that is not in authorized/ gets no answer, and is logged.
        rogue = tmp_path / "rogue"
        rogue.mkdir()
        zmq.auth.create_certificates(rogue, "client")
        (rogue / "server.key").write_text((tmp_path / "keys" / "server.key").read_text())
        other, _ = client_keys(rogue)
        with caplog.at_level("WARNING", logger="bci.bus.curve"):
            assert ask(request_socket(ctx, door, other, server), {"op": "clock"}, 1500) is None
        assert host.zap.refused and host.zap.refused[0].startswith(other.public.decode())
        assert "not authorised" in caplog.text
        # What the remote node publishes comes out of its relay at its ipc:// endpoint.
        ports = reply["ports"]
        sub = Subscriber([endpoints["render"]], topics=["images"])
        pub = Publisher(
            f"tcp://127.0.0.1:{ports['publish']}",
            bind=False,
            name="render",
            curve=keys,
            curve_server_key=server,
        )
        assert pub.wait_for_subscribers("images", timeout_ms=5000)
        pub.publish("images", [np.arange(6, dtype=np.uint8)], kind="stimuli")
        msg = sub.recv(timeout_ms=5000)
        assert msg is not None and msg.arrays[0].tolist() == list(range(6))
        pub.close()
        sub.close()
        assert ask(sock, {"op": "leave", "node": "render", "exit_code": 0}, 5000) == {"ok": True}
        assert host.nodes["render"].exit_code == 0 and not host.nodes["render"].alive
        sock.close()
    finally:
        host.close()
        ctx.term()


def test_join_messages_are_msgpack_maps_only():
    assert unpack(b"\x93\x01\x02\x03") is None  # a list
    assert unpack(b"\x80") == {}
    assert unpack(b"not msgpack \xc1") is None


def test_nodes_tables_round_trip_and_name_known_nodes(tmp_path):
    raw = {
        "stimuli": {"path": "faces"},
        "bus": {"host": "192.168.1.10", "port": 47200, "keys": "keys"},
        "nodes": {"render": {"host": "192.168.1.20"}},
    }
    path = tmp_path / "c.toml"
    path.write_text(config_to_toml(raw))
    config = load_config(path)
    assert config["nodes"] == {"render": {"host": "192.168.1.20"}}
    assert config["bus"] == {"host": "192.168.1.10", "port": 47200, "keys": str(tmp_path / "keys")}
    path.write_text(config_to_toml({**raw, "nodes": {"rendr": {"host": "x"}}}))
    with pytest.raises(ConfigError, match=r"\[nodes.rendr\] names unknown node 'rendr'"):
        load_config(path)
    path.write_text(config_to_toml({**raw, "nodes": {"render": {}}}))
    with pytest.raises(ConfigError, match=r"\[nodes.render\] needs key 'host'"):
        load_config(path)


def _render_host(tmp_path: Path):
    """A free port block and a function that starts the session's door there for ``render``
    (machine ``gpu``, keys in ``tmp_path / "keys"``)."""
    create_keys(tmp_path / "keys", ["gpu"])
    port = free_port_block()
    config = validate_config(
        {
            "stimuli": {"path": "faces"},
            "bus": {"host": "127.0.0.1", "port": port, "keys": str(tmp_path / "keys")},
        }
    )
    folder = Path(tempfile.mkdtemp(dir="/tmp"))
    endpoints = {n: f"ipc://{folder}/{n}" for n in ("supervisor", "render")}
    return port, lambda: RemoteHost(
        config, endpoints, {"render": RemoteNode("render", "gpu")}, "s1"
    )


def test_a_busy_port_is_named_and_nothing_stays_bound(tmp_path):
    import socket

    port, start_host = _render_host(tmp_path)
    squatter = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    squatter.bind(("127.0.0.1", port + 3))  # the render relay's downstream port
    squatter.listen()
    try:
        with pytest.raises(BusConfigError) as err:
            start_host()
    finally:
        squatter.close()
    assert str(err.value) == (
        f"cannot bind the session's network sockets on 127.0.0.1 ports {port}-{port + 3}: "
        "Address already in use; another program holds one of them: set [bus] port to the "
        "first of a block of free ports"
    )
    # the ports it did bind were let go: the same session starts once the squatter has gone
    host = start_host()
    host.close()


def test_joined_node_knows_when_the_supervisor_is_gone(tmp_path):
    import time

    from bci.nodes.clock_offset import ClockWatch

    port, start_host = _render_host(tmp_path)
    host = start_host()
    keys, server = client_keys(tmp_path / "keys" / "gpu")
    ctx = zmq.Context()
    watch = ClockWatch(ctx, f"tcp://127.0.0.1:{port}", keys, server, "render", 1.0, 0.05)
    try:
        deadline = time.monotonic() + 5
        while watch.offset.n < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert watch.offset.n >= 5 and watch.alive()
        assert abs(watch.offset.summary()["offset_ms"]) < 5  # one machine, one clock
        host.close()
        time.sleep(1.5)
        assert not watch.alive()
    finally:
        watch.stop()
        ctx.term()
