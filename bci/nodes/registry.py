"""Node names to node classes, imported only when a process runs that node.

A node may have a variant for one mode (the display presents a fixed schedule in decode mode but
generation after generation in evolve mode; the simulator stands in for a scanner in decode mode
but for a recorded neuron in evolve mode); :data:`MODE_VARIANTS` names those.
"""

from __future__ import annotations

import importlib

from bci.nodes.base import Node

NODE_MODULES = {
    "simulate": "bci.nodes.simulate",
    "acquire": "bci.nodes.acquire",
    "decode": "bci.nodes.decode",
    "render": "bci.nodes.render",
    "display": "bci.nodes.display",
    "record": "bci.nodes.record",
    "evolve": "bci.nodes.evolve",
    "replay": "bci.nodes.replay",
}
MODE_VARIANTS = {
    ("display", "evolve"): "bci.nodes.display_evolve",
    ("simulate", "evolve"): "bci.nodes.simulate_units",
}


def node_class(name: str, mode: str = "decode") -> type[Node]:
    """Return the :class:`Node` subclass that runs as ``name`` in a session of ``mode``."""
    if name not in NODE_MODULES:
        raise ValueError(f"unknown node {name!r}; nodes: {', '.join(NODE_MODULES)}")
    module = importlib.import_module(MODE_VARIANTS.get((name, mode), NODE_MODULES[name]))
    return module.NODE
