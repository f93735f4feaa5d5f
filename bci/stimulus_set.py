"""Stimulus sets: the latents a session presents, with a manifest that says how to render them.

A stimulus set is a folder holding ``latents.npy`` (``(n, latent_dim)`` float32) and
``manifest.json`` (``generator``: the generator spec the latents belong to, ``ids``: one string per
stimulus, optional ``description`` and ``seed``). Sessions present stimuli by index and mark each
flip with the stimulus id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MANIFEST = "manifest.json"
LATENTS = "latents.npy"


@dataclass(frozen=True)
class StimulusSet:
    """Latents to present and their ids.

    Attributes
    ----------
    latents : np.ndarray, shape (n, latent_dim), float32
    ids : tuple of str
        One id per stimulus, as pushed in the LSL markers.
    generator : str
        Generator spec the latents are meant for (see :func:`bci.generators.load`).
    meta : dict
        Everything else in the manifest.
    """

    latents: np.ndarray
    ids: tuple[str, ...]
    generator: str = "default"
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def latent_dim(self) -> int:
        """Width of the latents."""
        return int(self.latents.shape[1])

    def index_of(self, stimulus_id: str) -> int:
        """Return the row of ``stimulus_id``."""
        try:
            return self.ids.index(stimulus_id)
        except ValueError:
            raise KeyError(f"stimulus id {stimulus_id!r} is not in this stimulus set") from None


def make_stimulus_set(
    n: int, latent_dim: int, seed: int, generator: str = "default", prefix: str = "face"
) -> StimulusSet:
    """Draw ``n`` latents from N(0, I) with ``seed`` and name them ``prefix-0000``, ..."""
    rng = np.random.default_rng(seed)
    latents = rng.standard_normal((n, latent_dim)).astype(np.float32)
    ids = tuple(f"{prefix}-{i:04d}" for i in range(n))
    return StimulusSet(latents, ids, generator, {"seed": seed})


def save_stimulus_set(stimuli: StimulusSet, folder: str | Path) -> Path:
    """Write ``latents.npy`` and ``manifest.json`` into ``folder`` (created if needed)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / LATENTS, np.ascontiguousarray(stimuli.latents, dtype=np.float32))
    manifest = {**stimuli.meta, "generator": stimuli.generator, "ids": list(stimuli.ids)}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return folder


def load_stimulus_set(folder: str | Path) -> StimulusSet:
    """Read a stimulus set folder, checking that latents and manifest agree.

    Parameters
    ----------
    folder : str | Path
        Folder with ``latents.npy`` and ``manifest.json``.

    Returns
    -------
    StimulusSet
    """
    folder = Path(folder)
    for name in (LATENTS, MANIFEST):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"stimulus set {folder} has no {name}")
    try:
        latents = np.load(folder / LATENTS, allow_pickle=False)
    except ValueError as err:
        raise ValueError(f"stimulus set {folder}: {LATENTS} is unreadable ({err})") from None
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"stimulus set {folder}: {MANIFEST} is not valid JSON ({err})") from None
    if latents.ndim != 2 or not np.issubdtype(latents.dtype, np.floating):
        raise ValueError(
            f"stimulus set {folder}: latents must be a 2-D float array, got {latents.dtype} "
            f"{latents.shape}"
        )
    if not np.all(np.isfinite(latents)):
        raise ValueError(f"stimulus set {folder}: latents contain NaN or Inf")
    ids = manifest.pop("ids", None)
    if not isinstance(ids, list) or len(ids) != len(latents):
        raise ValueError(
            f"stimulus set {folder}: manifest lists {len(ids) if isinstance(ids, list) else 'no'} "
            f"ids for {len(latents)} latents"
        )
    if len(set(ids)) != len(ids):
        raise ValueError(f"stimulus set {folder}: stimulus ids are not unique")
    generator = manifest.pop("generator", "default")
    return StimulusSet(latents.astype(np.float32), tuple(str(i) for i in ids), generator, manifest)
