"""Node names to node classes, imported only when a process runs that node."""

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
}


def node_class(name: str) -> type[Node]:
    """Return the :class:`Node` subclass that runs as ``name``."""
    if name not in NODE_MODULES:
        raise ValueError(f"unknown node {name!r}; nodes: {', '.join(NODE_MODULES)}")
    module = importlib.import_module(NODE_MODULES[name])
    return module.NODE
