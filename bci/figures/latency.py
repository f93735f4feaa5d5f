"""Histogram of the closed-loop latency with its percentiles marked."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bci.figures.backend import plt, save_figure


def plot_latency(path: str | Path, latencies_ms: np.ndarray, title: str = "") -> Path:
    """Write a latency histogram with p50, p95 and p99 as vertical lines.

    Parameters
    ----------
    path : str | Path
        PNG file to write.
    latencies_ms : np.ndarray
        One latency per trial, in milliseconds (NaN entries are ignored): from the arrival of
        the volume that completed the trial's response window to the flip that put its
        reconstruction on screen.
    title : str
        Figure title.

    Returns
    -------
    Path
        The file written.
    """
    values = np.asarray(latencies_ms, dtype=float)
    values = values[np.isfinite(values)]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if len(values):
        ax.hist(values, bins=min(40, max(5, len(values) // 2)), color="0.55")
        for q, style in ((50, "-"), (95, "--"), (99, ":")):
            v = np.percentile(values, q)
            ax.axvline(v, color="C3", linestyle=style, label=f"p{q} {v:.1f} ms")
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no latencies measured", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("trials")
    ax.set_title(title or f"volume-in to reconstruction-on-screen latency (n = {len(values)})")
    return save_figure(fig, path)
