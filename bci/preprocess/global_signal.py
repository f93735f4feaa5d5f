"""Global signal regression, fitted over the run so far: removes what every voxel shares.

A real scanner drifts as a whole (gradient heating, B0 drift, a global intensity change): one
time course that every voxel follows with its own weight. Filters of each voxel's own time
series (:mod:`bci.preprocess.glm`, :mod:`bci.preprocess.highpass`) leave the part of it faster
than their cutoff, and that part is the same pattern in every volume: a decoder reads it as a
strong, shared signal. This step takes the **global signal** of each (detrended) volume, the
mean over its voxels ``g_t``, and removes each voxel's least-squares fit on it over the run so far
(this volume included): ``e_t - b g_t`` with ``b = sum_s e_s g_s / sum_s g_s^2``. Only the two
sums are kept, so the cost per volume is constant.

In the project's virtual scanner a drift shared by all voxels (a global random walk 4x the evoked
standard deviation) kept 0.90 of the confound-free latent r without this step and 1.00 with it;
on clean data the step costs about 1.5 % (measured offline on 1024-voxel sessions, three seeds).
It removes one spatial pattern per run, so it also removes a response that is the same in every
voxel (the part of the evoked response that no stimulus tells apart from another). On BOLD from
another generative model (``tools/bench_foreign_bold.py``: drifts smooth and mostly per voxel)
it cost 5-7 % of latent r with the confounds on, and the high-pass at 256 s takes most of a
shared random walk too, so it is off by default (``[preprocess] global_signal``).
"""

from __future__ import annotations

import numpy as np


class GlobalSignalRegression:
    """Each voxel's cumulative regression on the volumes' mean, within one run.

    Parameters
    ----------
    n_voxels : int
        Voxels per volume.
    """

    def __init__(self, n_voxels: int) -> None:
        self._cross = np.zeros(int(n_voxels))
        self._power = 0.0

    def remove(self, values: np.ndarray) -> np.ndarray:
        """Add one (finite) volume to the fit and return it without its global signal.

        Parameters
        ----------
        values : np.ndarray
            ``(n_voxels,)`` the detrended volume.

        Returns
        -------
        np.ndarray
            ``(n_voxels,)`` float64; unchanged while the global signal has been 0.
        """
        g = float(values.mean())
        self._cross += values * g
        self._power += g * g
        if self._power <= 0:
            return np.asarray(values, dtype=np.float64)
        return values - (self._cross / self._power) * g
