"""``bci-node NAME --join tcp://HOST:PORT --keys DIR``: run one node of a session on this machine.

The supervisor of a session whose config says ``[nodes.NAME] host = "..."`` does not start that
node; it prints this command and waits. Here the node:

* asks the supervisor's door (CURVE, with this machine's keys from ``bci-keys``) to join and gets
  the session's config and the ports of its relays (:mod:`bci.session.remote`); a name that is
  not awaited, or that has joined already, is refused with one line;
* prints one line naming the session it joined, then runs as a local node would
  (:func:`bci.nodes.runner.run_node`), its three sockets connected over TCP + CURVE;
* measures its clock offset to the supervisor's (:mod:`bci.nodes.clock_offset`), stamps its
  events on the supervisor's clock and reports offset and jitter in its heartbeats;
* stops when the supervisor stops the session, and exits when the supervisor stops answering
  for ``[session] heartbeat_timeout_s``.

Examples
--------
    bci-node render --join tcp://192.168.1.10:47100 --keys ~/bci-keys/192.168.1.20
    bci-node render --join tcp://192.168.1.10:47100 --keys keys/gpu --stimuli ~/demo-faces
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import zmq

from bci.bus import BusConfigError, Publisher, Subscriber
from bci.bus.curve import client_keys
from bci.bus.join_protocol import ask, request_socket
from bci.logs import add_verbosity_argument, setup_logging
from bci.nodes.base import Node
from bci.nodes.clock_offset import ClockWatch
from bci.nodes.runner import Sockets, run_node

log = logging.getLogger(__name__)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bci-node",
        description=__doc__.split("\n\n")[0].replace("``", ""),
        epilog="examples:\n" + __doc__.split("--------\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("name", help="the node to run (render, display, ...)")
    p.add_argument("--join", required=True, metavar="tcp://HOST:PORT", help="the session's door")
    p.add_argument(
        "--keys",
        required=True,
        type=Path,
        metavar="DIR",
        help="this machine's keys folder (made by bci-keys on the supervisor's machine)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for what the node writes (default: ./bci-node-SESSION)",
    )
    p.add_argument(
        "--stimuli",
        type=Path,
        default=None,
        help="the stimulus set on this machine (default: the supervisor's path)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="seconds to wait for the supervisor's answer (default 30)",
    )
    add_verbosity_argument(p)
    return p.parse_args(argv)


def join_session(args: argparse.Namespace, context: zmq.Context) -> tuple[dict, zmq.Socket]:
    """Ask the door to join; return its reply and the request socket.

    Raises
    ------
    BusConfigError
        One line: no answer, or the supervisor refused.
    """
    keys, server = client_keys(args.keys)
    door = request_socket(context, args.join, keys, server)
    reply = ask(door, {"op": "join", "node": args.name}, args.timeout * 1000)
    if reply is None:
        door.close()
        raise BusConfigError(
            f"no answer from {args.join} within {args.timeout:g} s (is the session running there, "
            f"and is this machine's key in its keys folder's authorized/?)"
        )
    if not reply.get("ok"):
        door.close()
        raise BusConfigError(str(reply.get("error", "refused")))
    return reply, door


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``bci-node``; returns the node's exit code."""
    args = parse_args(argv)
    setup_logging(args.verbose)
    host, _, port = args.join.removeprefix("tcp://").rpartition(":")
    if not args.join.startswith("tcp://") or not host or not port.isdigit():
        print(f"bci-node: --join must be tcp://HOST:PORT, got {args.join!r}", file=sys.stderr)
        return 2
    context = zmq.Context.instance()
    try:
        reply, door = join_session(args, context)
    except BusConfigError as err:
        print(f"bci-node: {err}", file=sys.stderr)
        return 2
    keys, server = client_keys(args.keys)
    config, ports, session = reply["config"], reply["ports"], reply["session"]
    if args.stimuli is not None:
        config["stimuli"]["path"] = str(args.stimuli.resolve())
    out = args.out or Path(f"bci-node-{session}")
    out.mkdir(parents=True, exist_ok=True)
    tcp = f"tcp://{host}"
    clock = ClockWatch(
        context, args.join, keys, server, args.name, config["session"]["heartbeat_timeout_s"]
    )
    print(f"bci-node: {args.name} joined session {session} at {args.join}", flush=True)

    def sockets(cls: type[Node]) -> Sockets:
        curve = {"curve": keys, "curve_server_key": server}
        publisher = Publisher(
            f"{tcp}:{ports['publish']}",
            bind=False,
            name=args.name,
            watch_subscriptions=cls.waits_for_subscribers,
            **curve,
        )
        subscriber = Subscriber([f"{tcp}:{ports['subscribe']}"], topics=cls.topics, **curve)
        control = Subscriber([f"{tcp}:{ports['control']}"], topics=["control"], **curve)
        return publisher, subscriber, control

    def on_beat(node: Node, publisher: Publisher) -> dict:
        node.clock_offset_s = clock.offset.lsl_offset_s
        publisher.wall_offset_s = clock.offset.wall_offset_s
        return {"clock": clock.offset.summary()}

    code, error = 2, ""
    handler = _LastError()
    logging.getLogger().addHandler(handler)
    try:
        code = run_node(
            args.name,
            {"config": config, "out": str(out)},
            sockets=sockets,
            supervisor_alive=clock.alive,
            on_beat=on_beat,
        )
        error = handler.last
    finally:
        clock.stop()
        ask(door, {"op": "leave", "node": args.name, "exit_code": code, "error": error}, 2000)
        door.close()
    return code


class _LastError(logging.Handler):
    """Keeps the last ERROR line, to tell the supervisor why the node stopped."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.last = ""

    def emit(self, record: logging.LogRecord) -> None:
        self.last = record.getMessage().splitlines()[0]


if __name__ == "__main__":
    sys.exit(main())
