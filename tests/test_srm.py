"""Tests for bci.align.SRM (deterministic shared response model, BrainIAK DetSRM semantics)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from threadpoolctl import threadpool_limits

from bci.align import SRM, Hyperalignment, load_aligner, save_aligner


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """Tiny problems: threaded BLAS only adds contention on a shared machine."""
    with threadpool_limits(limits=1):
        yield


def _exact(msg: str) -> str:
    return "^" + re.escape(msg) + "$"


def simulate(
    rng: np.random.Generator, n: int, k: int, voxels: list[int], noise: float
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Shared response S (n, k); subject i = S @ W_i.T + noise with W_i orthonormal columns."""
    s = rng.standard_normal((n, k))
    ws = [np.linalg.qr(rng.standard_normal((p, k)))[0] for p in voxels]
    return s, [s @ w.T + noise * rng.standard_normal((n, w.shape[0])) for w in ws]


def canonical_corrs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Canonical correlations between the column spaces of a and b (rotation invariant)."""
    qa = np.linalg.qr(a - a.mean(0))[0]
    qb = np.linalg.qr(b - b.mean(0))[0]
    return np.linalg.svd(qa.T @ qb, compute_uv=False)


@pytest.fixture(scope="module")
def data() -> dict:
    rng = np.random.default_rng(0)
    s, xs = simulate(rng, 160, 6, [30, 40, 50], 0.05)
    return {"s": s, "train": [x[:120] for x in xs], "test": [x[120:] for x in xs], "k": 6}


def test_recovers_the_shared_response(data: dict) -> None:
    srm = SRM(n_features=data["k"], n_iter=10, random_state=0, verbose=False).fit(data["train"])
    assert srm.s_.shape == (120, data["k"])
    corrs = canonical_corrs(srm.s_, data["s"][:120])
    assert corrs.min() > 0.99
    # held-out samples of each subject land on the same shared response
    shared = [srm.transform_one(x, i) for i, x in enumerate(data["test"])]
    corrs = canonical_corrs(np.mean(shared, axis=0), data["s"][120:])
    assert corrs.min() > 0.99
    for a in shared[1:]:
        r = [np.corrcoef(a[:, j], shared[0][:, j])[0, 1] for j in range(data["k"])]
        assert min(r) > 0.98


def test_maps_are_orthonormal_and_objective_decreases(data: dict) -> None:
    srm = SRM(n_features=data["k"], n_iter=5, random_state=1, compute_objective=True)
    srm.fit(data["train"])
    for w, p in zip(srm.w_, [30, 40, 50], strict=True):
        assert w.shape == (p, data["k"])
        np.testing.assert_allclose(w.T @ w, np.eye(data["k"]), atol=1e-10)
    assert srm.objective_.shape == (6,)
    assert np.all(np.diff(srm.objective_) <= 1e-9 * srm.objective_[0])
    assert srm.projections_ is srm.w_
    quiet = SRM(n_features=data["k"], n_iter=5, random_state=1).fit(data["train"])
    assert quiet.objective_ is None  # not computed unless asked; the model is the same
    np.testing.assert_array_equal(quiet.s_, srm.s_)


def test_transform_one_matches_transform_and_is_deterministic(data: dict) -> None:
    srm = SRM(n_features=4, n_iter=3, random_state=7, verbose=False).fit(data["train"])
    full = srm.transform(data["test"])
    for i, x in enumerate(data["test"]):
        np.testing.assert_allclose(srm.transform_one(x, i), full[i], atol=1e-12)
        np.testing.assert_allclose(srm.transform_one(x[3], i), full[i][3], atol=1e-12)
        np.testing.assert_allclose(full[i], x @ srm.w_[i], atol=1e-12)
    again = SRM(n_features=4, n_iter=3, random_state=7, verbose=False).fit(data["train"])
    np.testing.assert_array_equal(again.s_, srm.s_)


def test_save_load_round_trip(data: dict, tmp_path) -> None:
    srm = SRM(n_features=5, n_iter=2, random_state=3, verbose=False).fit(data["train"])
    back = load_aligner(save_aligner(srm, tmp_path / "srm.npz"), expected=SRM)
    assert back.get_params() == srm.get_params()
    for a, b in zip(back.transform(data["test"]), srm.transform(data["test"]), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(
        ValueError,
        match=_exact(f"{tmp_path / 'srm.npz'}: contains a SRM, expected a Hyperalignment"),
    ):
        load_aligner(tmp_path / "srm.npz", expected=Hyperalignment)


def test_errors(data: dict) -> None:
    train = data["train"]
    with pytest.raises(ValueError, match=_exact("SRM needs at least 2 subjects; got 1")):
        SRM(verbose=False).fit(train[:1])
    with pytest.raises(
        ValueError, match=_exact("SRM: n_features=200 exceeds the number of samples (120)")
    ):
        SRM(n_features=200, verbose=False).fit(train)
    with pytest.raises(
        ValueError,
        match=_exact("SRM: n_features=35 exceeds the smallest voxel count (30, subject 0)"),
    ):
        SRM(n_features=35, verbose=False).fit(train)
    bad = [x.copy() for x in train]
    bad[1][0, 0] = np.nan
    with pytest.raises(ValueError, match=_exact("subject 1: data contain NaN or Inf values")):
        SRM(n_features=3, verbose=False).fit(bad)
    with pytest.raises(
        ValueError,
        match=_exact("all subjects must have the same number of samples; got [120, 120, 100]"),
    ):
        SRM(n_features=3, verbose=False).fit([train[0], train[1], train[2][:100]])
    with pytest.raises(NotFittedError):
        SRM().transform_one(train[0][0], 0)
    srm = SRM(n_features=3, n_iter=1, random_state=0, verbose=False).fit(train)
    with pytest.raises(ValueError, match=_exact("subject 2: expected 50 voxels, got 40")):
        srm.transform_one(train[1][0], 2)
    with pytest.raises(
        IndexError, match=_exact("subject index 5 is out of range for 3 fitted subjects")
    ):
        srm.transform_one(train[0], 5)
