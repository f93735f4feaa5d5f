"""A cumulative GLM fitted one volume at a time, at a cost per volume that does not grow.

Volume ``t`` (``y_t``, all voxels) with regressors ``x_t`` updates the sufficient statistics
``A += x_t x_t^T`` and ``B += x_t y_t^T``; the coefficients of all volumes so far are
``beta = (A + P)^-1 B`` and the volume's residual is ``y_t - x_t^T beta``, computed as
``y_t - ((A + P)^-1 x_t)^T B`` without forming ``beta``: ``O(p^3 + p * n_voxels)`` per volume
for ``p`` regressors, whatever the volume's position in the run (``p`` is fixed when the run
starts). This is the same estimate as refitting the GLM on
the whole run so far at every volume (OpenNFT's cumulative GLM), without its growing cost.

``P`` is a diagonal ridge penalty, one entry per regressor (the preprocessor penalises the drift
terms only, never the constant or the motion parameters): it keeps the first volumes of a run,
when there are fewer volumes than regressors, well posed, and its effect fades as the run grows.
It is a Gaussian prior of zero drift worth ``P`` volumes: the preprocessor's default (1000)
holds the drift terms back in runs of a few hundred volumes, where they would take evoked
signal with them, and lets them in over long runs.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
from numpy.typing import ArrayLike


class CumulativeGLM:
    """Least-squares fit of every voxel on the regressors of the volumes seen so far.

    Parameters
    ----------
    penalty : array_like
        ``(n_regressors,)`` ridge penalty of each coefficient (>= 0), in units of one volume's
        ``x x^T`` for a regressor of size 1.
    n_voxels : int
        Voxels per volume.
    """

    def __init__(self, penalty: ArrayLike, n_voxels: int) -> None:
        p = np.asarray(penalty, dtype=np.float64).reshape(-1)
        if p.size < 1 or n_voxels < 1 or not np.all(p >= 0):
            raise ValueError(
                f"need >= 1 regressor, n_voxels >= 1 and penalties >= 0; got {p.tolist()}, "
                f"{n_voxels}"
            )
        self.n_regressors, self.n_voxels = int(p.size), int(n_voxels)
        self._a = np.diag(p)
        self._b = np.zeros((self.n_regressors, self.n_voxels))
        #: Volumes the fit has used.
        self.n_used = 0

    def update(self, x: np.ndarray, y: np.ndarray, active: np.ndarray | None = None) -> np.ndarray:
        """Add volume ``y`` with regressors ``x`` to the fit; return its residual.

        Parameters
        ----------
        x : np.ndarray
            ``(n_regressors,)`` regressors of the volume.
        y : np.ndarray
            ``(n_voxels,)`` the volume (finite).
        active : np.ndarray or None
            Boolean ``(n_regressors,)``: the regressors the residual is taken against (all by
            default). Statistics are kept for all, so a regressor can join the fit later as if
            it had been in it from the start.

        Returns
        -------
        np.ndarray
            ``(n_voxels,)`` float64: ``y`` minus the fit of all volumes so far, this one included.
        """
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        self._a += np.outer(x, x)
        self._b += np.outer(x, y)
        self.n_used += 1
        return y - self.predict(x, active)

    def predict(self, x: np.ndarray, active: np.ndarray | None = None) -> np.ndarray:
        """The current fit's value for regressors ``x`` (without adding anything)."""
        x = np.asarray(x, dtype=np.float64)
        if active is None:
            return _solve(self._a, x) @ self._b
        # Inactive regressors get an identity block and a zero right-hand side, so their weight is
        # 0 and the active block is solved exactly, at the cost of the full system: the work per
        # volume is the same early in a run (few cosines active) as late (all of them).
        off = ~np.asarray(active, dtype=bool)
        a = self._a.copy()
        a[off, :] = 0.0
        a[:, off] = 0.0
        a[off, off] = 1.0
        return _solve(a, np.where(off, 0.0, x)) @ self._b

    def coefficients(self) -> np.ndarray:
        """``(n_regressors, n_voxels)`` current coefficients (for checks; costs ``p^2 n``)."""
        return _solve(self._a, self._b)


def _solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solution of ``a w = b`` for the symmetric ``a``, also when it is singular (early in a run).

    Cholesky when ``a`` is positive definite (the usual case, and fast); else least squares with
    LAPACK's complete orthogonal factorisation (``gelsy``; numpy's SVD-based ``lstsq`` was seen
    to fail to converge on well-conditioned systems here).
    """
    try:
        return scipy.linalg.cho_solve(scipy.linalg.cho_factor(a, check_finite=False), b)
    except np.linalg.LinAlgError:
        return scipy.linalg.lstsq(a, b, lapack_driver="gelsy", check_finite=False)[0]
