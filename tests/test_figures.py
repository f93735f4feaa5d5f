"""Figures are written as PNGs of the expected layout, and bad input is named."""

from __future__ import annotations

import numpy as np
import pytest

from bci.figures import plot_fitness, plot_image_grid, plot_latency, plot_reconstructions
from bci.figures.backend import plt


def read_png(path):
    return plt.imread(path)


def test_reconstructions_grid(tmp_path):
    rng = np.random.default_rng(0)
    stim = rng.integers(0, 255, (4, 16, 16, 3), dtype=np.uint8)
    path = plot_reconstructions(tmp_path / "r.png", stim, {"a": stim, "b": stim[::-1]}, "t")
    image = read_png(path)
    assert image.shape[0] > 200 and image.shape[1] > 300  # three rows, four columns
    with pytest.raises(ValueError, match="row 'b' has 2 images for 4 stimuli"):
        plot_reconstructions(tmp_path / "x.png", stim, {"b": stim[:2]})


def test_latency_histogram(tmp_path):
    path = plot_latency(tmp_path / "l.png", np.r_[np.linspace(5, 30, 50), np.nan])
    assert read_png(path).shape[1] >= 500
    assert plot_latency(tmp_path / "empty.png", np.array([])).is_file()


def test_fitness_plot(tmp_path):
    path = plot_fitness(tmp_path / "f.png", [1, 2, 3], [2, 3, 5], reference=1.5)
    assert read_png(path).ndim == 3


def test_image_grid_rows_and_errors(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 255, (7, 16, 16, 3), dtype=np.uint8)
    one_row = read_png(plot_image_grid(tmp_path / "a.png", images, columns=7))
    two_rows = read_png(plot_image_grid(tmp_path / "b.png", images, list("abcdefg"), columns=4))
    assert two_rows.shape[0] > 1.5 * one_row.shape[0]  # 7 images in rows of 4: two rows
    with pytest.raises(ValueError, match=r"images must have shape \(n >= 1, H, W, 3\)"):
        plot_image_grid(tmp_path / "c.png", images[..., 0])
    with pytest.raises(ValueError, match="2 labels for 7 images"):
        plot_image_grid(tmp_path / "d.png", images, ["x", "y"])


def test_probe_plot_marks_the_chosen_site_in_red(tmp_path):
    from bci.figures import plot_probe

    image = read_png(plot_probe(tmp_path / "p.png", [1.0, 9.0, 2.0], [0.5, None, 4.0], chosen=2))
    red = (image[..., 0] > 0.7) & (image[..., 1] < 0.4) & (image[..., 2] < 0.4)
    assert image.ndim == 3 and red.sum() > 100  # the chosen site's bars
