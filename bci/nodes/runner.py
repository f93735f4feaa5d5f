"""Run one node as its own OS process: sockets, heartbeats, control, clean stop.

Started by the supervisor as ``python -m bci.nodes NAME SESSION_JSON``. The session file holds
the validated config, the session folder, and the bus endpoint of every process. The runner:

* binds the node's publisher at its endpoint and connects its subscriber to every other process;
* calls ``setup`` and then reports ``ready`` in its heartbeats (``heartbeat.<name>``);
* runs ``start`` on the supervisor's ``control`` ``start`` message, and stops on ``stop``,
  SIGTERM, or when its parent (the supervisor) has gone, so no node outlives a session;
* ignores SIGINT: on Ctrl-C the supervisor stops the nodes in order.

Exit codes: 0 after a clean stop, 1 after a :class:`~bci.nodes.base.NodeError` or an LSL
``StreamError`` (its one-line message is logged), 2 after any other exception (with its
traceback in the node's log).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from pathlib import Path

from bci.bus import Publisher, Subscriber
from bci.logs import setup_logging
from bci.lsl.streams import StreamError
from bci.nodes.base import Node, NodeError
from bci.nodes.registry import node_class

log = logging.getLogger(__name__)


class _StopFlag:
    def __init__(self) -> None:
        self.stop = False

    def __call__(self, *_: object) -> None:
        self.stop = True


def run_node(name: str, session: dict) -> int:
    """Run node ``name`` until it is told to stop; return its exit code."""
    config = session["config"]
    cls = node_class(name, config["session"]["mode"])
    endpoints: dict[str, str] = session["endpoints"]
    flag = _StopFlag()
    signal.signal(signal.SIGTERM, flag)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()

    publisher = Publisher(endpoints[name], name=name)
    others = [ep for other, ep in endpoints.items() if other != name]
    subscriber = Subscriber(others, topics=[*cls.topics, "control"])
    node: Node = cls(config, Path(session["out"]), publisher)
    heartbeat_s = float(config["session"]["heartbeat_s"])
    next_beat = 0.0

    def beat(state: str) -> None:
        nonlocal next_beat
        bus = {"received": subscriber.stats.as_dict(), "sent": publisher.stats.as_dict()}
        publisher.publish(
            f"heartbeat.{name}",
            kind="heartbeat",
            meta={"node": name, "state": state, "pid": os.getpid(), "bus": bus, **node.status()},
        )
        next_beat = time.monotonic() + heartbeat_s

    code = 0
    try:
        beat("starting")
        node.setup()
        log.info("%s ready", name)
        beat("ready")
        while not flag.stop and not node.finished:
            msg = subscriber.recv(timeout_ms=node.poll_ms)
            if msg is not None:
                if msg.topic == "control":
                    command = msg.meta.get("command")
                    if command == "start" and not node.started:
                        node.start()
                    elif command == "stop":
                        break
                else:
                    node.handle(msg)
            node.tick()
            if time.monotonic() >= next_beat:
                beat("running" if node.started else "ready")
                if os.getppid() != parent:
                    log.error("%s: the supervisor is gone; stopping", name)
                    break
    except (NodeError, StreamError) as err:
        log.error("%s", err)
        code = 1
    except Exception:
        log.exception("%s failed", name)
        code = 2
    finally:
        try:
            node.teardown()
        except Exception:
            log.exception("%s: teardown failed", name)
            code = code or 2
        dropped = subscriber.stats.dropped
        beat("stopped")
        if dropped:
            log.info("%s: sequence gaps per topic: %s", name, dict(dropped))
        subscriber.close()
        publisher.close()
    return code


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m bci.nodes NAME SESSION_JSON``."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m bci.nodes NAME SESSION_JSON", file=sys.stderr)
        return 2
    name, session_file = argv
    setup_logging(quiet=logging.INFO)  # stderr is the node's log file in the session folder
    session = json.loads(Path(session_file).read_text())
    return run_node(name, session)
