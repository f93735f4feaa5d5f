"""Decoders from brain responses to generator latents (scikit-learn estimators).

``RidgeDecoder`` is imported eagerly; ``DenseDecoder`` (torch) is imported on first access so
that importing :mod:`bci.decode` stays light for nodes that only need ridge.
"""

from __future__ import annotations

from typing import Any

from bci.decode.ridge import RidgeDecoder, loo_ridge

__all__ = ["DenseDecoder", "RidgeDecoder", "loo_ridge"]


def __getattr__(name: str) -> Any:
    if name == "DenseDecoder":
        from bci.decode.dense import DenseDecoder

        return DenseDecoder
    raise AttributeError(f"module 'bci.decode' has no attribute {name!r}")
