"""A grid of labelled images (e.g. the best image of each generation of an evolve session)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bci.figures.backend import plt, save_figure


def plot_image_grid(
    path: str | Path,
    images: np.ndarray,
    labels: Sequence[str] = (),
    title: str = "",
    columns: int = 10,
) -> Path:
    """Write images in a grid, row by row, each with its label underneath.

    Parameters
    ----------
    path : str | Path
        PNG file to write.
    images : np.ndarray, shape (n, H, W, 3), uint8
        The images, in reading order.
    labels : sequence of str
        One label per image (or none).
    title : str
        Figure title.
    columns : int
        Images per row.

    Returns
    -------
    Path
        The file written.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or len(images) == 0:
        raise ValueError(f"images must have shape (n >= 1, H, W, 3), got {images.shape}")
    if labels and len(labels) != len(images):
        raise ValueError(f"{len(labels)} labels for {len(images)} images")
    n = len(images)
    cols = max(1, min(columns, n))
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.45 * rows + 0.4), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if k < n:
            ax.imshow(images[k])
            if labels:
                ax.set_title(labels[k], fontsize=8, y=-0.22)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)
