"""Fitness per generation: mean and max of the population, the reference images as a line."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.ticker import MaxNLocator

from bci.figures.backend import plt, save_figure


def plot_fitness(
    path: str | Path,
    mean: Sequence[float],
    best: Sequence[float],
    reference: float | None = None,
    title: str = "",
) -> Path:
    """Write mean and max fitness per generation, with the reference images' mean as a line.

    Parameters
    ----------
    path : str | Path
        PNG file to write.
    mean, best : sequence of float
        Per generation: the population's mean and maximum fitness.
    reference : float | None
        Mean response to the reference images, drawn as a horizontal line.
    title : str
        Figure title.

    Returns
    -------
    Path
        The file written.
    """
    generations = np.arange(len(mean))  # generation 0 is the initial population
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(generations, mean, label="population mean", color="C0")
    ax.plot(generations, best, label="population max", color="C1")
    if reference is not None and np.isfinite(reference):
        ax.axhline(reference, color="0.4", linestyle="--", label="reference images")
    ax.set_xlabel("generation")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("response")
    ax.set_title(title or "fitness per generation")
    ax.legend()
    return save_figure(fig, path)
