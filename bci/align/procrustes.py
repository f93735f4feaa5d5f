"""Orthogonal Procrustes mapping between two feature spaces (PyMVPA ``ProcrusteanMapper``).

The mapping found for a source ``X`` (n, p_s) and a target ``Y`` (n, p_t) is

    ``Y ~ (X - mean_in) @ (s * T) + mean_out``

with ``T`` (p_s, p_t) orthogonal (columns or rows orthonormal, zero-padded as PyMVPA does when
``p_s != p_t``) and ``s`` an optional global scale. ``T`` is kept factorised as
``T = basis_in @ basis_out.T`` so that the dual (thin) solver never forms a p x p matrix.

Two solvers give the same projections of the training data:

* ``"full"``: SVD of the zero-padded ``max(p_s, p_t)``-square cross-product ``Y^T X`` (PyMVPA's way,
  O(p^3)). Where the data do not determine ``T`` (directions outside the training data's span)
  LAPACK's arbitrary completion of the singular bases fills them in.
* ``"dual"``: thin QR of ``X^T`` and ``Y^T`` and the SVD of the small ``R_y R_x^T`` (at most n x n),
  O(n^2 p). ``T`` is then a partial isometry that maps directions the training data never visited to
  zero instead of to an arbitrary completion.
"""

from __future__ import annotations

import logging
from functools import cached_property
from typing import Literal

import numpy as np
import scipy.linalg
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

logger = logging.getLogger(__name__)

SvdMode = Literal["auto", "dual", "full"]
SVD_MODES = ("auto", "dual", "full")


def check_array_2d(x: object, what: str) -> np.ndarray:
    """Return ``x`` as a finite 2-D float64 array, or raise a one-line ``ValueError``.

    Parameters
    ----------
    x : array-like
        The data, shape (n_samples, n_features).
    what : str
        How to name the data in error messages (e.g. ``"subject 2"``).

    Returns
    -------
    numpy.ndarray
        A float64 array of shape (n_samples, n_features).
    """
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what}: cannot convert data to float ({exc})") from None
    if arr.ndim != 2:
        raise ValueError(
            f"{what}: expected a 2-D array (n_samples, n_features); got shape {arr.shape}"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{what}: empty array of shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{what}: data contain NaN or Inf values")
    return arr


def check_svd_mode(svd: str) -> None:
    """Raise ``ValueError`` unless ``svd`` is one of ``"auto"``, ``"dual"``, ``"full"``."""
    if svd not in SVD_MODES:
        raise ValueError(f"svd must be one of {SVD_MODES}; got {svd!r}")


def resolve_svd_mode(svd: str, n_samples: int, n_in: int, n_out: int) -> str:
    """Pick the solver: ``"auto"`` means ``"dual"`` when n_samples < max(n_in, n_out)."""
    check_svd_mode(svd)
    if svd == "auto":
        return "dual" if n_samples < max(n_in, n_out) else "full"
    return svd


def _svd(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thin SVD; falls back from the divide-and-conquer driver when it does not converge."""
    try:
        return scipy.linalg.svd(a, full_matrices=False, check_finite=False)
    except np.linalg.LinAlgError:
        return scipy.linalg.svd(a, full_matrices=False, check_finite=False, lapack_driver="gesvd")


class Side:
    """One side (source or target) of a Procrustes problem: centred, unit-norm data.

    The thin QR factorisation of the transposed data, needed by the dual solver, is computed on
    first use and cached, so a source aligned to several targets is factorised once.

    Parameters
    ----------
    data : numpy.ndarray
        Float64 array (n_samples, n_features).
    demean : bool
        Subtract the per-feature mean before normalising.
    what : str
        How to name the data in error messages.
    """

    def __init__(self, data: np.ndarray, demean: bool, what: str) -> None:
        self.mean = data.mean(axis=0) if demean else np.zeros(data.shape[1])
        centred = data - self.mean
        self.norm = float(np.linalg.norm(centred))
        if not self.norm > 0.0 or not np.isfinite(self.norm):
            raise ValueError(f"{what}: data have no variance; cannot fit a Procrustes transform")
        self.z = centred / self.norm

    @property
    def shape(self) -> tuple[int, int]:
        """(n_samples, n_features) of the data."""
        return self.z.shape

    @cached_property
    def qr(self) -> tuple[np.ndarray, np.ndarray]:
        """Thin QR of ``z.T``: ``q`` (p, a), orthonormal columns; ``r`` (a, n); a = min(n, p)."""
        q, r = scipy.linalg.qr(self.z.T, mode="economic", check_finite=False)
        return q, r


class Factors:
    """Solution of one Procrustes problem, ``T = basis_in @ basis_out.T``.

    Each basis is held as ``q @ c`` (``q`` an orthonormal frame, ``c`` small coefficients; ``q``
    is None when ``c`` already is the basis) and only formed when asked for, so projecting the
    training data or forming the dense ``T`` never builds more than is needed.

    Parameters
    ----------
    basis_in : tuple of (numpy.ndarray or None, numpy.ndarray)
        ``(q, c)`` with ``q @ c`` the (p_s, r) input basis.
    basis_out : tuple of (numpy.ndarray or None, numpy.ndarray)
        ``(q, c)`` with ``q @ c`` the (p_t, r) output basis.
    sv_sum : float
        Sum of the (reflection-corrected) singular values of the normalised cross-product.
    scores : numpy.ndarray
        (n, r) normalised source data in the singular basis, ``source.z @ basis_in``.
    mode : str
        ``"dual"`` or ``"full"``.
    """

    def __init__(
        self,
        basis_in: tuple[np.ndarray | None, np.ndarray],
        basis_out: tuple[np.ndarray | None, np.ndarray],
        sv_sum: float,
        scores: np.ndarray,
        mode: str,
    ) -> None:
        self._in, self._out = basis_in, basis_out
        self.sv_sum, self.scores, self.mode = sv_sum, scores, mode

    @staticmethod
    def _form(qc: tuple[np.ndarray | None, np.ndarray]) -> np.ndarray:
        q, c = qc
        return c if q is None else q @ c

    @cached_property
    def basis_in(self) -> np.ndarray:
        """(p_s, r) input basis."""
        return self._form(self._in)

    @cached_property
    def basis_out(self) -> np.ndarray:
        """(p_t, r) output basis."""
        return self._form(self._out)

    def scale(self, src: Side, tgt: Side) -> float:
        """The optimal global scale ``s`` mapping the (unnormalised) source onto the target."""
        return self.sv_sum * tgt.norm / src.norm

    def project_source(self, src: Side, tgt: Side, scaling: bool) -> np.ndarray:
        """The source's training data mapped into target space, without forming ``T``."""
        factor = self.scale(src, tgt) * src.norm if scaling else src.norm
        q, c = self._out
        out = self.scores @ c.T
        if q is not None:
            out = out @ q.T
        return factor * out + tgt.mean

    def projection(self, src: Side, tgt: Side, scaling: bool) -> np.ndarray:
        """The dense (p_s, p_t) projection ``s * T`` (``T`` alone when ``scaling`` is false)."""
        factor = self.scale(src, tgt) if scaling else 1.0
        (q_in, c_in), (q_out, c_out) = self._in, self._out
        t = c_in @ c_out.T
        if q_in is not None:
            t = q_in @ t
        if q_out is not None:
            t = t @ q_out.T
        return factor * t


def _det_sign(a: np.ndarray) -> float:
    sign, _ = np.linalg.slogdet(a)
    return float(sign)


def _solve_full(src: Side, tgt: Side, reflection: bool) -> Factors:
    (_, p_s), (_, p_t) = src.shape, tgt.shape
    q = max(p_s, p_t)
    cross = np.zeros((q, q))
    cross[:p_t, :p_s] = tgt.z.T @ src.z  # zero padding as PyMVPA does
    u, s, vh = _svd(cross)
    if not reflection and _det_sign(u) * _det_sign(vh) < 0:
        u[:, -1] = -u[:, -1]
        s[-1] = -s[-1]
    basis_in = np.ascontiguousarray(vh[:, :p_s].T)
    return Factors(
        (None, basis_in), (None, u[:p_t].copy()), float(s.sum()), src.z @ basis_in, "full"
    )


def _solve_dual(src: Side, tgt: Side, reflection: bool) -> Factors:
    (_, p_s), (_, p_t) = src.shape, tgt.shape
    q_x, r_x = src.qr
    q_y, r_y = tgt.qr
    u, s, vh = _svd(r_y @ r_x.T)  # the cross-product Y^T X equals q_y (r_y r_x^T) q_x^T
    if len(s) == p_s == p_t:
        # Square: T is a full orthogonal matrix and its determinant is defined.
        if not reflection and _det_sign(q_x @ vh.T) * _det_sign(q_y @ u) < 0:
            u[:, -1] = -u[:, -1]
            s[-1] = -s[-1]
    else:
        # Keep the numerically non-zero part only: the zero-singular-value pairs do not touch
        # the training data and would pair arbitrary directions (e.g. the one QR adds for the
        # removed mean). A proper-rotation completion of this partial isometry always exists,
        # so ``reflection=False`` needs no correction here.
        keep = s > (s[0] * max(u.shape[0], vh.shape[1]) * np.finfo(float).eps if len(s) else 0)
        u, s, vh = u[:, keep], s[keep], vh[keep]
    return Factors((q_x, vh.T), (q_y, u), float(s.sum()), r_x.T @ vh.T, "dual")


def fit_factors(src: Side, tgt: Side, *, reflection: bool, svd: str) -> Factors:
    """Solve the orthogonal Procrustes problem mapping ``src`` onto ``tgt``.

    Parameters
    ----------
    src, tgt : Side
        Prepared source and target data (same number of samples).
    reflection : bool
        Allow ``T`` to be a reflection; if false, force a proper rotation (Kabsch correction).
    svd : {"auto", "dual", "full"}
        Solver; see the module docstring.

    Returns
    -------
    Factors
        The factorised solution.
    """
    (n, p_s), (n_t, p_t) = src.shape, tgt.shape
    if n != n_t:
        raise ValueError(
            f"source and target must have the same number of samples; got {n} and {n_t}"
        )
    mode = resolve_svd_mode(svd, n, p_s, p_t)
    solver = _solve_dual if mode == "dual" else _solve_full
    return solver(src, tgt, reflection)


def as_samples(
    x: object, n_features: int, what: str, unit: str = "features"
) -> tuple[np.ndarray, bool]:
    """Validate one sample (1-D) or a chunk (2-D) of new data with ``n_features`` columns.

    ``unit`` names the columns in the error message (``"features"``, ``"voxels"``).

    Returns
    -------
    tuple of (numpy.ndarray, bool)
        The data as a finite float64 2-D array and whether the input was 1-D.
    """
    arr = np.asarray(x)
    one = arr.ndim == 1
    arr2 = check_array_2d(arr[None, :] if one else arr, what)
    if arr2.shape[1] != n_features:
        raise ValueError(f"{what}: expected {n_features} {unit}, got {arr2.shape[1]}")
    return arr2, one


def output_dtype(x: object) -> np.dtype:
    """float32 for float32 (or float16) input, float64 otherwise."""
    dtype = np.asarray(x).dtype
    if np.issubdtype(dtype, np.floating) and dtype.itemsize <= 4:
        return np.dtype(np.float32)
    return np.dtype(np.float64)


class Procrustes(BaseEstimator):
    """Orthogonal Procrustes transform from a source onto a target space.

    Follows PyMVPA's ``ProcrusteanMapper`` defaults: ``scaling=True``, ``reflection=True``,
    ``demean=True`` and mapping to fewer or more features is allowed (zero padding).

    Parameters
    ----------
    scaling : bool, default True
        Estimate a global scale (no longer a rigid transformation).
    reflection : bool, default True
        Allow reflections; if false the transform is forced to be a proper rotation.
    demean : bool, default True
        Remove the source mean before and add the target mean after the rotation.
    svd : {"auto", "dual", "full"}, default "auto"
        ``"dual"`` solves the thin O(n^2 p) problem; ``"full"`` the p x p SVD; ``"auto"`` picks
        ``"dual"`` when n_samples < max(n_features_in, n_features_out).

    Attributes
    ----------
    basis_in_ : numpy.ndarray
        (n_features_in, r) input basis; ``T = basis_in_ @ basis_out_.T``.
    basis_out_ : numpy.ndarray
        (n_features_out, r) output basis.
    scale_ : float
        Estimated scale (applied only when ``scaling`` is true).
    mean_in_ : numpy.ndarray
        (n_features_in,) source mean (zeros when ``demean`` is false).
    mean_out_ : numpy.ndarray
        (n_features_out,) target mean (zeros when ``demean`` is false).
    svd_ : str
        The solver that was used, ``"dual"`` or ``"full"``.
    n_features_in_ : int
        Number of source features.
    """

    _persisted_attrs = (
        "basis_in_",
        "basis_out_",
        "scale_",
        "mean_in_",
        "mean_out_",
        "svd_",
        "n_features_in_",
    )

    def __init__(
        self,
        scaling: bool = True,
        reflection: bool = True,
        demean: bool = True,
        svd: SvdMode = "auto",
    ) -> None:
        self.scaling = scaling
        self.reflection = reflection
        self.demean = demean
        self.svd = svd

    def fit(self, X: object, Y: object) -> Procrustes:  # noqa: N803 (sklearn convention)
        """Find the transform mapping ``X`` (n, p_s) onto ``Y`` (n, p_t).

        Parameters
        ----------
        X : array-like
            Source data, shape (n_samples, n_features_in).
        Y : array-like
            Target data, shape (n_samples, n_features_out).

        Returns
        -------
        Procrustes
            ``self``.
        """
        check_svd_mode(self.svd)
        x = check_array_2d(X, "source")
        y = check_array_2d(Y, "target")
        if x.shape[0] != y.shape[0]:
            raise ValueError(
                "source and target must have the same number of samples; "
                f"got {x.shape[0]} and {y.shape[0]}"
            )
        src, tgt = Side(x, self.demean, "source"), Side(y, self.demean, "target")
        fac = fit_factors(src, tgt, reflection=self.reflection, svd=self.svd)
        self.basis_in_ = fac.basis_in
        self.basis_out_ = fac.basis_out
        self.scale_ = fac.scale(src, tgt)
        self.mean_in_ = src.mean
        self.mean_out_ = tgt.mean
        self.svd_ = fac.mode
        self.n_features_in_ = x.shape[1]
        logger.debug(
            "Procrustes (%s): %s -> %s, scale %.4g", fac.mode, x.shape, y.shape, self.scale_
        )
        return self

    @property
    def projection_(self) -> np.ndarray:
        """Dense (n_features_in, n_features_out) projection, scale included when ``scaling``."""
        check_is_fitted(self, "basis_in_")
        factor = self.scale_ if self.scaling else 1.0
        return factor * (self.basis_in_ @ self.basis_out_.T)

    def transform(self, X: object) -> np.ndarray:
        """Map source-space data (one sample, 1-D, or a 2-D chunk) into the target space.

        Parameters
        ----------
        X : array-like
            Shape (n_features_in,) or (n_samples, n_features_in).

        Returns
        -------
        numpy.ndarray
            Shape (n_features_out,) or (n_samples, n_features_out); float32 for float32 input.
        """
        check_is_fitted(self, "basis_in_")
        x, one = as_samples(X, self.n_features_in_, "source")
        factor = self.scale_ if self.scaling else 1.0
        out = factor * (((x - self.mean_in_) @ self.basis_in_) @ self.basis_out_.T)
        out += self.mean_out_
        out = out.astype(output_dtype(X), copy=False)
        return out[0] if one else out

    def _validate_fitted(self) -> None:
        """Check the fitted attributes are consistent (used after loading from disk)."""
        p_s, r = self.basis_in_.shape
        if self.basis_out_.ndim != 2 or self.basis_out_.shape[1] != r:
            raise ValueError("basis_in_ and basis_out_ have inconsistent shapes")
        if self.mean_in_.shape != (p_s,) or self.mean_out_.shape != (self.basis_out_.shape[0],):
            raise ValueError("mean_in_/mean_out_ do not match the bases")
        if int(self.n_features_in_) != p_s:
            raise ValueError("n_features_in_ does not match basis_in_")
