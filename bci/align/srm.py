"""Deterministic shared response model (Chen et al. 2015; BrainIAK's ``DetSRM``).

Each subject is modelled as ``X_i ~ S @ W_i.T`` with ``S`` (n_samples, k) the shared response and
``W_i`` (n_voxels_i, k) with orthonormal columns. Block coordinate descent alternates
``W_i = Procrustes(X_i^T S)`` (``U V^T`` of its thin SVD) and ``S = mean_i X_i W_i``.
BrainIAK stores data as (voxels, samples); here everything is (samples, voxels).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from sklearn.utils import check_random_state
from tqdm.auto import tqdm

from bci.align.hyperalignment import MultiSubjectAligner, check_datasets
from bci.align.procrustes import _svd

logger = logging.getLogger(__name__)

_PERTURBATION = 1e-3  # BrainIAK adds this on the diagonal of X_i^T S before the SVD


class SRM(MultiSubjectAligner):
    """Deterministic shared response model with the scikit-learn API.

    Parameters
    ----------
    n_features : int, default 50
        Dimension k of the shared space (at most n_samples and every subject's voxel count).
    n_iter : int, default 10
        Number of block-coordinate-descent iterations.
    random_state : int, numpy.random.RandomState or None, default None
        Seed for the random orthonormal initial ``W_i``; an int seeds them as BrainIAK's
        ``rand_seed`` does, so both give the same model.
    compute_objective : bool, default False
        Record the objective before and after each iteration in ``objective_`` (costs one
        reconstruction of every subject's data per iteration).
    verbose : bool, default False
        Show a progress bar.

    Attributes
    ----------
    n_voxels_ : list of int
        Voxel count of each subject.
    w_ : list of numpy.ndarray
        Per-subject (n_voxels_i, k) maps with orthonormal columns (also ``projections_``).
    s_ : numpy.ndarray
        (n_samples, k) shared response of the training data.
    objective_ : numpy.ndarray or None
        (n_iter + 1,) objective ``sum_i ||X_i - S W_i^T||^2 / (2 n)`` before and after each
        iteration, or None unless ``compute_objective``.
    """

    _persisted_attrs = ("n_voxels_", "w_", "s_", "objective_")

    def __init__(
        self,
        n_features: int = 50,
        n_iter: int = 10,
        random_state: int | np.random.RandomState | None = None,
        compute_objective: bool = False,
        verbose: bool = False,
    ) -> None:
        self.n_features = n_features
        self.n_iter = n_iter
        self.random_state = random_state
        self.compute_objective = compute_objective
        self.verbose = verbose

    @property
    def projections_(self) -> list[np.ndarray]:
        """Alias of ``w_``: per-subject (n_voxels_i, k) projections."""
        return self.w_

    def fit(self, datasets: Sequence[object], y: object = None) -> SRM:
        """Fit the shared response and the per-subject orthonormal maps.

        Parameters
        ----------
        datasets : sequence of array-like
            One (n_samples, n_voxels_i) array per subject, time-locked (same samples).
        y : ignored

        Returns
        -------
        SRM
            ``self``.
        """
        xs = check_datasets(datasets, "SRM")
        k, n = self.n_features, xs[0].shape[0]
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"n_features must be a positive integer; got {k!r}")
        if not isinstance(self.n_iter, (int, np.integer)) or self.n_iter < 0:
            raise ValueError(f"n_iter must be an integer >= 0; got {self.n_iter!r}")
        if k > n:
            raise ValueError(f"SRM: n_features={k} exceeds the number of samples ({n})")
        n_vox = [x.shape[1] for x in xs]
        if k > min(n_vox):
            raise ValueError(
                f"SRM: n_features={k} exceeds the smallest voxel count "
                f"({min(n_vox)}, subject {int(np.argmin(n_vox))})"
            )

        rng = check_random_state(self.random_state)
        seeds = [rng.randint(2**32, dtype=np.int64) for _ in xs]
        w = [
            np.linalg.qr(np.random.RandomState(s).random_sample((p, k)))[0]
            for s, p in zip(seeds, n_vox, strict=True)
        ]
        s = _shared(xs, w)
        objective = [_objective(xs, w, s)] if self.compute_objective else None
        logger.info("SRM: %d subjects, %d samples, voxels %s, k=%d", len(xs), n, n_vox, k)
        for it in tqdm(range(self.n_iter), desc="SRM", unit="iter", disable=not self.verbose):
            for i, x in enumerate(xs):
                a = x.T @ s
                a[np.diag_indices(k)] += _PERTURBATION
                u, _, vh = _svd(a)
                w[i] = u @ vh
            s = _shared(xs, w)
            if objective is not None:
                objective.append(_objective(xs, w, s))
                logger.debug("SRM iteration %d: objective %.6g", it + 1, objective[-1])

        self.n_voxels_ = n_vox
        self.w_ = w
        self.s_ = s
        self.objective_ = None if objective is None else np.asarray(objective)
        logger.info("SRM done after %d iterations", self.n_iter)
        return self

    def _subject_affine(
        self, subject: int
    ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray, np.ndarray | None]:
        return None, None, self.w_[subject], None

    def _validate_fitted(self) -> None:
        """Check the fitted attributes are consistent (used after loading from disk)."""
        k = self.s_.shape[1]
        if [w.shape for w in self.w_] != [(v, k) for v in self.n_voxels_]:
            raise ValueError("w_ does not match n_voxels_ and s_")


def _shared(xs: list[np.ndarray], w: list[np.ndarray]) -> np.ndarray:
    return sum(x @ wi for x, wi in zip(xs, w, strict=True)) / len(xs)


def _objective(xs: list[np.ndarray], w: list[np.ndarray], s: np.ndarray) -> float:
    total = sum(np.linalg.norm(x - s @ wi.T) ** 2 for x, wi in zip(xs, w, strict=True))
    return float(0.5 * total / s.shape[0])
