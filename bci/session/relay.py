"""A relay between the session's private ipc:// sockets and a CURVE-protected TCP socket.

Nodes on the supervisor's machine keep meeting on ipc:// sockets (:mod:`bci.session.endpoints`);
a node on another machine reaches them through relays the supervisor runs, so that the other
machine opens no port and every socket that faces the network is a CURVE server guarded by the
supervisor's ZAP handler (:class:`bci.bus.curve.ZapHandler`):

* *up* (what a remote node publishes): XSUB bound on TCP, which the remote node's publisher
  connects to, into an XPUB bound at the remote node's ipc:// endpoint, where the local nodes,
  the recorder and the supervisor subscribe as if the node ran here;
* *down* (what a remote node receives): an XSUB connected to the local endpoints, into an XPUB
  bound on TCP, which the remote node's subscribers connect to.

Each relay is :func:`zmq.proxy_steerable` on its own thread (libzmq moves the frames; the GIL
is released), so subscriptions travel back through it and an XPUB behind it still learns who
listens. Frames are moved as they are: a relay never decodes a message.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import zmq

from bci.bus.security import CurveKeys

RELAY_HWM = 10_000


class Relay:
    """One XSUB -> XPUB proxy on a thread.

    Parameters
    ----------
    context : zmq.Context
        The context of the supervisor's network sockets (the ZAP handler's).
    name : str
        For the thread's name.
    inbound : str or sequence of str
        Where the XSUB binds (a str) or what it connects to (a sequence).
    outbound : str
        Where the XPUB binds.
    keys : CurveKeys
        The session's key pair: the side bound on TCP is a CURVE server with it.
    """

    def __init__(
        self,
        context: zmq.Context,
        name: str,
        inbound: str | Sequence[str],
        outbound: str,
        keys: CurveKeys,
    ) -> None:
        self._front = context.socket(zmq.XSUB)
        self._back = context.socket(zmq.XPUB)
        self._pipe = context.socket(zmq.PAIR)
        steer = context.socket(zmq.PAIR)
        address = f"inproc://bci-relay-{name}-{id(self)}"
        for sock in (self._front, self._back, self._pipe, steer):
            sock.linger = 0
        self._front.rcvhwm = self._back.sndhwm = RELAY_HWM
        try:
            if isinstance(inbound, str):
                _serve(self._front, keys)
                self._front.bind(inbound)
            else:
                for endpoint in inbound:
                    self._front.connect(endpoint)
            if outbound.startswith("tcp://"):
                _serve(self._back, keys)
            self._back.bind(outbound)
            steer.bind(address)
            self._pipe.connect(address)
        except zmq.ZMQError:
            for sock in (self._front, self._back, self._pipe, steer):
                sock.close()
            raise
        self._thread = threading.Thread(
            target=zmq.proxy_steerable,
            args=(self._front, self._back, None, steer),
            name=f"bci-relay-{name}",
            daemon=True,
        )
        self._steer = steer
        self._thread.start()

    def close(self) -> None:
        """Stop the proxy and close its sockets."""
        if self._pipe.closed:
            return
        self._pipe.send(b"TERMINATE")
        self._thread.join(timeout=2)
        for sock in (self._front, self._back, self._pipe, self._steer):
            sock.close()


def _serve(sock: zmq.Socket, keys: CurveKeys) -> None:
    sock.curve_secretkey = keys.secret
    sock.curve_publickey = keys.public
    sock.curve_server = True
