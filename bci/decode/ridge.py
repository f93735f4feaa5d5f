"""Ridge decoder with efficient leave-one-out selection of the penalty per target.

The decoder maps (aligned, z-scored) brain responses to generator latents. For every candidate
penalty ``alpha`` the exact leave-one-out (LOO) squared error of each target is obtained in
closed form from a single eigendecomposition (Rifkin & Lippert 2007), the same quantity that
scikit-learn's ``RidgeCV`` minimises in its default ``gcv_mode``:

* ``n <= p`` (more voxels than trials): eigendecomposition of the Gram matrix
  ``K = Xc Xcᵀ = Q L Qᵀ``.
  With ``G = K + αI`` and ``D = 1 / (L + α)``: ``c = G⁻¹y = Q D Qᵀy``, ``d = diag(G⁻¹)`` and
  ``looe = c / d``; the weights are ``w = Xcᵀ c``.
* ``n > p``: eigendecomposition of the covariance ``C = Xcᵀ Xc = V L Vᵀ``. With ``H = C + αI``:
  ``αc = y − Xc H⁻¹ Xcᵀ y``, ``αd = 1 − diag(Xc H⁻¹ Xcᵀ)`` and ``w = H⁻¹ Xcᵀ y``.

``Xc`` and ``y`` are centred when an intercept is fitted; the LOO refit would re-estimate the
intercept, which subtracts ``(G⁻¹1)ᵢ / n`` from ``dᵢ`` (scaled by ``α`` in the covariance form).
An SVD ``Xc = U S Vᵀ`` gives the same quantities (``L = S²``, ``Q = U``), so both forms are the
reduced SVD by another name; the eigendecompositions are cheaper because one side is small.

Unlike ``RidgeCV``, which forms the full weight matrix for every alpha, only the LOO residuals are
computed per alpha; the weights are formed once, for the selected alphas.
"""

from __future__ import annotations

import numbers

import numpy as np
from scipy import linalg
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = ["RidgeDecoder", "loo_ridge"]

_DEFAULT_ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0, 1e4, 1e5)


def _check_alphas(alphas: object) -> np.ndarray:
    """Return ``alphas`` as a 1-D float64 array of finite, strictly positive values."""
    if isinstance(alphas, numbers.Real) and not isinstance(alphas, bool):
        alphas = [alphas]
    try:
        arr = np.asarray(alphas, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"alphas must be a sequence of positive numbers, got {alphas!r}") from None
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"alphas must be a non-empty 1-D sequence of numbers, got {alphas!r}")
    bad = np.flatnonzero(~(np.isfinite(arr) & (arr > 0)))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"alphas must be finite and strictly positive, got alphas[{i}]={arr[i]}")
    return arr


def _check_finite(a: np.ndarray, name: str) -> None:
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or inf; RidgeDecoder needs finite values")


def _decompose(xc: np.ndarray, yc: np.ndarray, fit_intercept: bool) -> dict:
    """One eigendecomposition of the centred design, reused for every alpha and target."""
    n, p = xc.shape
    if n <= p:
        eigvals, q = np.linalg.eigh(xc @ xc.T)
        return {
            "mode": "gram",
            "L": np.maximum(eigvals, 0.0),
            "Q": q,
            "Q2": q**2,
            "Qty": q.T @ yc,
            "Qt1": q.sum(axis=0) if fit_intercept else None,
        }
    eigvals, v = np.linalg.eigh(xc.T @ xc)
    xv = xc @ v
    return {
        "mode": "cov",
        "L": np.maximum(eigvals, 0.0),
        "V": v,
        "XV": xv,
        "XV2": xv**2,
        "VtXty": xv.T @ yc,
        "VtXt1": xv.sum(axis=0) if fit_intercept else None,
    }


def _loo_residuals(dec: dict, alpha: float, yc: np.ndarray, fit_intercept: bool):
    """Return ``(looe, c)``: LOO residuals (n, t) and, in Gram form, the dual solution ``c``."""
    n = yc.shape[0]
    dinv = 1.0 / (dec["L"] + alpha)
    if dec["mode"] == "gram":
        q = dec["Q"]
        c = q @ (dinv[:, None] * dec["Qty"])
        d = dec["Q2"] @ dinv
        if fit_intercept:
            d -= (q @ (dinv * dec["Qt1"])) / n
        return c / d[:, None], c
    xv = dec["XV"]
    a_c = yc - xv @ (dinv[:, None] * dec["VtXty"])
    a_d = 1.0 - dec["XV2"] @ dinv
    if fit_intercept:
        a_d -= (1.0 - xv @ (dinv * dec["VtXt1"])) / n
    a_c /= a_d[:, None]
    return a_c, None


def loo_ridge(
    x: np.ndarray,
    y: np.ndarray,
    alphas: np.ndarray,
    alpha_per_target: bool = True,
    fit_intercept: bool = True,
    copy: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fit ridge regression with the alpha chosen by exact leave-one-out squared error.

    Parameters
    ----------
    x : ndarray of shape (n_samples, n_features)
        Design matrix; computation is in float64.
    y : ndarray of shape (n_samples, n_targets)
        Targets.
    alphas : sequence of float
        Strictly positive candidate penalties; ties keep the first.
    alpha_per_target : bool, default=True
        Select one alpha per target column, else one alpha for all targets.
    fit_intercept : bool, default=True
        Centre ``x`` and ``y`` and fit an intercept.
    copy : bool, default=True
        When False and ``x`` is a float64 array, it is centred in place (saves a copy);
        otherwise ``x`` is not modified.

    Returns
    -------
    coef : ndarray of shape (n_targets, n_features)
    intercept : ndarray of shape (n_targets,)
    alpha : ndarray of shape (n_targets,)
        Selected penalty of each target.
    score : ndarray of shape (n_targets,) or shape ()
        Negative mean squared LOO error at the selected alpha (per target, or pooled).
    """
    alphas = _check_alphas(alphas)
    xc = np.array(x, dtype=np.float64) if copy else np.asarray(x, dtype=np.float64)
    yc = np.array(y, dtype=np.float64)
    if xc.ndim != 2 or yc.ndim != 2 or len(xc) != len(yc):
        raise ValueError(f"x and y must be 2-D with equal rows, got {xc.shape} and {yc.shape}")
    x_mean, y_mean = np.zeros(xc.shape[1]), np.zeros(yc.shape[1])
    if fit_intercept:
        x_mean, y_mean = xc.mean(axis=0), yc.mean(axis=0)
        xc -= x_mean
        yc -= y_mean
    dec = _decompose(xc, yc, fit_intercept)
    n_t = yc.shape[1]
    best_score = np.full(n_t, -np.inf)
    best_alpha = np.full(n_t, alphas[0])
    best_c = np.empty_like(yc) if dec["mode"] == "gram" else None
    pooled_best = -np.inf
    for alpha in alphas:
        looe, c = _loo_residuals(dec, float(alpha), yc, fit_intercept)
        looe **= 2
        score = -looe.mean(axis=0)
        if alpha_per_target:
            upd = score > best_score
        else:  # strict '>' keeps the first of tied alphas, as RidgeCV does
            pooled = float(score.mean())
            upd = np.full(n_t, pooled > pooled_best)
            pooled_best = max(pooled, pooled_best)
        best_score[upd] = score[upd]
        best_alpha[upd] = alpha
        if best_c is not None:
            np.copyto(best_c, c, where=upd[None, :])
    if dec["mode"] == "gram":
        w = xc.T @ best_c
    else:
        dsel = 1.0 / (dec["L"][:, None] + best_alpha[None, :])
        w = dec["V"] @ (dsel * dec["VtXty"])
    coef = w.T
    intercept = y_mean - coef @ x_mean
    score = best_score if alpha_per_target else np.asarray(pooled_best)
    return coef, intercept, best_alpha, score


def _pca(x: np.ndarray, n_components: int) -> tuple[np.ndarray, np.ndarray]:
    """Principal axes (k, p) with a deterministic sign, and the mean (p,)."""
    mean = x.mean(axis=0)
    _, _, vt = linalg.svd(x - mean, full_matrices=False, check_finite=False)
    comps = vt[:n_components]
    signs = np.sign(comps[np.arange(n_components), np.argmax(np.abs(comps), axis=1)])
    signs[signs == 0] = 1.0
    return comps * signs[:, None], mean


class RidgeDecoder(RegressorMixin, BaseEstimator):
    """Linear decoder (ridge regression) with leave-one-out penalty selection per target.

    Predictions equal ``sklearn.linear_model.RidgeCV(alphas, alpha_per_target=True)`` (the default
    generalized/LOO mode) while computing the weights only once, for the selected alphas.
    Computation is done in float64; ``coef_`` and ``intercept_`` take the dtype of ``X`` when it
    is float32 or float64.

    Parameters
    ----------
    alphas : sequence of float, default=(0.1, 1, 10, 100, 1000, 1e4, 1e5)
        Strictly positive candidate penalties.
    alpha_per_target : bool, default=True
        Choose the penalty separately for each target (latent dimension).
    fit_intercept : bool, default=True
        Fit an intercept (centres X and y).
    n_components : int or None, default=None
        When set, X is first reduced to this many principal components (fitted on the training
        data); ``coef_`` is folded back into the original feature space.

    Attributes
    ----------
    coef_ : ndarray of shape (n_targets, n_features) or (n_features,) for 1-D y
    intercept_ : ndarray of shape (n_targets,) or float for 1-D y
    alpha_ : ndarray of shape (n_targets,) or float
        Selected penalty per target when ``alpha_per_target`` and y is 2-D, else a float.
    best_score_ : ndarray of shape (n_targets,) or float
        Negative mean squared LOO error at the selected penalty.
    n_features_in_ : int
    pca_components_ : ndarray of shape (n_components, n_features)
        Only when ``n_components`` is set.
    pca_mean_ : ndarray of shape (n_features,)
        Only when ``n_components`` is set.
    """

    def __init__(
        self,
        alphas: tuple[float, ...] | list[float] | np.ndarray = _DEFAULT_ALPHAS,
        alpha_per_target: bool = True,
        fit_intercept: bool = True,
        n_components: int | None = None,
    ) -> None:
        self.alphas = alphas
        self.alpha_per_target = alpha_per_target
        self.fit_intercept = fit_intercept
        self.n_components = n_components

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags

    def _check_n_components(self, n_samples: int, n_features: int) -> int | None:
        k = self.n_components
        if k is None:
            return None
        limit = min(n_samples, n_features)
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k <= limit:
            raise ValueError(
                f"n_components must be an integer in [1, min(n_samples, n_features)={limit}], "
                f"got {k!r}"
            )
        return int(k)

    def fit(self, X: np.ndarray, y: np.ndarray) -> RidgeDecoder:
        """Fit the decoder.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Responses (trials × voxels).
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Targets (latents).

        Returns
        -------
        self : RidgeDecoder
        """
        alphas = _check_alphas(self.alphas)
        y_arr = None if y is None else np.asarray(y)
        if y_arr is not None and y_arr.dtype.kind in "fc":  # one-line message, before sklearn's
            _check_finite(y_arr, "y")
        X, y = validate_data(
            self,
            X,
            y,
            dtype=[np.float64, np.float32],
            multi_output=True,
            y_numeric=True,
            ensure_all_finite=False,
        )
        _check_finite(X, "X")
        n, p = X.shape
        if n < 2:
            raise ValueError(
                f"RidgeDecoder needs at least 2 samples for leave-one-out, got n_samples={n}"
            )
        k = self._check_n_components(n, p)
        out_dtype = X.dtype
        y2 = y.reshape(n, -1)
        x64 = np.array(X, dtype=np.float64)  # always a private copy: centred in place
        if k is not None:
            comps, mean = _pca(x64, k)
            x64 = (x64 - mean) @ comps.T
        coef, intercept, alpha, score = loo_ridge(
            x64, y2, alphas, bool(self.alpha_per_target), bool(self.fit_intercept), copy=False
        )
        if k is not None:
            coef = coef @ comps
            intercept = intercept - coef @ mean
            self.pca_components_ = comps.astype(out_dtype)
            self.pca_mean_ = mean.astype(out_dtype)
        if y.ndim == 1:
            self.coef_ = coef[0].astype(out_dtype)
            self.intercept_ = float(intercept[0])
            self.alpha_ = float(alpha[0])
            self.best_score_ = float(np.ravel(score)[0])
        else:
            self.coef_ = coef.astype(out_dtype)
            self.intercept_ = intercept.astype(out_dtype)
            self.alpha_ = alpha if self.alpha_per_target else float(alpha[0])
            self.best_score_ = score if self.alpha_per_target else float(score)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predict targets (latents) from responses.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_targets) or (n_samples,)
        """
        check_is_fitted(self)
        X = validate_data(
            self, X, reset=False, dtype=[np.float64, np.float32], ensure_all_finite=False
        )
        _check_finite(X, "X")
        return X @ self.coef_.T + self.intercept_
