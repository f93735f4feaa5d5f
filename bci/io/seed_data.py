"""Load the HYPER seed's ``data_N.dat`` files safely.

Each file is a pickle of the 4-tuple ``(X_tr, T_tr, X_te, T_te)``: lists of per-trial numpy arrays
(voxel responses and generator latents). Pickles can run arbitrary code, so they are read with an
unpickler that only admits the callables numpy arrays, lists and tuples need.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import NamedTuple

import numpy as np

__all__ = ["RefusedPickleError", "RestrictedUnpickler", "SeedData", "load_seed_data"]

# (module, name) pairs a pickle of numpy arrays inside lists/tuples may reference.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),  # ndarray.__reduce__ (protocols 0-4)
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),  # numpy scalars
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),  # ndarray.__reduce_ex__ with protocol 5
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # how protocol 2 writes the bytes of an array's buffer
}


class RefusedPickleError(pickle.UnpicklingError):
    """A pickle referenced a global outside the numpy allow-list."""


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that refuses every global except those needed for numpy arrays.

    Parameters
    ----------
    file : binary file object
    path : str, default="<stream>"
        Named in the error message.
    """

    def __init__(self, file, path: str = "<stream>") -> None:
        super().__init__(file, encoding="latin1")  # latin1: Python 2 numpy pickles
        self._path = path

    def find_class(self, module: str, name: str):  # noqa: D102
        if (module, name) not in _ALLOWED:
            raise RefusedPickleError(
                f"refusing to unpickle {module}.{name} from {self._path}: "
                "only numpy arrays, lists and tuples are allowed"
            )
        if module.startswith("numpy.core."):  # numpy >= 2 moved numpy.core to numpy._core
            try:
                return super().find_class("numpy._core." + module[len("numpy.core.") :], name)
            except (ImportError, AttributeError):
                pass
        return super().find_class(module, name)


class SeedData(NamedTuple):
    """The seed's train/test split, float32.

    Attributes
    ----------
    X_train : ndarray of shape (n_train, n_voxels)
    T_train : ndarray of shape (n_train, latent_dim)
    X_test : ndarray of shape (n_test, n_voxels)
    T_test : ndarray of shape (n_test, latent_dim)
    """

    X_train: np.ndarray
    T_train: np.ndarray
    X_test: np.ndarray
    T_test: np.ndarray


_NAMES = ("X_tr", "T_tr", "X_te", "T_te")


def _stack(items: object, name: str, path: Path) -> np.ndarray:
    """Stack a list of per-trial arrays into (n_trials, n_values) float32."""
    if isinstance(items, np.ndarray):
        items = list(items)
    if not isinstance(items, (list, tuple)):
        raise ValueError(f"{path}: {name} must be a list of arrays, got {type(items).__name__}")
    if not items:
        raise ValueError(f"{path}: {name} is empty")
    trials = []
    for i, item in enumerate(items):
        if not isinstance(item, (np.ndarray, np.generic)):
            raise ValueError(
                f"{path}: {name}[{i}] must be a numpy array, got {type(item).__name__}"
            )
        trials.append(np.asarray(item).reshape(-1))
    sizes = {t.size for t in trials}
    if len(sizes) != 1:
        raise ValueError(f"{path}: {name} trials differ in size: {sorted(sizes)}")
    try:
        out = np.stack(trials).astype(np.float32)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: {name} is not numeric") from None
    if not np.isfinite(out).all():
        raise ValueError(f"{path}: {name} contains NaN or inf")
    return out


def load_seed_data(path: str | Path) -> SeedData:
    """Load a HYPER seed data file (``data_1.dat``, ``data_2.dat``) without running pickled code.

    Parameters
    ----------
    path : str or Path
        Pickle of ``(X_tr, T_tr, X_te, T_te)``, lists of per-trial arrays.

    Returns
    -------
    SeedData
        ``X_train (n_train, n_voxels)``, ``T_train (n_train, latent_dim)``, ``X_test``,
        ``T_test``, all float32 (per-trial arrays are flattened).

    Raises
    ------
    RefusedPickleError
        (a ``pickle.UnpicklingError``) when the pickle references anything but numpy arrays,
        lists and tuples; nothing it references is imported or called.
    ValueError
        When the file is not a readable pickle or lacks the expected structure or shapes.
    """
    path = Path(path)
    with open(path, "rb") as f:
        try:
            obj = RestrictedUnpickler(f, str(path)).load()
        except RefusedPickleError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, LookupError) as exc:
            raise ValueError(
                f"{path}: not a readable pickle ({type(exc).__name__}: {exc})"
            ) from None
    if not isinstance(obj, (tuple, list)) or len(obj) != 4:
        kind = type(obj).__name__
        kind += f" of length {len(obj)}" if isinstance(obj, (tuple, list)) else ""
        raise ValueError(f"{path}: expected a 4-tuple (X_tr, T_tr, X_te, T_te), got {kind}")
    x_tr, t_tr, x_te, t_te = (_stack(o, n, path) for o, n in zip(obj, _NAMES, strict=True))
    if len(x_tr) != len(t_tr):
        raise ValueError(f"{path}: X_tr has {len(x_tr)} trials but T_tr has {len(t_tr)}")
    if len(x_te) != len(t_te):
        raise ValueError(f"{path}: X_te has {len(x_te)} trials but T_te has {len(t_te)}")
    if x_tr.shape[1] != x_te.shape[1]:
        raise ValueError(f"{path}: X_tr has {x_tr.shape[1]} voxels but X_te has {x_te.shape[1]}")
    if t_tr.shape[1] != t_te.shape[1]:
        raise ValueError(
            f"{path}: T_tr latents have {t_tr.shape[1]} values but T_te have {t_te.shape[1]}"
        )
    return SeedData(x_tr, t_tr, x_te, t_te)
