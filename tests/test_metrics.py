"""Metrics, checked against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.metrics as skm

from bci.metrics import (
    identification_accuracy,
    latent_correlation,
    latent_similarity,
    luminance,
    permutation_test,
    pixel_correlation,
    ssim,
)


def _gray(values: np.ndarray) -> np.ndarray:
    """(n, H, W) grey levels → (n, H, W, 3) uint8 with R = G = B (luminance = value)."""
    return np.repeat(np.asarray(values, dtype=np.uint8)[..., None], 3, axis=-1)


def test_latent_similarity_by_hand():
    z_hat = np.array([[3.0, 4.0], [0.0, 0.0]])
    z = np.zeros((2, 2))
    np.testing.assert_allclose(latent_similarity(z_hat, z, reduce=False), [1 / 6, 1.0])
    assert latent_similarity(z_hat, z) == pytest.approx(7 / 12)


def test_latent_correlation_by_hand():
    z_hat = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [1.0, 0.0, 1.0]])
    z = np.array([[2.0, 4.0, 6.0], [3.0, 2.0, 1.0], [0.0, 1.0, 2.0]])
    np.testing.assert_allclose(latent_correlation(z_hat, z, reduce=False), [1.0, -1.0, 0.0])
    assert latent_correlation(z_hat, z) == pytest.approx(0.0)


def test_latent_shape_errors():
    with pytest.raises(ValueError, match=r"^z_hat and z shapes differ: \(2, 3\) vs \(2, 4\)$"):
        latent_similarity(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"^z_hat must be 2-D \(n_trials, n_features\)"):
        latent_correlation(np.zeros(3), np.zeros(3))


def test_luminance_weights():
    np.testing.assert_allclose(luminance(np.array([255, 0, 0])), 0.299 * 255)
    np.testing.assert_allclose(luminance(np.array([10, 20, 30])), 2.99 + 11.74 + 3.42)


def test_pixel_correlation_by_hand():
    base = np.array([[[0, 10], [20, 30]]])
    a = np.concatenate([_gray(base), _gray(base)])
    b = np.concatenate([_gray(2 * base + 5), _gray(30 - base)])
    np.testing.assert_allclose(pixel_correlation(a, b, reduce=False), [1.0, -1.0])
    # colour: a red ramp against a green ramp is still perfectly correlated in luminance
    red = np.zeros((1, 1, 3, 3), dtype=np.uint8)
    red[0, 0, :, 0] = [0, 100, 200]
    green = np.zeros_like(red)
    green[0, 0, :, 1] = [7, 8, 9]
    assert pixel_correlation(red, green) == pytest.approx(1.0)


def test_image_errors():
    img = np.zeros((1, 12, 12, 3), dtype=np.uint8)
    with pytest.raises(TypeError, match=r"^images_hat must be uint8, got float64$"):
        pixel_correlation(img.astype(float), img)
    with pytest.raises(
        ValueError, match=r"^images must have shape \(n, H, W, 3\), got \(12, 12, 3\)$"
    ):
        ssim(img, img[0])
    with pytest.raises(
        ValueError, match=r"^ssim needs images of at least 11x11 pixels, got \(5, 5\)$"
    ):
        ssim(img[:, :5, :5], img[:, :5, :5])


def test_ssim_by_hand():
    # constant images: means 100 and 50, no variance → S = (2 μx μy + C1) / (μx² + μy² + C1)
    a = _gray(np.full((1, 16, 16), 100))
    b = _gray(np.full((1, 16, 16), 50))
    c1 = (0.01 * 255) ** 2
    assert ssim(a, b) == pytest.approx((2 * 100 * 50 + c1) / (100**2 + 50**2 + c1), rel=1e-12)
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(2, 20, 17, 3), dtype=np.uint8)
    np.testing.assert_allclose(ssim(img, img, reduce=False), [1.0, 1.0])


def test_ssim_matches_skimage():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, size=(3, 32, 24, 3), dtype=np.uint8)
    noise = rng.integers(-60, 60, size=a.shape)
    b = np.clip(a.astype(int) + noise, 0, 255).astype(np.uint8)
    ref = [
        skm.structural_similarity(
            luminance(a[i]),
            luminance(b[i]),
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=255,
        )
        for i in range(3)
    ]
    np.testing.assert_allclose(ssim(a, b, reduce=False), ref, rtol=1e-10)


def test_identification_two_way_by_hand():
    true = np.array([[0.0], [10.0], [20.0]])
    pred = np.array([[0.0], [5.0], [12.0]])
    # trial 0 beats both; trial 1 ties trial 0 (0.5) and beats trial 2; trial 2 loses to trial 1
    assert identification_accuracy(pred, true, metric="euclidean") == pytest.approx(4.5 / 6)
    # 3-way with 3 trials: every distractor set is "all others"
    acc3 = identification_accuracy(pred, true, n_way=3, metric="euclidean", random_state=0)
    assert acc3 == pytest.approx((1.0 + 0.5 + 0.0) / 3)


def test_identification_correlation():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((20, 16))
    assert identification_accuracy(z, z) == 1.0
    assert identification_accuracy(-z, z) == 0.0
    images = rng.integers(0, 256, size=(6, 4, 4, 3), dtype=np.uint8)
    assert identification_accuracy(images, images, n_way=4, random_state=0) == 1.0
    chance = identification_accuracy(rng.standard_normal((200, 16)), rng.standard_normal((200, 16)))
    assert 0.45 < chance < 0.55


def test_identification_errors():
    z = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"^n_way must be an integer in \[2, n_trials=3\], got 4$"):
        identification_accuracy(z, z, n_way=4)
    with pytest.raises(
        ValueError, match=r"^metric must be 'correlation' or 'euclidean', got 'l1'$"
    ):
        identification_accuracy(z, z, metric="l1")


def test_permutation_test_by_hand():
    z = np.random.default_rng(0).standard_normal((5, 8))

    def exact(a, b):
        return float(np.array_equal(a, b))

    # observed 1, every random draw 0 → p = (0 + 1) / (9 + 1)
    stat, p = permutation_test(z, z, n_permutations=9, metric=exact, random_state=1)
    assert (stat, p) == (1.0, pytest.approx(0.1))
    # a metric that is always 1 → every null value ties the statistic → p = 1
    _, p = permutation_test(z, z, n_permutations=9, metric=lambda a, b: 1.0)
    assert p == 1.0


def test_permutation_test_default_metric():
    rng = np.random.default_rng(2)
    z = rng.standard_normal((10, 32))
    z_hat = z + 0.1 * rng.standard_normal(z.shape)
    stat, p = permutation_test(z_hat, z, n_permutations=50, random_state=0)
    assert stat == pytest.approx(latent_similarity(z_hat, z))
    assert p == pytest.approx(1 / 51)
    assert permutation_test(z_hat, z, 50, random_state=3) == permutation_test(
        z_hat, z, 50, random_state=3
    )
    with pytest.raises(ValueError, match=r"^n_permutations must be a positive integer, got 0$"):
        permutation_test(z_hat, z, n_permutations=0)
