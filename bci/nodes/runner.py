"""Run one node as its own OS process: sockets, heartbeats, control, clean stop.

Started by the supervisor as ``python -m bci.nodes NAME SESSION_JSON``. The session file holds
the validated config, the session folder, and the bus endpoint of every process. The runner:

* binds the node's publisher at its endpoint (an XPUB only when the node waits for subscribers)
  and connects its subscriber to every other node;
* takes ``control`` only from a second subscriber connected to the supervisor's endpoint alone
  (the one socket only the supervisor binds): ``control`` published by anything else is ignored;
* skips, with a count (``skipped_<topic>``) and one warning, messages that lack a meta field the
  node needs (:attr:`~bci.nodes.base.Node.needs_meta`);
* calls ``setup`` and then reports ``ready`` in its heartbeats (``heartbeat.<name>``);
* runs ``start`` on the supervisor's ``control`` ``start`` message; on ``quiet`` calls ``quiet``
  and stops handling messages and calling ``tick`` (a source stops pushing but keeps its LSL
  outlets open, so the recorder can pull their last samples); stops on ``stop``, SIGTERM, or
  when its parent (the supervisor) has gone, so no node outlives a session;
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bci.bus import Message, Publisher, Subscriber
from bci.config import SessionConfig
from bci.logs import setup_logging
from bci.lsl.counting_outlet import samples_sent
from bci.lsl.streams import StreamError
from bci.nodes.base import Node, NodeError
from bci.nodes.registry import node_class

log = logging.getLogger(__name__)


class _StopFlag:
    def __init__(self) -> None:
        self.stop = False

    def __call__(self, *_: object) -> None:
        self.stop = True


Sockets = tuple[Publisher, Subscriber, Subscriber]


def local_sockets(name: str, cls: type[Node], endpoints: dict[str, str]) -> Sockets:
    """A node's publisher, subscriber and control subscriber on the session's ipc:// endpoints."""
    publisher = Publisher(endpoints[name], name=name, watch_subscriptions=cls.waits_for_subscribers)
    others = [ep for other, ep in endpoints.items() if other not in (name, "supervisor")]
    subscriber = Subscriber(others, topics=cls.topics)
    control = Subscriber([endpoints["supervisor"]], topics=["control"])
    return publisher, subscriber, control


def run_node(
    name: str,
    session: dict,
    *,
    sockets: Callable[[type[Node]], Sockets] | None = None,
    supervisor_alive: Callable[[], bool] | None = None,
    on_beat: Callable[[Node, Publisher], dict[str, Any]] | None = None,
) -> int:
    """Run node ``name`` until it is told to stop; return its exit code.

    Parameters
    ----------
    name : str
        The node.
    session : dict
        The session file's content (``config``, ``out``, ``endpoints``).
    sockets : callable, optional
        Makes the node's three sockets from its class (default: :func:`local_sockets`; a node
        joined from another machine connects over TCP, see :mod:`bci.nodes.join`).
    supervisor_alive : callable, optional
        Whether the supervisor is still there (default: this process's parent is).
    on_beat : callable, optional
        Called before each heartbeat; what it returns goes into the heartbeat.
    """
    config = SessionConfig.from_dict(session["config"], source="the session file")
    cls = node_class(name, config.session.mode)
    flag = _StopFlag()
    # Until set-up is done a node holds no data, and its set-up may block in a C call (an LSL
    # resolve) that a Python handler would wait out: SIGTERM ends it at once. After set-up it
    # sets the stop flag, and the node stops in order.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()
    alive = supervisor_alive or (lambda: os.getppid() == parent)

    if sockets is None:
        publisher, subscriber, control = local_sockets(name, cls, session["endpoints"])
    else:
        publisher, subscriber, control = sockets(cls)
    node: Node = cls(config, Path(session["out"]), publisher)
    heartbeat_s = config.session.heartbeat_s
    next_beat = 0.0

    def beat(state: str) -> None:
        nonlocal next_beat
        bus = {"received": subscriber.stats.as_dict(), "sent": publisher.stats.as_dict()}
        meta = {"node": name, "state": state, "pid": os.getpid(), "bus": bus}
        extra = on_beat(node, publisher) if on_beat is not None else {}
        publisher.publish(
            f"heartbeat.{name}",
            kind="heartbeat",
            meta={**meta, "lsl_sent": samples_sent(), **node.status(), **extra},
        )
        next_beat = time.monotonic() + heartbeat_s

    code = 0
    try:
        beat("starting")
        node.setup()
        signal.signal(signal.SIGTERM, flag)
        log.info("%s ready", name)
        beat("ready")
        quiet = False
        while not flag.stop and not node.finished:
            msg = subscriber.recv(
                timeout_ms=max(node.poll_ms, QUIET_POLL_MS) if quiet else node.poll_ms
            )
            if msg is not None and msg.topic != "control" and not quiet:
                if has_needed_meta(node, msg):
                    node.handle(msg)
            command = _control_command(control, name)
            if command == "start" and not node.started:
                node.start()
            elif command == "quiet" and not quiet:
                quiet = True  # a source goes silent but keeps its LSL outlets open
                node.quiet()
            elif command == "stop":
                _drain(node, subscriber)
                break
            if not quiet:
                node.tick()
            publisher.read_subscriptions()  # bounded cost of subscription notifications
            if time.monotonic() >= next_beat:
                beat("running" if node.started else "ready")
                if not alive():
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
        control.close()
        publisher.close()
        # A SIGTERM from here on (the supervisor's, as this node exits on its own) must not turn
        # a clean exit into -15 while the interpreter shuts down; SIGKILL still ends a hang.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    return code


def _control_command(control: Subscriber, name: str) -> str | None:
    """The supervisor's newest command for this node on the control socket (``stop`` wins).

    A command whose meta has ``nodes`` (a list of names) is for those nodes only: the supervisor
    stops the sources first and the record node last, so that nothing sent is left unrecorded.
    """
    command = None
    while (msg := control.recv(timeout_ms=0)) is not None:
        nodes = msg.meta.get("nodes")
        if isinstance(nodes, list) and name not in nodes:
            continue
        value = msg.meta.get("command")
        if value in _PRECEDENCE and _PRECEDENCE[value] > _PRECEDENCE.get(command, -1):
            command = value
    return command


_PRECEDENCE = {"start": 0, "quiet": 1, "stop": 2}
"""Of several commands waiting at once, the strongest is obeyed."""
QUIET_POLL_MS = 50.0


def _drain(node: Node, subscriber: Subscriber) -> None:
    """Before stopping, handle what is still arriving, until ``drain_on_stop_ms`` pass without a
    message other than a heartbeat (which never stop), or at most :data:`MAX_DRAIN_S`."""
    if not node.drain_on_stop_ms:
        return
    now = time.monotonic()
    quiet_until, give_up = now + node.drain_on_stop_ms / 1000, now + MAX_DRAIN_S
    while (now := time.monotonic()) < min(quiet_until, give_up):
        msg = subscriber.recv(timeout_ms=(min(quiet_until, give_up) - now) * 1000)
        if msg is None or msg.topic == "control":
            continue
        if not msg.topic.startswith("heartbeat."):
            quiet_until = time.monotonic() + node.drain_on_stop_ms / 1000
        if has_needed_meta(node, msg):
            node.handle(msg)


MAX_DRAIN_S = 0.5


def has_needed_meta(node: Node, msg: Message) -> bool:
    """Whether ``msg`` has every meta field ``node`` needs for its topic, of the right type.

    A message that lacks one is counted in ``skipped_<topic>`` (and the first of each topic is
    logged at WARNING) instead of reaching :meth:`Node.handle`.
    """
    needs = node.needs_meta.get(msg.topic)
    if not needs:
        return True
    for key, types in needs.items():
        value = msg.meta.get(key)
        if type(value) not in (types if isinstance(types, tuple) else (types,)):
            counter = f"skipped_{msg.topic}"
            if not node.counters.get(counter):
                log.warning(
                    "%s: skipped a %r message whose meta field %r is %r (further ones are only "
                    "counted in %s)",
                    node.name,
                    msg.topic,
                    key,
                    value if value is None else type(value).__name__,
                    counter,
                )
            node.count(counter)
            return False
    return True


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
