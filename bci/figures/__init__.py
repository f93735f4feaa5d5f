"""The figures every experiment leaves behind (matplotlib, Agg backend, PNG files)."""

from bci.figures.fitness import plot_fitness
from bci.figures.grid import plot_image_grid
from bci.figures.latency import plot_latency
from bci.figures.probe import plot_probe
from bci.figures.reconstructions import plot_reconstructions

__all__ = ["plot_fitness", "plot_image_grid", "plot_latency", "plot_probe", "plot_reconstructions"]
