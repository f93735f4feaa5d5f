"""One logging set-up for every entry point: quiet by default, ``-v`` INFO, ``-vv`` DEBUG.

Library modules log to ``logging.getLogger(__name__)`` (``bci.align.srm``, ...); a node process
logs as ``bci.nodes.<node name>``, so the two never share a logger.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import NoReturn

FORMAT = "%(asctime)s.%(msecs)03d %(levelname)s %(name)s: %(message)s"
DATEFMT = "%H:%M:%S"


def add_verbosity_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``-v/--verbose`` (repeatable) to ``parser``: ``-v`` INFO, ``-vv`` DEBUG."""
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log progress (-v: INFO) or everything (-vv: DEBUG); default: warnings only",
    )


def level_for(verbosity: int, quiet: int = logging.WARNING) -> int:
    """The logging level for a ``-v`` count (0: ``quiet``, 1: INFO, 2 or more: DEBUG)."""
    if verbosity >= 2:
        return logging.DEBUG
    return logging.INFO if verbosity == 1 else quiet


def setup_logging(verbosity: int = 0, quiet: int = logging.WARNING) -> None:
    """Send log records to stderr in the one bci format, at the level ``-v`` asks for.

    Parameters
    ----------
    verbosity : int
        How often ``-v`` was given.
    quiet : int
        The level without ``-v`` (a node process, whose stderr is its log file, passes INFO).
        ``-vv`` sets DEBUG for the ``bci`` loggers only; other libraries log INFO at most.
    """
    level = level_for(verbosity, quiet)
    # DEBUG is bci's own: other libraries (matplotlib's font search, PIL) stay at INFO at most
    logging.basicConfig(
        level=max(level, logging.INFO), format=FORMAT, datefmt=DATEFMT, stream=sys.stderr
    )
    logging.getLogger("bci").setLevel(level)


def flush_and_exit(code: int) -> NoReturn:
    """Flush the logs and the standard streams, then end the process at once with ``code``.

    For a program whose work is done and whose files are closed: the interpreter's own teardown
    of torch and matplotlib takes 1-2 s on two busy cores (measured), which a Ctrl-C of a session
    waits for in every node and in ``bci-session`` itself.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
