"""Figures show what they say: panels, titles, labels and the data drawn; bad input is named."""

from __future__ import annotations

import matplotlib.figure
import numpy as np
import pytest

from bci.figures import plot_fitness, plot_image_grid, plot_latency, plot_reconstructions
from bci.figures.backend import plt


@pytest.fixture
def saved(monkeypatch) -> list[matplotlib.figure.Figure]:
    """Every figure written to a file during the test, in order (still holding its artists)."""
    figures = []
    original = matplotlib.figure.Figure.savefig

    def record(self, *args, **kwargs):
        figures.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", record)
    return figures


def test_reconstructions_grid(tmp_path, saved):
    rng = np.random.default_rng(0)
    stim = rng.integers(0, 255, (4, 16, 16, 3), dtype=np.uint8)
    path = plot_reconstructions(tmp_path / "r.png", stim, {"a": stim, "b": stim[::-1]}, "t")
    assert plt.imread(path).shape[0] > 200
    (fig,) = saved
    assert [t.get_text() for t in fig.texts] == ["t"]  # the suptitle
    axes = np.array(fig.axes).reshape(3, 4)  # three rows (stimuli, a, b), four trials
    assert [row[0].get_ylabel() for row in axes] == ["stimuli", "a", "b"]
    assert all(ax.get_ylabel() == "" for ax in axes[:, 1:].flat)
    for c in range(4):
        np.testing.assert_array_equal(axes[0, c].images[0].get_array(), stim[c])
        np.testing.assert_array_equal(axes[2, c].images[0].get_array(), stim[3 - c])
    with pytest.raises(ValueError, match="row 'b' has 2 images for 4 stimuli"):
        plot_reconstructions(tmp_path / "x.png", stim, {"b": stim[:2]})


def test_reconstructions_draw_at_most_max_columns_and_say_which(tmp_path, saved):
    stim = np.zeros((9, 8, 8, 3), dtype=np.uint8)
    plot_reconstructions(tmp_path / "r.png", stim, {"a": stim}, max_columns=5)
    assert len(saved[0].axes) == 2 * 5
    assert [t.get_text() for t in saved[0].texts] == ["the first 5 of 9 drawn"]
    trials = list(range(120, 129))
    plot_reconstructions(tmp_path / "r.png", stim, {"a": stim}, "test", 5, trials=trials)
    assert [t.get_text() for t in saved[1].texts] == ["test; trials 120-124 drawn (5 of 9)"]
    plot_reconstructions(tmp_path / "r.png", stim[:5], {"a": stim}, "all", 5, trials=trials)
    assert [t.get_text() for t in saved[2].texts] == ["all"]  # every trial drawn: nothing added


def test_latency_histogram(tmp_path, saved):
    values = np.linspace(5, 30, 50)
    plot_latency(tmp_path / "l.png", np.r_[values, np.nan])
    (ax,) = saved[0].axes
    # what is measured: the trial's last volume in, to its reconstruction on screen
    assert ax.get_title() == "volume-in to reconstruction-on-screen latency (n = 50)"  # no NaN
    assert sum(p.get_height() for p in ax.patches) == 50
    assert ax.get_xlabel() == "latency (ms)" and ax.get_ylabel() == "trials"
    lines = {line.get_label(): line.get_xdata()[0] for line in ax.lines}
    expected = {
        f"p{q} {np.percentile(values, q):.1f} ms": np.percentile(values, q) for q in (50, 95, 99)
    }
    assert lines == pytest.approx(expected)
    plot_latency(tmp_path / "empty.png", np.array([]), title="none")
    empty = saved[1].axes[0]
    assert [t.get_text() for t in empty.texts] == ["no latencies measured"]
    assert empty.get_title() == "none" and not empty.patches


def test_fitness_plot(tmp_path, saved):
    plot_fitness(tmp_path / "f.png", [1, 2, 3], [2, 3, 5], reference=1.5)
    (ax,) = saved[0].axes
    assert ax.get_title() == "fitness per generation"
    by_label = {line.get_label(): line for line in ax.lines}
    assert set(by_label) == {"population mean", "population max", "reference images"}
    np.testing.assert_array_equal(by_label["population mean"].get_xdata(), [0, 1, 2])
    np.testing.assert_array_equal(by_label["population mean"].get_ydata(), [1, 2, 3])
    np.testing.assert_array_equal(by_label["population max"].get_ydata(), [2, 3, 5])
    np.testing.assert_array_equal(by_label["reference images"].get_ydata(), [1.5, 1.5])
    plot_fitness(tmp_path / "g.png", [1, 2], [2, 3], reference=float("nan"), title="x")
    assert [line.get_label() for line in saved[1].axes[0].lines] == [
        "population mean",
        "population max",
    ]
    assert saved[1].axes[0].get_title() == "x"


def test_image_grid_rows_and_errors(tmp_path, saved):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 255, (7, 16, 16, 3), dtype=np.uint8)
    plot_image_grid(tmp_path / "a.png", images, columns=7)
    plot_image_grid(tmp_path / "b.png", images, list("abcdefg"), title="best", columns=4)
    assert len(saved[0].axes) == 7
    fig = saved[1]
    assert [t.get_text() for t in fig.texts] == ["best"]
    assert len(fig.axes) == 8  # 7 images in rows of 4: two rows, the last panel empty
    drawn = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in drawn] == list("abcdefg")
    for ax, image in zip(drawn, images, strict=True):
        np.testing.assert_array_equal(ax.images[0].get_array(), image)
    with pytest.raises(ValueError, match=r"images must have shape \(n >= 1, H, W, 3\)"):
        plot_image_grid(tmp_path / "c.png", images[..., 0])
    with pytest.raises(ValueError, match="2 labels for 7 images"):
        plot_image_grid(tmp_path / "d.png", images, ["x", "y"])


def test_probe_plot_marks_the_chosen_site_in_red(tmp_path, saved):
    from matplotlib.colors import to_rgba

    from bci.figures import plot_probe

    plot_probe(tmp_path / "p.png", [1.0, 9.0, 2.0], [0.5, None, 4.0], chosen=2)
    top, bottom = saved[0].axes
    assert top.get_title() == "probe block: site 2 chosen"
    assert [p.get_height() for p in top.patches] == [1.0, 9.0, 2.0]
    assert [p.get_height() for p in bottom.patches] == [0.5, 0.0, 4.0]  # undefined t drawn as 0
    assert top.get_ylabel() == "evoked (spikes/s)" and bottom.get_ylabel() == "reliability (t)"
    red = to_rgba("C3")
    assert [p.get_facecolor() == red for p in top.patches] == [False, False, True]
