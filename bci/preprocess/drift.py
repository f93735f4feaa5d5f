"""Drift regressors of a run: a constant, a linear term and the DCT set below a high-pass cutoff.

SPM's high-pass filter removes the discrete cosines ``cos(pi * k * (2 n + 1) / (2 N))``,
``k = 1 .. K`` with ``K = floor(2 N TR / cutoff)``, of a run of ``N`` volumes: every cosine whose
period ``2 N TR / k`` is at least the cutoff (256 s by default). The set depends on ``N``, which an
online filter does not know until the run is over. The choice made here (as OpenNFT does, which
builds its cumulative GLM's DCT set on the run length its protocol declares): the set is fixed at
the start of a run from a **horizon** of ``N`` volumes, the run's scheduled length when known
(``start_run(n_volumes=...)``), else :data:`DEFAULT_HORIZON_S`. Every regressor is then a fixed
function of the volume index, so a volume's row never changes and the cumulative GLM's cost per
volume stays constant. A run longer than its horizon keeps the same regressors (still all below
the cutoff; cosines keep oscillating past ``N``, and the linear term covers the slowest trend);
one shorter than it simply uses the first rows.
"""

from __future__ import annotations

import math

import numpy as np

DEFAULT_HORIZON_S = 512.0
"""The DCT horizon when a run's length is not known at its start."""


def n_cosines(n_volumes: int, tr_s: float, cutoff_s: float) -> int:
    """Number of DCT drift cosines of a run of ``n_volumes`` (SPM's ``K``, constant not counted).

    Parameters
    ----------
    n_volumes : int
        The horizon in volumes.
    tr_s : float
        Repetition time in seconds.
    cutoff_s : float
        High-pass cutoff period in seconds (0 or inf: no cosines).

    Returns
    -------
    int
        ``floor(2 * n_volumes * tr_s / cutoff_s)``.
    """
    if n_volumes < 1 or tr_s <= 0 or cutoff_s < 0:
        raise ValueError(
            f"need n_volumes >= 1, tr_s > 0, cutoff_s >= 0; got {n_volumes}, {tr_s}, {cutoff_s}"
        )
    if cutoff_s == 0 or math.isinf(cutoff_s):
        return 0
    return int(math.floor(2.0 * n_volumes * tr_s / cutoff_s + 1e-9))


class DriftBasis:
    """The drift regressors' row for each volume index of a run.

    Parameters
    ----------
    n_volumes : int
        The horizon ``N`` in volumes.
    tr_s : float
        Repetition time.
    cutoff_s : float
        High-pass cutoff period in seconds.

    Attributes
    ----------
    n_regressors : int
        ``2 + K``: constant, linear, ``K`` cosines (columns in that order).
    """

    def __init__(self, n_volumes: int, tr_s: float, cutoff_s: float) -> None:
        self.n_volumes = int(n_volumes)
        self.k = np.arange(1, n_cosines(n_volumes, tr_s, cutoff_s) + 1, dtype=np.float64)
        self.n_regressors = 2 + self.k.size

    def row(self, index: int) -> np.ndarray:
        """The regressors of volume ``index`` (0 = the run's first volume).

        Returns
        -------
        np.ndarray
            ``(n_regressors,)``: 1, ``index / N`` and ``cos(pi k (2 index + 1) / (2 N))``.
        """
        n = self.n_volumes
        out = np.empty(self.n_regressors)
        out[0] = 1.0
        out[1] = index / n
        out[2:] = np.cos(np.pi * self.k * (2 * index + 1) / (2 * n))
        return out

    def n_active_cosines(self, n_seen: int, tr_s: float, cutoff_s: float) -> int:
        """How many of the cosines (slowest first) a fit after ``n_seen`` volumes uses.

        As many as SPM would give a run of that length, ``floor(2 n_seen TR / cutoff)``, at most
        all of them: a cosine joins the fit once the run is long enough to tell it apart from
        the slower ones, so the first minutes of a run are not over-fitted.
        """
        if cutoff_s == 0 or math.isinf(cutoff_s):
            return 0
        return min(self.k.size, int(math.floor(2.0 * n_seen * tr_s / cutoff_s + 1e-9)))

    def matrix(self, n_rows: int) -> np.ndarray:
        """The first ``n_rows`` rows stacked (for checks and offline use)."""
        return np.stack([self.row(i) for i in range(n_rows)])
