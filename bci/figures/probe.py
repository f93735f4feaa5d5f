"""The probe block: every site's evoked response and its reliability, the chosen site marked."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bci.figures.backend import plt, save_figure


def plot_probe(
    path: str | Path,
    evoked_hz: Sequence[float],
    score: Sequence[float | None],
    chosen: int,
    title: str = "",
) -> Path:
    """Write two bar charts over the sites: mean evoked rate, and its t value; ``chosen`` in red.

    Parameters
    ----------
    path : str | Path
        PNG file to write.
    evoked_hz : sequence of float
        Per site, the mean evoked rate over the probe trials (spikes/s above baseline).
    score : sequence of float or None
        Per site, the reliability (t value); None where undefined.
    chosen : int
        The site picked.
    title : str
        Figure title.

    Returns
    -------
    Path
        The file written.
    """
    sites = np.arange(len(evoked_hz))
    colors = ["C3" if s == chosen else "C0" for s in sites]
    t = np.array([np.nan if s is None else s for s in score], dtype=np.float64)
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(max(6, 0.22 * len(sites) + 2), 4.5), sharex=True
    )
    top.bar(sites, evoked_hz, color=colors)
    top.set_ylabel("evoked (spikes/s)")
    bottom.bar(sites, np.nan_to_num(t, nan=0.0, posinf=0.0), color=colors)
    bottom.set_ylabel("reliability (t)")
    bottom.set_xlabel("site (red: chosen)")
    top.set_title(title or f"probe block: site {chosen} chosen")
    return save_figure(fig, path)
