"""Checkpoints of an evolve session: the optimiser's state and the history, without pickle.

A checkpoint is two files side by side, written together after every generation:
``NAME.json`` (everything but arrays, with each array replaced by ``{"__array__": key}``) and
``NAME.npz`` (the arrays, ``allow_pickle=False``). Both are written to temporary files first and
moved into place, the arrays first, so a crash leaves the previous checkpoint readable. A resumed
session loads the newest one and continues from the generation after it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

ARRAY_KEY = "__array__"
CHECKPOINT = "evolve/checkpoint"
"""Where an evolve session keeps its checkpoint, relative to the session folder."""


def _split(value: Any, arrays: dict[str, np.ndarray], path: str) -> Any:
    """Replace every numpy array inside ``value`` by a reference into ``arrays``."""
    if isinstance(value, np.ndarray):
        key = f"a{len(arrays)}"
        arrays[key] = value
        return {ARRAY_KEY: key, "path": path}
    if isinstance(value, dict):
        return {str(k): _split(v, arrays, f"{path}/{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_split(v, arrays, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _join(value: Any, arrays: Any) -> Any:
    if isinstance(value, dict):
        if ARRAY_KEY in value:
            return np.array(arrays[value[ARRAY_KEY]])
        return {k: _join(v, arrays) for k, v in value.items()}
    if isinstance(value, list):
        return [_join(v, arrays) for v in value]
    return value


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` (JSON-able values and numpy arrays, nested) as ``path``.json + .npz.

    Parameters
    ----------
    path : str | Path
        Checkpoint name without suffix, e.g. ``session/evolve/checkpoint``.
    state : dict
        What to save.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    tree = _split(state, arrays, "")
    npz, meta = path.with_suffix(".npz"), path.with_suffix(".json")
    tmp_npz = npz.with_name(npz.stem + ".tmp.npz")
    tmp_meta = meta.with_name(meta.stem + ".tmp.json")
    np.savez(tmp_npz, **arrays)
    tmp_meta.write_text(json.dumps(tree, allow_nan=True))
    os.replace(tmp_npz, npz)
    os.replace(tmp_meta, meta)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises
    ------
    FileNotFoundError
        No checkpoint at ``path``.
    ValueError
        The files are damaged or do not belong together (one line naming the file).
    """
    path = Path(path)
    npz, meta = path.with_suffix(".npz"), path.with_suffix(".json")
    if not meta.is_file() or not npz.is_file():
        raise FileNotFoundError(f"no evolve checkpoint at {meta} (+ .npz)")
    try:
        tree = json.loads(meta.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{meta} is not a readable checkpoint ({err})") from None
    try:
        with np.load(npz, allow_pickle=False) as arrays:
            return _join(tree, arrays)
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(f"{npz} does not match {meta.name} ({err})") from None
