"""A plain ``.npz`` format for decoding datasets: per-subject responses, latents and a split.

Layout (no pickled objects; read with ``np.load(allow_pickle=False)``):

==================  ===============================================================
key                 content
==================  ===============================================================
``format``          ``"bci-dataset"``
``version``         int64 scalar, :data:`FORMAT_VERSION`
``n_subjects``      int64 scalar
``responses_<i>``   float32 ``(n_trials, n_voxels_i)`` for subject ``i``
``latents``         float32 ``(n_trials, latent_dim)``
``split``           unicode ``(n_trials,)`` labels, e.g. ``"train"`` / ``"test"``
``meta``            unicode scalar: a JSON object
==================  ===============================================================
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bci.archive import READ_ERRORS, check_format, read_npz, write_npz

__all__ = ["FORMAT_VERSION", "DecodingDataset", "load_dataset", "save_dataset"]

FORMAT_VERSION = 1
_MAGIC = "bci-dataset"
_REQUIRED = ("format", "version", "n_subjects", "latents", "split", "meta")


@dataclass
class DecodingDataset:
    """Responses of one or more subjects to the same trials, their latents and a split.

    Attributes
    ----------
    responses : list of ndarray, each (n_trials, n_voxels_i), float32
    latents : ndarray of shape (n_trials, latent_dim), float32
    split : ndarray of shape (n_trials,), str
        Label of each trial (``"train"``, ``"test"``, ...).
    meta : dict
        JSON-compatible metadata.
    version : int
        Format version of the file read (the current one for a new dataset).
    """

    responses: list[np.ndarray]
    latents: np.ndarray
    split: np.ndarray
    meta: dict = field(default_factory=dict)
    version: int = FORMAT_VERSION

    @property
    def n_subjects(self) -> int:
        """Number of subjects."""
        return len(self.responses)

    @property
    def train_mask(self) -> np.ndarray:
        """Boolean mask of the ``"train"`` trials."""
        return self.split == "train"

    @property
    def test_mask(self) -> np.ndarray:
        """Boolean mask of the ``"test"`` trials."""
        return self.split == "test"

    def subset(self, label: str) -> tuple[list[np.ndarray], np.ndarray]:
        """Responses (per subject) and latents of the trials labelled ``label``."""
        mask = self.split == label
        return [r[mask] for r in self.responses], self.latents[mask]


def _split_labels(split: np.ndarray, n: int) -> np.ndarray:
    split = np.asarray(split)
    if split.shape != (n,):
        raise ValueError(f"split must have shape ({n},), got {split.shape}")
    if split.dtype == bool:
        return np.where(split, "train", "test")
    if split.dtype.kind not in "US":
        raise ValueError(f"split must be a boolean train mask or string labels, got {split.dtype}")
    labels = split.astype(str)
    if (labels == "").any():
        raise ValueError("split labels must be non-empty strings")
    return labels


def _validate(responses, latents, split) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    if isinstance(responses, np.ndarray):
        responses = [responses]
    if len(responses) == 0:
        raise ValueError("responses must hold at least one subject's array")
    latents = np.asarray(latents, dtype=np.float32)
    if latents.ndim != 2:
        raise ValueError(f"latents must be 2-D (n_trials, latent_dim), got shape {latents.shape}")
    n = latents.shape[0]
    out = []
    for i, r in enumerate(responses):
        r = np.asarray(r, dtype=np.float32)
        if r.ndim != 2 or r.shape[0] != n:
            raise ValueError(f"responses[{i}] must have shape ({n}, n_voxels), got {r.shape}")
        out.append(r)
    return out, latents, _split_labels(split, n)


def save_dataset(
    path: str | Path,
    responses: list[np.ndarray],
    latents: np.ndarray,
    split: np.ndarray,
    meta: dict | None = None,
) -> Path:
    """Write a dataset file (atomically: a temporary file is renamed into place).

    Parameters
    ----------
    path : str or Path
        Output file; written exactly there (no ``.npz`` suffix is appended).
    responses : list of array-like, each (n_trials, n_voxels_i)
        One array per subject, rows aligned with ``latents``.
    latents : array-like of shape (n_trials, latent_dim)
    split : array-like of shape (n_trials,)
        Boolean train mask (True → ``"train"``, False → ``"test"``) or string labels.
    meta : dict, optional
        JSON-serialisable metadata (subject ids, TR, preprocessing, ...).

    Returns
    -------
    Path
    """
    responses, latents, labels = _validate(responses, latents, split)
    try:
        meta_json = json.dumps({} if meta is None else meta, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"meta must be JSON-serialisable: {exc}") from None
    if not meta_json.startswith("{"):
        raise ValueError(f"meta must be a dict, got {type(meta).__name__}")
    arrays = {
        "format": np.array(_MAGIC),
        "version": np.array(FORMAT_VERSION, dtype=np.int64),
        "n_subjects": np.array(len(responses), dtype=np.int64),
        "latents": latents,
        "split": labels,
        "meta": np.array(meta_json),
    }
    arrays.update({f"responses_{i}": r for i, r in enumerate(responses)})
    return write_npz(path, arrays)


def _scalar(data, key: str, path: Path):
    value = data[key]
    if value.shape != ():
        raise ValueError(f"corrupt dataset file {path}: '{key}' must be a scalar")
    return value.item()


def load_dataset(path: str | Path) -> DecodingDataset:
    """Read a dataset file written by :func:`save_dataset`.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    DecodingDataset

    Raises
    ------
    ValueError
        One line naming the file and the problem: not an npz archive, missing key, unsupported
        version, inconsistent shapes.
    """
    path = Path(path)
    try:
        data = read_npz(path)
        for key in _REQUIRED:
            if key not in data:
                raise ValueError(f"dataset file {path} is missing key '{key}'")
        if _scalar(data, "format", path) != _MAGIC:
            raise ValueError(f"{path} is not a bci dataset file")
        version = int(_scalar(data, "version", path))
        try:
            check_format(_MAGIC, version, _MAGIC, FORMAT_VERSION)
        except ValueError as exc:
            raise ValueError(f"dataset file {path} {exc}") from None
        n_subjects = int(_scalar(data, "n_subjects", path))
        resp_keys = [f"responses_{i}" for i in range(n_subjects)]
        for key in resp_keys:
            if key not in data:
                raise ValueError(f"dataset file {path} is missing key '{key}'")
        responses = [data[k] for k in resp_keys]
        latents, split = data["latents"], data["split"]
        meta = json.loads(_scalar(data, "meta", path))
        if not isinstance(meta, dict):
            raise ValueError(f"corrupt dataset file {path}: 'meta' is not a JSON object")
    except FileNotFoundError:
        raise
    except (*READ_ERRORS, json.JSONDecodeError) as exc:
        raise ValueError(f"corrupt dataset file {path}: {exc}") from None
    except ValueError as exc:
        msg = str(exc)
        if str(path) in msg:
            raise
        raise ValueError(f"corrupt dataset file {path}: {msg}") from None
    try:
        responses, latents, split = _validate(responses, latents, split)
    except ValueError as exc:
        raise ValueError(f"corrupt dataset file {path}: {exc}") from None
    return DecodingDataset(responses, latents, split, meta, version)
