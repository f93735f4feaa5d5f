"""Checkpoints of an evolve session: the optimiser's state and the history, without pickle.

A checkpoint is one file, ``NAME.npz``, written atomically after every generation (see
:mod:`bci.archive`): the arrays, and under ``__checkpoint__`` a JSON document with the format,
its version and everything but the arrays, each array replaced by ``{"__array__": key}``. A crash
leaves the previous checkpoint whole. A resumed session loads the newest one and continues from
the generation after it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bci.archive import READ_ERRORS, check_format, json_entry, read_json_entry, read_npz, write_npz

ARRAY_KEY = "__array__"
CHECKPOINT = "evolve/checkpoint"
"""Where an evolve session keeps its checkpoint, relative to the session folder."""
FORMAT = "bci.evolve-checkpoint"
FORMAT_VERSION = 1
_JSON_KEY = "__checkpoint__"


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
    """Write ``state`` (JSON-able values and numpy arrays, nested) as ``path``.npz, atomically.

    Parameters
    ----------
    path : str | Path
        Checkpoint name without suffix, e.g. ``session/evolve/checkpoint``.
    state : dict
        What to save.
    """
    arrays: dict[str, np.ndarray] = {}
    tree = _split(state, arrays, "")
    arrays[_JSON_KEY] = json_entry({"format": FORMAT, "version": FORMAT_VERSION, "state": tree})
    write_npz(Path(path).with_suffix(".npz"), arrays)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises
    ------
    FileNotFoundError
        No checkpoint at ``path``.
    ValueError
        The file is damaged, is not a checkpoint or has another version (one line naming it).
    """
    npz = Path(path).with_suffix(".npz")
    if not npz.is_file():
        raise FileNotFoundError(f"no evolve checkpoint at {npz}")
    try:
        arrays = read_npz(npz)
        doc = read_json_entry(arrays, _JSON_KEY)
        if not isinstance(doc, dict):
            raise ValueError(f"entry {_JSON_KEY!r} is not a JSON object")
        check_format(doc.get("format"), doc.get("version"), FORMAT, FORMAT_VERSION)
        return _join(doc["state"], arrays)
    except (*READ_ERRORS, ValueError, KeyError) as err:
        raise ValueError(f"{npz} is not a readable evolve checkpoint: {err}") from None
