"""Stimuli on the top row, each method's reconstructions below (the HYPER figure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from bci.figures.backend import plt, save_figure


def plot_reconstructions(
    path: str | Path,
    stimuli: np.ndarray,
    reconstructions: Mapping[str, np.ndarray],
    title: str = "",
    max_columns: int = 12,
    trials: Sequence[int] | None = None,
) -> Path:
    """Write a grid: stimuli in the top row, one row of reconstructions per method.

    Parameters
    ----------
    path : str | Path
        PNG file to write.
    stimuli : np.ndarray, shape (n, H, W, 3), uint8
        The images shown.
    reconstructions : mapping of str to np.ndarray
        Row label → images reconstructed for the same trials, shape (n, H, W, 3).
    title : str
        Figure title. When not every trial fits, the title says which are drawn: ``"...;
        trials 120-131 drawn (12 of 24)"`` with ``trials``, else ``"...; the first 12 of 24
        drawn"``.
    max_columns : int
        At most this many trials are drawn (the first ones).
    trials : sequence of int, optional
        The trial number of each stimulus, for the title.

    Returns
    -------
    Path
        The file written.
    """
    n = min(len(stimuli), max_columns)
    rows = [("stimuli", stimuli)] + list(reconstructions.items())
    for label, images in rows:
        if len(images) < n:
            raise ValueError(f"row {label!r} has {len(images)} images for {n} stimuli")
    if n == 0:
        raise ValueError("no trials to draw: the stimuli array is empty")
    fig, axes = plt.subplots(
        len(rows), n, figsize=(1.2 * n + 1.2, 1.25 * len(rows) + 0.5), squeeze=False
    )
    for r, (label, images) in enumerate(rows):
        for c in range(n):
            ax = axes[r, c]
            ax.imshow(images[c])
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    if n < len(stimuli):
        drawn = (
            f"trials {trials[0]}-{trials[n - 1]} drawn ({n} of {len(stimuli)})"
            if trials is not None
            else f"the first {n} of {len(stimuli)} drawn"
        )
        title = f"{title}; {drawn}" if title else drawn
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)
