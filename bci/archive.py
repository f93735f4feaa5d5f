"""Arrays on disk: one ``.npz`` archive, written atomically, read without pickle, format-checked.

Every file bci writes for itself (aligners, decoding models, datasets, evolve checkpoints) goes
through :func:`write_npz` and :func:`read_npz`: the archive is written to a temporary file beside
the destination and moved into place, so a crash leaves the previous file whole; reading never
unpickles, and :func:`check_format` turns a foreign or newer file into a one-line error.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

_ZIP_MAGIC = b"PK\x03\x04"
READ_ERRORS = (OSError, EOFError, zipfile.BadZipFile)
"""What reading a missing, damaged or truncated archive raises besides ValueError."""


def write_npz(path: str | os.PathLike[str], arrays: dict[str, np.ndarray]) -> Path:
    """Write ``arrays`` to ``path`` (an uncompressed ``.npz``), atomically; folders are created.

    Parameters
    ----------
    path : str or os.PathLike
        Destination, used as given (no suffix is added).
    arrays : dict of str to numpy.ndarray
        Entries of the archive.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_npz(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read every entry of an ``.npz`` archive, never unpickling.

    Raises
    ------
    ValueError
        The file is not an ``.npz`` archive (``"not an .npz archive"``).
    OSError, EOFError, zipfile.BadZipFile
        The file is missing, unreadable, damaged or truncated (:data:`READ_ERRORS`).
    """
    with open(path, "rb") as f:
        if f.read(4) != _ZIP_MAGIC:  # np.load would try anything else as a pickle
            raise ValueError("not an .npz archive")
    with np.load(path, allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


def check_finite(arrays: dict[str, np.ndarray]) -> None:
    """Raise a one-line ValueError naming the entries that hold NaN or Inf (numeric ones only).

    The message reads after the file's name: ``"has NaN or Inf values in ridge/coef_"``.
    """
    bad = [
        key
        for key, value in arrays.items()
        if np.issubdtype(value.dtype, np.inexact) and not np.isfinite(value).all()
    ]
    if bad:
        raise ValueError(f"has NaN or Inf values in {', '.join(sorted(bad))}")


def json_entry(value: Any, default: Callable[[Any], Any] | None = None) -> np.ndarray:
    """A JSON document as an archive entry (a 0-d unicode array); ``default`` as in json.dumps."""
    return np.array(json.dumps(value, allow_nan=True, default=default))


def read_json_entry(arrays: dict[str, np.ndarray], key: str) -> Any:
    """The JSON document stored under ``key`` by :func:`json_entry` (one-line ValueError)."""
    if key not in arrays:
        raise ValueError(f"no {key!r} entry")
    try:
        return json.loads(str(arrays[key]))
    except json.JSONDecodeError as exc:
        raise ValueError(f"entry {key!r} is not JSON ({exc})") from None


def check_format(found: object, version: object, expected: str, expected_version: int) -> None:
    """Raise a one-line ValueError unless a file says it is ``expected`` at ``expected_version``.

    The messages read after the file's name: ``"<path> is not a <expected> file (format 'x')"``,
    ``"<path> has format version 2; this bci reads version 1"``.
    """
    if found != expected:
        raise ValueError(f"is not a {expected} file (format {found!r})")
    if version != expected_version:
        raise ValueError(f"has format version {version}; this bci reads version {expected_version}")
