"""Evaluation metrics for decoded latents and reconstructed images (HYPER, Dado et al. 2022).

Latent metrics take ``(n, latent_dim)`` arrays; image metrics take ``(n, H, W, 3)`` uint8 arrays and
compare luminance (``0.299 R + 0.587 G + 0.114 B``). Functions with ``reduce`` return the mean over
trials by default and the per-trial values with ``reduce=False``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.ndimage import gaussian_filter

__all__ = [
    "identification_accuracy",
    "latent_correlation",
    "latent_similarity",
    "luminance",
    "permutation_test",
    "pixel_correlation",
    "ssim",
]

_LUMA = np.array([0.299, 0.587, 0.114])


def _pair_2d(a: np.ndarray, b: np.ndarray, names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"{names[0]} must be 2-D (n_trials, n_features), got shape {a.shape}")
    if a.shape != b.shape:
        raise ValueError(f"{names[0]} and {names[1]} shapes differ: {a.shape} vs {b.shape}")
    return a, b


def _images_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    for name, img in (("images_hat", a), ("images", b)):
        if img.dtype != np.uint8:
            raise TypeError(f"{name} must be uint8, got {img.dtype}")
        if img.ndim != 4 or img.shape[-1] != 3:
            raise ValueError(f"{name} must have shape (n, H, W, 3), got {img.shape}")
    if a.shape != b.shape:
        raise ValueError(f"images_hat and images shapes differ: {a.shape} vs {b.shape}")
    return a, b


def _rowwise_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r of each row pair; NaN where a row is constant."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    denom = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a * b).sum(axis=1) / denom


def _reduce(values: np.ndarray, reduce: bool) -> float | np.ndarray:
    return float(values.mean()) if reduce else values


def luminance(images: np.ndarray) -> np.ndarray:
    """Luminance ``0.299 R + 0.587 G + 0.114 B`` of ``(..., 3)`` images, float64 in [0, 255].

    Parameters
    ----------
    images : ndarray of shape (..., 3)

    Returns
    -------
    ndarray of shape (...)
    """
    return np.asarray(images, dtype=np.float64) @ _LUMA


def latent_similarity(z_hat: np.ndarray, z: np.ndarray, reduce: bool = True) -> float | np.ndarray:
    """HYPER's latent similarity ``1 / (1 + ||ẑ − z||₂)`` per trial.

    Parameters
    ----------
    z_hat, z : ndarray of shape (n_trials, latent_dim)
        Predicted and true latents.
    reduce : bool, default=True
        Return the mean over trials, else the per-trial values.

    Returns
    -------
    float or ndarray of shape (n_trials,)
        In (0, 1]; 1 for identical latents.
    """
    z_hat, z = _pair_2d(z_hat, z, ("z_hat", "z"))
    return _reduce(1.0 / (1.0 + np.linalg.norm(z_hat - z, axis=1)), reduce)


def latent_correlation(z_hat: np.ndarray, z: np.ndarray, reduce: bool = True) -> float | np.ndarray:
    """Pearson correlation between predicted and true latent of each trial.

    Parameters
    ----------
    z_hat, z : ndarray of shape (n_trials, latent_dim)
    reduce : bool, default=True
        Return the mean over trials, else the per-trial values.

    Returns
    -------
    float or ndarray of shape (n_trials,)
        NaN for a trial whose latent is constant.
    """
    z_hat, z = _pair_2d(z_hat, z, ("z_hat", "z"))
    return _reduce(_rowwise_pearson(z_hat, z), reduce)


def pixel_correlation(
    images_hat: np.ndarray, images: np.ndarray, reduce: bool = True
) -> float | np.ndarray:
    """Pearson correlation of the luminance of each reconstruction/stimulus pair.

    Parameters
    ----------
    images_hat, images : ndarray of shape (n, H, W, 3), uint8
    reduce : bool, default=True
        Return the mean over pairs, else the per-pair values.

    Returns
    -------
    float or ndarray of shape (n,)
        NaN for a pair with a uniform image.
    """
    a, b = _images_pair(images_hat, images)
    n = a.shape[0]
    r = _rowwise_pearson(luminance(a).reshape(n, -1), luminance(b).reshape(n, -1))
    return _reduce(r, reduce)


def ssim(images_hat: np.ndarray, images: np.ndarray, reduce: bool = True) -> float | np.ndarray:
    """Structural similarity of the luminance of each pair (Wang et al. 2004).

    Same definition as ``skimage.metrics.structural_similarity(gaussian_weights=True,
    use_sample_covariance=False, data_range=255)``: gaussian window sigma 1.5 truncated at 3.5
    sigma (11 × 11), reflect padding, K1 = 0.01, K2 = 0.03, mean over the map without its
    5-pixel border.

    Parameters
    ----------
    images_hat, images : ndarray of shape (n, H, W, 3), uint8
        H and W must be at least 11.
    reduce : bool, default=True
        Return the mean over pairs, else the per-pair values.

    Returns
    -------
    float or ndarray of shape (n,)
    """
    a, b = _images_pair(images_hat, images)
    sigma, truncate = 1.5, 3.5
    pad = int(truncate * sigma + 0.5)
    if min(a.shape[1:3]) < 2 * pad + 1:
        raise ValueError(f"ssim needs images of at least 11x11 pixels, got {a.shape[1:3]}")
    x, y = luminance(a), luminance(b)

    def blur(img: np.ndarray) -> np.ndarray:
        return gaussian_filter(img, sigma=(0, sigma, sigma), mode="reflect", truncate=truncate)

    ux, uy = blur(x), blur(y)
    vx = blur(x * x) - ux * ux
    vy = blur(y * y) - uy * uy
    vxy = blur(x * y) - ux * uy
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    per_pair = s[:, pad:-pad, pad:-pad].mean(axis=(1, 2))
    return _reduce(per_pair, reduce)


def _similarity_matrix(pred: np.ndarray, true: np.ndarray, metric: str) -> np.ndarray:
    """``S[i, j]``: similarity of prediction i to target j (higher is closer)."""
    if metric == "correlation":
        a = pred - pred.mean(axis=1, keepdims=True)
        b = true - true.mean(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            a /= np.linalg.norm(a, axis=1, keepdims=True)
            b /= np.linalg.norm(b, axis=1, keepdims=True)
        return a @ b.T
    if metric == "euclidean":
        sq = (pred**2).sum(1)[:, None] + (true**2).sum(1)[None, :] - 2 * pred @ true.T
        return -np.sqrt(np.maximum(sq, 0.0))
    raise ValueError(f"metric must be 'correlation' or 'euclidean', got {metric!r}")


def identification_accuracy(
    pred: np.ndarray,
    true: np.ndarray,
    n_way: int = 2,
    metric: str = "correlation",
    random_state: int | np.random.Generator | None = None,
    *,
    n_repeats: int = 100,
) -> float:
    """n-way identification: is each prediction closer to its own target than to n_way − 1 others?

    Parameters
    ----------
    pred, true : ndarray of shape (n_trials, ...)
        Predictions and targets (latents, or images flattened per trial).
    n_way : int, default=2
        Candidates per decision (own target plus ``n_way - 1`` distractors). ``n_way=2`` is
        exhaustive over all ordered pairs (i, j ≠ i); larger values draw distractors at random.
    metric : {"correlation", "euclidean"}, default="correlation"
        Pearson correlation (higher is closer) or euclidean distance (lower is closer).
    random_state : int, numpy Generator or None
        Seeds the distractor draws (``n_way > 2`` only).
    n_repeats : int, default=100
        Random distractor sets per trial (``n_way > 2`` only); the result is their mean.

    Returns
    -------
    float
        Fraction of correct decisions; a tie with k distractors counts 1 / (k + 1). Chance is
        ``1 / n_way``. A constant trial under ``metric="correlation"`` gives NaN similarities,
        which count as neither closer nor tied.
    """
    pred = np.asarray(pred, dtype=np.float64)
    true = np.asarray(true, dtype=np.float64)
    if pred.shape != true.shape:
        raise ValueError(f"pred and true shapes differ: {pred.shape} vs {true.shape}")
    n = pred.shape[0] if pred.ndim else 0
    if isinstance(n_way, bool) or not isinstance(n_way, (int, np.integer)) or not 2 <= n_way <= n:
        raise ValueError(f"n_way must be an integer in [2, n_trials={n}], got {n_way!r}")
    sim = _similarity_matrix(pred.reshape(n, -1), true.reshape(n, -1), metric)
    own = np.diag(sim)
    if n_way == 2:
        off = ~np.eye(n, dtype=bool)
        wins = (own[:, None] > sim) + 0.5 * (own[:, None] == sim)
        return float(wins[off].mean())
    rng = np.random.default_rng(random_state)
    rows = np.arange(n)[:, None]
    others = np.array([np.delete(np.arange(n), i) for i in range(n)])  # (n, n - 1)
    scores = np.empty((n_repeats, n))
    for r in range(n_repeats):
        # the n_way - 1 smallest of n - 1 random keys: distinct distractors, uniformly drawn
        picks = np.argpartition(rng.random((n, n - 1)), n_way - 2, axis=1)[:, : n_way - 1]
        dsim = sim[rows, others[rows, picks]]
        beaten = (dsim > own[:, None]).any(axis=1)
        ties = (dsim == own[:, None]).sum(axis=1)
        scores[r] = np.where(beaten, 0.0, 1.0 / (1 + ties))
    return float(scores.mean())


def permutation_test(
    z_hat: np.ndarray,
    z: np.ndarray,
    n_permutations: int = 1000,
    metric: Callable[[np.ndarray, np.ndarray], float] = latent_similarity,
    random_state: int | np.random.Generator | None = None,
) -> tuple[float, float]:
    """HYPER's randomisation test of decoded latents against random latents.

    The statistic is ``metric(z_hat, z)``; the null distribution is ``metric(r, z)`` for latents
    ``r`` drawn from N(0, I) with the shape of ``z_hat``. Higher metric values are better.

    Parameters
    ----------
    z_hat, z : ndarray of shape (n_trials, latent_dim)
    n_permutations : int, default=1000
        Random latent sets drawn.
    metric : callable, default=latent_similarity
        ``metric(pred, true) -> float``, higher is better.
    random_state : int, numpy Generator or None

    Returns
    -------
    statistic : float
    p_value : float
        ``(#{null >= statistic} + 1) / (n_permutations + 1)``.
    """
    z_hat, z = _pair_2d(z_hat, z, ("z_hat", "z"))
    if isinstance(n_permutations, bool) or not isinstance(n_permutations, (int, np.integer)):
        raise ValueError(f"n_permutations must be a positive integer, got {n_permutations!r}")
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be a positive integer, got {n_permutations!r}")
    rng = np.random.default_rng(random_state)
    statistic = float(metric(z_hat, z))
    null = np.array([float(metric(rng.standard_normal(z.shape), z)) for _ in range(n_permutations)])
    count = int(np.count_nonzero(null >= statistic))
    return statistic, (count + 1) / (n_permutations + 1)
