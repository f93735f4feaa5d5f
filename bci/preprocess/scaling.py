"""Per-run scaling of detrended volumes: percent signal change or a running z-score.

Both use only the volumes of the run so far (Welford's running mean and variance per voxel, a
constant cost per volume):

``psc``
    ``100 * residual / mean``: the residual as a percentage of the voxel's mean raw signal over the
    run so far. Needs data on a positive baseline (any scanner; the simulator only with
    ``baseline > 0``); a voxel whose running mean is not positive gives NaN.
``zscore``
    ``residual / sd``: the residual in units of its own running standard deviation over the run.
    Works whatever the baseline; the run's first volume (no spread yet) gives zeros.
``none``
    The residual as it is.
"""

from __future__ import annotations

import numpy as np

SCALINGS = ("zscore", "psc", "none")


class RunningScaler:
    """Scales one run's volumes by that run's running statistics.

    Parameters
    ----------
    scaling : {"zscore", "psc", "none"}
        See the module docstring.
    n_voxels : int
        Voxels per volume.
    """

    def __init__(self, scaling: str, n_voxels: int) -> None:
        if scaling not in SCALINGS:
            raise ValueError(f"scaling must be one of {', '.join(SCALINGS)}, got {scaling!r}")
        self.scaling = scaling
        self.n = 0
        self._mean = np.zeros(n_voxels)
        self._m2 = np.zeros(n_voxels)

    def scale(self, raw: np.ndarray, residual: np.ndarray) -> np.ndarray:
        """Add one volume to the run's statistics and return its scaled residual.

        Parameters
        ----------
        raw : np.ndarray
            ``(n_voxels,)`` the volume as acquired (for ``psc``'s mean).
        residual : np.ndarray
            ``(n_voxels,)`` the detrended volume.

        Returns
        -------
        np.ndarray
            ``(n_voxels,)`` float64.
        """
        if self.scaling == "none":
            return residual
        self.n += 1
        value = raw if self.scaling == "psc" else residual
        delta = value - self._mean
        self._mean += delta / self.n
        self._m2 += delta * (value - self._mean)
        if self.scaling == "psc":
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.where(self._mean > 0, 100.0 * residual / self._mean, np.nan)
        sd = np.sqrt(self._m2 / self.n)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(sd > 0, residual / sd, 0.0)
