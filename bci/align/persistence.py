"""Save and load fitted aligners as plain ``.npz`` files (no pickle).

The archive holds the fitted arrays under ``attr/<name>`` (lists as ``attr/<name>/<i>``) and one
JSON string under ``__meta__`` with the format name and version, the class name, the
hyper-parameters and how to rebuild each fitted attribute.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from bci.align.hyperalignment import Hyperalignment
from bci.align.procrustes import Procrustes
from bci.align.srm import SRM
from bci.archive import check_finite, check_format, json_entry, read_json_entry, read_npz, write_npz

logger = logging.getLogger(__name__)

FORMAT = "bci.align"
FORMAT_VERSION = 1
_META_KEY = "__meta__"
_CLASSES: dict[str, type] = {c.__name__: c for c in (Procrustes, Hyperalignment, SRM)}

Aligner = Procrustes | Hyperalignment | SRM


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _encode_attr(name: str, value: Any, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    if value is None:
        return {"kind": "none"}
    if isinstance(value, np.ndarray):
        arrays[f"attr/{name}"] = value
        return {"kind": "array"}
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, np.ndarray) for v in value):
        for i, v in enumerate(value):
            arrays[f"attr/{name}/{i}"] = v
        return {"kind": "arrays", "len": len(value)}
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (list, tuple)):
        value = [v.item() if isinstance(v, np.generic) else v for v in value]
    if not _jsonable(value):
        raise ValueError(f"cannot save fitted attribute {name} of type {type(value).__name__}")
    return {"kind": "json", "value": value}


def save_aligner(aligner: Aligner, path: str | os.PathLike[str]) -> Path:
    """Write a fitted aligner to ``path`` (a ``.npz`` archive, written atomically).

    Parameters
    ----------
    aligner : Procrustes, Hyperalignment or SRM
        A fitted aligner.
    path : str or os.PathLike
        Destination file; the name is used as given (no suffix is added).

    Returns
    -------
    pathlib.Path
        The path written.
    """
    name = type(aligner).__name__
    if _CLASSES.get(name) is not type(aligner):
        raise ValueError(f"cannot save a {name}; known classes: {sorted(_CLASSES)}")
    missing = [a for a in aligner._persisted_attrs if not hasattr(aligner, a)]
    if missing:
        raise ValueError(f"cannot save an unfitted {name} (missing {', '.join(missing)})")
    params = {}
    for key, value in aligner.get_params(deep=False).items():
        if isinstance(value, np.generic):
            value = value.item()
        if not _jsonable(value):
            logger.warning(
                "save_aligner: parameter %s=%r is not JSON-serialisable; saved as None", key, value
            )
            value = None
        params[key] = value
    arrays: dict[str, np.ndarray] = {}
    attrs = {a: _encode_attr(a, getattr(aligner, a), arrays) for a in aligner._persisted_attrs}
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "class": name,
        "params": params,
        "attrs": attrs,
    }
    arrays[_META_KEY] = json_entry(meta)
    path = write_npz(path, arrays)
    logger.info("saved %s to %s", name, path)
    return path


def _read(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    arrays = read_npz(path)
    if _META_KEY not in arrays:
        raise ValueError("no metadata entry (not an aligner file)")
    meta = read_json_entry(arrays, _META_KEY)
    del arrays[_META_KEY]
    if not isinstance(meta, dict):
        raise ValueError("metadata does not describe a bci.align file")
    check_format(meta.get("format"), meta.get("format_version"), FORMAT, FORMAT_VERSION)
    check_finite(arrays)
    return meta, arrays


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _decode_attr(name: str, spec: dict[str, Any], arrays: dict[str, np.ndarray]) -> Any:
    kind = spec.get("kind")
    if kind == "none":
        return None
    if kind == "json":
        return spec["value"]
    if kind == "array":
        return arrays[f"attr/{name}"]
    if kind == "arrays":
        return [arrays[f"attr/{name}/{i}"] for i in range(int(spec["len"]))]
    raise ValueError(f"unknown attribute kind {kind!r}")


def load_aligner(path: str | os.PathLike[str], expected: type | None = None) -> Aligner:
    """Load an aligner written by :func:`save_aligner`.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.npz`` file.
    expected : type or None
        If given, the class the file must contain (e.g. ``Hyperalignment``).

    Returns
    -------
    Procrustes, Hyperalignment or SRM
        The fitted aligner.

    Raises
    ------
    ValueError
        One line naming the file and the problem, for a missing, corrupt or truncated file, an
        unknown format or version, a class other than ``expected``, NaN or Inf values, or
        inconsistent contents.
    """
    path = Path(path)
    try:
        meta, arrays = _read(path)
        name = meta.get("class")
        cls = _CLASSES.get(name)
        if cls is None:
            raise ValueError(f"unknown aligner class {name!r}")
        if expected is not None and cls is not expected:
            raise ValueError(f"contains a {name}, expected a {expected.__name__}")
        aligner = cls(**meta["params"])
        specs = meta["attrs"]
        for attr in cls._persisted_attrs:
            if attr not in specs:
                raise ValueError(f"missing fitted attribute {attr}")
            setattr(aligner, attr, _decode_attr(attr, specs[attr], arrays))
        aligner._validate_fitted()
    except (
        OSError,
        EOFError,
        KeyError,
        TypeError,
        AttributeError,
        IndexError,
        zipfile.BadZipFile,
        json.JSONDecodeError,
    ) as exc:
        raise ValueError(
            f"{path}: cannot read aligner file ({type(exc).__name__}: {_first_line(exc)})"
        ) from None
    except ValueError as exc:
        raise ValueError(f"{path}: {_first_line(exc)}") from None
    logger.info("loaded %s from %s", name, path)
    return aligner


def aligner_to_arrays(aligner: Aligner, prefix: str = "") -> dict[str, np.ndarray]:
    """The arrays :func:`save_aligner` would write, keys prefixed, for embedding in another file.

    Parameters
    ----------
    aligner : Procrustes, Hyperalignment or SRM
        A fitted aligner.
    prefix : str
        Prepended to every key (e.g. ``"aligner/"``).

    Returns
    -------
    dict of str to numpy.ndarray
        Arrays plus the JSON metadata entry; read back with :func:`aligner_from_arrays`.
    """
    import io

    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory() as tmp:
        path = save_aligner(aligner, Path(tmp) / "aligner.npz")
        buffer.write(path.read_bytes())
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as npz:
        return {prefix + key: npz[key] for key in npz.files}


def aligner_from_arrays(
    arrays: dict[str, np.ndarray], prefix: str = "", source: str = "<arrays>"
) -> Aligner:
    """Rebuild an aligner from the arrays of :func:`aligner_to_arrays` (keys with ``prefix``)."""
    own = {key[len(prefix) :]: value for key, value in arrays.items() if key.startswith(prefix)}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "aligner.npz"
        np.savez(path, **own)
        try:
            return load_aligner(path)
        except ValueError as err:
            raise ValueError(str(err).replace(str(path), source)) from None
