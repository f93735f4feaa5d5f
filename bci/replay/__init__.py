"""Replay recordings on LSL: re-publish a recording's streams in place of their live sources.

``python -m bci.replay FILE [--speed X] [--list]`` replays a file from the command line.
"""

from bci.replay.player import ReplayPlayer

__all__ = ["ReplayPlayer"]
