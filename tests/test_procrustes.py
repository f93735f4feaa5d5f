"""Tests for bci.align.Procrustes (PyMVPA ProcrusteanMapper semantics, dual and full solvers)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from scipy.linalg import orthogonal_procrustes
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from threadpoolctl import threadpool_limits

from bci.align import Procrustes, load_aligner, save_aligner


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """Tiny problems: threaded BLAS only adds contention on a shared machine."""
    with threadpool_limits(limits=1):
        yield


def _orthogonal(rng: np.random.Generator, p: int, det: float | None = None) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((p, p)))
    q = q * np.sign(np.diag(r))
    if det is not None and np.sign(np.linalg.det(q)) != det:
        q[:, 0] = -q[:, 0]
    return q


def _exact(msg: str) -> str:
    return "^" + re.escape(msg) + "$"


def test_recovers_known_rotation_and_scale_noiseless() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 10)) + 4.0
    rot = _orthogonal(rng, 10, det=-1.0)  # a reflection: allowed by default
    y = 2.5 * x @ rot + np.arange(10.0)
    pro = Procrustes().fit(x, y)
    assert pro.svd_ == "full"
    np.testing.assert_allclose(pro.scale_, 2.5, rtol=1e-12)
    np.testing.assert_allclose(pro.projection_, 2.5 * rot, atol=1e-10)
    np.testing.assert_allclose(pro.transform(x), y, atol=1e-10)
    new = rng.standard_normal((5, 10))
    np.testing.assert_allclose(pro.transform(new), 2.5 * new @ rot + np.arange(10.0), atol=1e-10)


def test_without_scaling_the_projection_is_orthogonal() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((40, 6))
    rot = _orthogonal(rng, 6)
    y = 3.0 * x @ rot
    pro = Procrustes(scaling=False).fit(x, y)
    np.testing.assert_allclose(pro.projection_, rot, atol=1e-10)
    np.testing.assert_allclose(pro.scale_, 3.0, rtol=1e-12)  # estimated but not applied
    np.testing.assert_allclose(pro.transform(x), (x - x.mean(0)) @ rot + y.mean(0), atol=1e-10)


@pytest.mark.parametrize("svd", ["full", "dual"])
@pytest.mark.parametrize("demean", [False, True])
def test_full_rank_case_matches_scipy_orthogonal_procrustes(svd: str, demean: bool) -> None:
    rng = np.random.default_rng(12)
    x = rng.standard_normal((60, 7)) + 2.0
    y = x @ _orthogonal(rng, 7) + 0.8 * rng.standard_normal((60, 7)) - 1.0  # noisy: no exact fit
    xc, yc = (x - x.mean(0), y - y.mean(0)) if demean else (x, y)
    rot, sv_sum = orthogonal_procrustes(xc, yc)
    pro = Procrustes(scaling=False, demean=demean, svd=svd).fit(x, y)
    np.testing.assert_allclose(pro.projection_, rot, atol=1e-12)
    # scipy's scale is the singular-value sum of X^T Y; the least-squares scale divides by |X|^2
    np.testing.assert_allclose(pro.scale_, sv_sum / np.linalg.norm(xc) ** 2, rtol=1e-12)
    scaled = Procrustes(demean=demean, svd=svd).fit(x, y)
    np.testing.assert_allclose(scaled.projection_, pro.scale_ * rot, atol=1e-12)
    offset = y.mean(0) - x.mean(0) @ rot if demean else 0.0
    np.testing.assert_allclose(pro.transform(x), x @ rot + offset, atol=1e-12)


def test_reflection_false_gives_a_proper_rotation() -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((60, 5))
    refl = _orthogonal(rng, 5, det=-1.0)
    y = x @ refl + 0.01 * rng.standard_normal((60, 5))
    free = Procrustes(scaling=False).fit(x, y)
    assert np.linalg.det(free.projection_) == pytest.approx(-1.0, abs=1e-8)
    for svd in ("full", "dual"):
        rigid = Procrustes(scaling=False, reflection=False, svd=svd).fit(x, y)
        t = rigid.projection_
        np.testing.assert_allclose(t @ t.T, np.eye(5), atol=1e-10)
        assert np.linalg.det(t) == pytest.approx(1.0, abs=1e-8)
        # it fits worse than the reflection, but better than the identity
        err = np.linalg.norm(rigid.transform(x) - y)
        assert np.linalg.norm(free.transform(x) - y) < err < np.linalg.norm(x - y)


@pytest.mark.parametrize("shape", [(30, 50, 70), (30, 70, 50), (30, 50, 50), (20, 15, 40)])
def test_dual_equals_full_on_training_data(shape: tuple[int, int, int]) -> None:
    n, p_s, p_t = shape
    rng = np.random.default_rng(3)
    x = rng.standard_normal((n, p_s)) + 1.0
    y = rng.standard_normal((n, p_t)) - 2.0
    dual = Procrustes(svd="dual").fit(x, y)
    full = Procrustes(svd="full").fit(x, y)
    assert Procrustes().fit(x, y).svd_ == "dual"  # "auto" picks dual when n < p
    assert dual.basis_in_.shape[1] <= n  # thin: no p x p factor
    np.testing.assert_allclose(dual.transform(x), full.transform(x), atol=1e-6, rtol=0)
    np.testing.assert_allclose(dual.scale_, full.scale_, rtol=1e-10)


def test_dual_maps_directions_outside_the_training_span_to_the_target_mean() -> None:
    rng = np.random.default_rng(4)
    x = rng.standard_normal((10, 40))
    y = rng.standard_normal((10, 30))
    pro = Procrustes(svd="dual").fit(x, y)
    # a direction orthogonal to every centred training sample
    xc = x - x.mean(0)
    basis = np.linalg.svd(xc, full_matrices=True)[2]
    unseen = basis[-1]
    np.testing.assert_allclose(pro.transform(pro.mean_in_ + unseen), pro.mean_out_, atol=1e-12)


def test_maps_into_a_larger_space_noiseless() -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((40, 6))
    embed = _orthogonal(rng, 9)[:6]  # (6, 9) orthonormal rows
    y = x @ embed + 1.0
    pro = Procrustes().fit(x, y)
    assert pro.projection_.shape == (6, 9)
    np.testing.assert_allclose(pro.transform(x), y, atol=1e-10)


def test_demean_false_fits_a_pure_rotation() -> None:
    rng = np.random.default_rng(6)
    x = rng.standard_normal((30, 4)) + 5.0
    rot = _orthogonal(rng, 4)
    pro = Procrustes(demean=False).fit(x, x @ rot)
    np.testing.assert_array_equal(pro.mean_in_, np.zeros(4))
    np.testing.assert_allclose(pro.projection_, rot, atol=1e-10)


def test_one_sample_and_dtype() -> None:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((20, 8))
    pro = Procrustes().fit(x, rng.standard_normal((20, 5)))
    chunk = pro.transform(x[:3])
    np.testing.assert_allclose(pro.transform(x[1]), chunk[1], atol=1e-12)
    out32 = pro.transform(x[:3].astype(np.float32))
    assert out32.dtype == np.float32 and chunk.dtype == np.float64
    np.testing.assert_allclose(out32, chunk, atol=1e-5)


def test_sklearn_params_and_clone() -> None:
    pro = Procrustes(scaling=False, svd="full")
    assert pro.get_params() == {"scaling": False, "reflection": True, "demean": True, "svd": "full"}
    assert clone(pro).set_params(svd="dual").svd == "dual"
    assert pro.fit(np.eye(3), np.eye(3)) is pro


def test_save_load_round_trip(tmp_path) -> None:
    rng = np.random.default_rng(8)
    x = rng.standard_normal((15, 25))
    pro = Procrustes(reflection=False).fit(x, rng.standard_normal((15, 20)))
    path = save_aligner(pro, tmp_path / "pro.npz")
    back = load_aligner(path)
    assert isinstance(back, Procrustes) and back.get_params() == pro.get_params()
    np.testing.assert_array_equal(back.transform(x), pro.transform(x))


def test_errors() -> None:
    rng = np.random.default_rng(9)
    x = rng.standard_normal((10, 4))
    with pytest.raises(
        ValueError,
        match=_exact("source and target must have the same number of samples; got 10 and 9"),
    ):
        Procrustes().fit(x, x[:9])
    bad = x.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match=_exact("target: data contain NaN or Inf values")):
        Procrustes().fit(x, bad)
    with pytest.raises(
        ValueError,
        match=_exact("source: expected a 2-D array (n_samples, n_features); got shape (2, 5, 4)"),
    ):
        Procrustes().fit(np.zeros((2, 5, 4)), x)
    with pytest.raises(
        ValueError, match=_exact("source: data have no variance; cannot fit a Procrustes transform")
    ):
        Procrustes().fit(np.ones((10, 4)), x)
    with pytest.raises(
        ValueError, match=_exact("svd must be one of ('auto', 'dual', 'full'); got 'thin'")
    ):
        Procrustes(svd="thin").fit(x, x)
    with pytest.raises(NotFittedError):
        Procrustes().transform(x)
    with pytest.raises(ValueError, match=_exact("source: expected 4 features, got 3")):
        Procrustes().fit(x, x).transform(x[:, :3])
