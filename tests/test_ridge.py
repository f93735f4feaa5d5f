"""RidgeDecoder: equality with RidgeCV, exact leave-one-out, PCA, errors, sklearn API."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.linear_model import Ridge, RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from bci.decode import RidgeDecoder
from bci.decode.ridge import loo_ridge

ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0, 1e4, 1e5)


def _data(n: int, p: int, t: int, seed: int = 0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, p)) * 2.0 + 0.5
    w = rng.standard_normal((p, t)) * rng.uniform(0.01, 1.0, size=t)
    y = x @ w + rng.standard_normal((n, t)) * rng.uniform(0.1, 5.0, size=t) + 3.0
    return x.astype(dtype), y.astype(dtype)


@pytest.mark.parametrize("shape", [(40, 120, 6), (90, 25, 5)], ids=["gram", "cov"])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("alpha_per_target", [True, False])
def test_matches_ridgecv(shape, fit_intercept, alpha_per_target):
    x, y = _data(*shape)
    kw = dict(alphas=ALPHAS, alpha_per_target=alpha_per_target, fit_intercept=fit_intercept)
    ref = RidgeCV(**kw).fit(x, y)
    ours = RidgeDecoder(**kw).fit(x, y)
    p_ref, p_ours = ref.predict(x), ours.predict(x)
    assert np.abs(p_ref - p_ours).max() <= 1e-5 * np.abs(p_ref).max()
    np.testing.assert_array_equal(np.asarray(ours.alpha_), np.asarray(ref.alpha_))
    np.testing.assert_allclose(ours.best_score_, ref.best_score_, rtol=1e-6)
    assert ours.coef_.shape == (shape[2], shape[1])
    assert ours.coef_.dtype == np.float32 and p_ours.dtype == np.float32
    if alpha_per_target:
        assert ours.alpha_.shape == (shape[2],)


def test_selected_alphas_vary_per_target():
    x, y = _data(60, 150, 8, seed=3)
    alphas = RidgeDecoder().fit(x, y).alpha_
    assert len(np.unique(alphas)) > 1


def test_loo_error_is_exact_leave_one_out():
    x, y = _data(12, 20, 2, seed=1, dtype=np.float64)
    alphas = np.array([0.5, 5.0, 50.0])
    _, _, _, score = loo_ridge(x, y, alphas[:1], alpha_per_target=True)
    errors = np.empty_like(y)
    for i in range(len(x)):
        keep = np.arange(len(x)) != i
        model = Ridge(alpha=alphas[0]).fit(x[keep], y[keep])
        errors[i] = y[i] - model.predict(x[i : i + 1])[0]
    np.testing.assert_allclose(score, -np.mean(errors**2, axis=0), rtol=1e-9)


def test_one_dimensional_target_and_float64():
    x, y = _data(30, 10, 1, dtype=np.float64)
    model = RidgeDecoder(alphas=ALPHAS).fit(x, y[:, 0])
    ref = RidgeCV(alphas=ALPHAS).fit(x, y[:, 0])
    assert model.coef_.shape == (10,) and isinstance(model.alpha_, float)
    assert isinstance(model.intercept_, float) and model.alpha_ == ref.alpha_
    pred = model.predict(x)
    assert pred.shape == (30,) and pred.dtype == np.float64
    np.testing.assert_allclose(pred, ref.predict(x), rtol=1e-10)


def test_pca_reduction_matches_pca_then_ridgecv():
    x, y = _data(50, 80, 4, dtype=np.float64)
    x_test = _data(7, 80, 4, seed=9, dtype=np.float64)[0]
    model = RidgeDecoder(n_components=10).fit(x, y)
    pca = PCA(n_components=10, svd_solver="full").fit(x)
    ref = RidgeCV(alphas=ALPHAS, alpha_per_target=True).fit(pca.transform(x), y)
    np.testing.assert_allclose(
        model.predict(x_test), ref.predict(pca.transform(x_test)), rtol=1e-8, atol=1e-10
    )
    assert model.pca_components_.shape == (10, 80) and model.pca_mean_.shape == (80,)
    assert model.coef_.shape == (4, 80)
    assert not hasattr(RidgeDecoder().fit(x, y), "pca_components_")


def test_n_components_out_of_range():
    x, y = _data(20, 30, 2)
    with pytest.raises(ValueError, match=r"^n_components must be an integer in \[1, min\("):
        RidgeDecoder(n_components=21).fit(x, y)
    with pytest.raises(ValueError, match=r"got 0$"):
        RidgeDecoder(n_components=0).fit(x, y)


def test_nan_errors():
    x, y = _data(20, 5, 2, dtype=np.float64)
    x_bad = x.copy()
    x_bad[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"^X contains NaN or inf; RidgeDecoder needs finite"):
        RidgeDecoder().fit(x_bad, y)
    y_bad = y.copy()
    y_bad[0, 0] = np.inf
    with pytest.raises(ValueError, match=r"^y contains NaN or inf; RidgeDecoder needs finite"):
        RidgeDecoder().fit(x, y_bad)
    model = RidgeDecoder().fit(x, y)
    with pytest.raises(ValueError, match=r"^X contains NaN or inf"):
        model.predict(x_bad)


def test_mismatched_samples():
    x, y = _data(20, 5, 2)
    with pytest.raises(
        ValueError,
        match=r"^Found input variables with inconsistent numbers of samples: \[20, 19\]$",
    ):
        RidgeDecoder().fit(x, y[:19])


@pytest.mark.parametrize(
    ("alphas", "message"),
    [
        ((1.0, 0.0), r"^alphas must be finite and strictly positive, got alphas\[1\]=0.0$"),
        ((-1.0,), r"^alphas must be finite and strictly positive, got alphas\[0\]=-1.0$"),
        (-2.0, r"^alphas must be finite and strictly positive, got alphas\[0\]=-2.0$"),
        ((), r"^alphas must be a non-empty 1-D sequence of numbers, got \(\)$"),
        (("a",), r"^alphas must be a sequence of positive numbers, got \('a',\)$"),
    ],
)
def test_bad_alphas(alphas, message):
    x, y = _data(20, 5, 2)
    with pytest.raises(ValueError, match=message):
        RidgeDecoder(alphas=alphas).fit(x, y)


def test_one_sample():
    with pytest.raises(ValueError, match=r"^RidgeDecoder needs at least 2 samples .*n_samples=1$"):
        RidgeDecoder().fit(np.ones((1, 3)), np.ones((1, 2)))


def test_pipeline_clone_params():
    x, y = _data(40, 30, 3)
    pipe = make_pipeline(StandardScaler(), RidgeDecoder(alphas=(1.0, 10.0)))
    pipe.set_params(ridgedecoder__alpha_per_target=False)
    assert pipe.fit(x, y).predict(x).shape == (40, 3)
    assert isinstance(pipe[-1].alpha_, float)
    model = RidgeDecoder(alphas=[1, 2], n_components=3)
    copy = clone(model)
    assert copy.get_params() == model.get_params()
    alphas = model.alphas
    model.fit(x, y)
    assert model.alphas is alphas and alphas == [1, 2]  # hyper-parameters are left unchanged
    assert model.set_params(fit_intercept=False) is model and not model.fit_intercept


@parametrize_with_checks([RidgeDecoder()])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
