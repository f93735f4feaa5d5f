"""``python -m bci.nodes NAME SESSION_JSON``: run one node (the supervisor does this)."""

from bci.bus.publisher import deliver_queued
from bci.logs import flush_and_exit
from bci.nodes.runner import main

code = main()  # the node has stopped and closed its files, streams and sockets
deliver_queued()
flush_and_exit(code)
