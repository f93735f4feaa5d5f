"""Tests for bci.align.Hyperalignment and the aligner persistence (save/load)."""

from __future__ import annotations

import logging
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
    rng: np.random.Generator, n: int, k: int, voxels: list[int], noise: float, gain: float = 1.0
) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Shared latent response S (n, k); subject i = S @ Q_i * gain + noise, Q_i orthonormal rows."""
    s = rng.standard_normal((n, k))
    qs = [np.linalg.qr(rng.standard_normal((p, k)))[0].T for p in voxels]
    xs = [gain * s @ q + noise * rng.standard_normal((n, q.shape[1])) for q in qs]
    return s, qs, xs


def pattern_isc(ys: list[np.ndarray]) -> float:
    """Mean over subject pairs and samples of the correlation between response patterns."""
    vals = []
    for a in range(len(ys)):
        for b in range(a + 1, len(ys)):
            ya = ys[a] - ys[a].mean(1, keepdims=True)
            yb = ys[b] - ys[b].mean(1, keepdims=True)
            r = (ya * yb).sum(1) / np.sqrt((ya**2).sum(1) * (yb**2).sum(1))
            vals.append(r.mean())
    return float(np.mean(vals))


@pytest.fixture(scope="module")
def sim() -> dict:
    rng = np.random.default_rng(1)
    k, voxels, n_train, n_test, noise = 8, [40, 48, 56], 150, 50, 0.15
    s, qs, xs = simulate(rng, n_train + n_test, k, voxels, noise)
    ref = int(np.argmax(voxels))
    signal = s[n_train:] @ qs[ref]
    # noise ceiling: the same signal in one voxel space, seen through independent noise
    ceiling = pattern_isc([signal + noise * rng.standard_normal(signal.shape) for _ in range(3)])
    return {
        "train": [x[:n_train] for x in xs],
        "test": [x[n_train:] for x in xs],
        "ceiling": ceiling,
        "k": k,
        "s": s,
        "n_train": n_train,
    }


def test_heldout_isc_reaches_the_noise_ceiling(sim: dict) -> None:
    ha = Hyperalignment(verbose=False).fit(sim["train"])
    aligned = [ha.transform_one(x, i) for i, x in enumerate(sim["test"])]
    p_min = min(x.shape[1] for x in sim["test"])
    unaligned = pattern_isc([x[:, :p_min] for x in sim["test"]])
    isc = pattern_isc(aligned)
    assert sim["ceiling"] > 0.8
    assert isc > 0.95 * sim["ceiling"]
    assert abs(unaligned) < 0.1
    assert ha.ref_ds_ == 2 and ha.template_.shape == (sim["n_train"], 56)
    assert [p.shape for p in ha.projections_] == [(40, 56), (48, 56), (56, 56)]


def test_noiseless_rotated_copies_align_exactly() -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((60, 12))
    rot = np.linalg.qr(rng.standard_normal((12, 12)))[0]
    ha = Hyperalignment(verbose=False).fit([x, 3.0 * x @ rot + 1.0])
    y0, y1 = ha.transform([x, 3.0 * x @ rot + 1.0])
    np.testing.assert_allclose(y0, y1, atol=1e-9)


def test_dual_equals_full_when_fewer_samples_than_voxels() -> None:
    rng = np.random.default_rng(3)
    _, _, xs = simulate(rng, 30, 5, [40, 50, 60], 0.5)
    dual = Hyperalignment(svd="dual", verbose=False).fit(xs)
    full = Hyperalignment(svd="full", verbose=False).fit(xs)
    for a, b in zip(dual.transform(xs), full.transform(xs), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=0)
    np.testing.assert_allclose(dual.template_, full.template_, atol=1e-6, rtol=0)
    np.testing.assert_allclose(dual.scales_, full.scales_, rtol=1e-8)


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"zscore_all": True},
        {"alpha": 0.5, "zscore_all": True, "output_dim": 6},
        {"alpha": 0.0, "level2_niter": 2, "ref_ds": 0, "combiner1": 0.3},
        {"zscore_common": False, "scaling": False, "reflection": False, "level2_niter": 0},
    ],
)
def test_transform_one_matches_transform(sim: dict, params: dict) -> None:
    ha = Hyperalignment(verbose=False, **params).fit(sim["train"])
    full = ha.transform(sim["test"])
    for i, x in enumerate(sim["test"]):
        np.testing.assert_allclose(ha.transform_one(x, i), full[i], atol=1e-12)
        np.testing.assert_allclose(ha.transform_one(x[7], i), full[i][7], atol=1e-12)
    assert ha.training_residuals_.shape == (1 + ha.level2_niter, 3)
    if ha.alpha > 0:  # pure CCA (alpha=0) whitens the noise up to the level of the signal
        assert pattern_isc(full) > 0.7


def test_zscore_statistics_are_learned_at_fit_and_applied_to_new_data(sim: dict) -> None:
    ha = Hyperalignment(zscore_all=True, verbose=False).fit(sim["train"])
    for i, x in enumerate(sim["train"]):
        np.testing.assert_allclose(ha.means_[i], x.mean(0))
        np.testing.assert_allclose(ha.stds_[i], x.std(0))
    x = sim["test"][1]
    expected = (x - ha.means_[1]) / ha.stds_[1] @ ha.projections_[1] + ha.offsets_[1]
    np.testing.assert_allclose(ha.transform_one(x, 1), expected, atol=1e-12)
    # a single sample is not re-standardised on its own statistics
    np.testing.assert_allclose(ha.transform_one(x[0], 1), expected[0], atol=1e-12)
    assert Hyperalignment(verbose=False).fit(sim["train"]).means_ is None


def test_output_dim_keeps_the_top_directions_of_the_mean_mapped_data(sim: dict) -> None:
    ha = Hyperalignment(output_dim=sim["k"], verbose=False).fit(sim["train"])
    assert ha.template_.shape == (sim["n_train"], sim["k"])
    assert ha.components_.shape == (56, sim["k"])
    np.testing.assert_allclose(ha.components_.T @ ha.components_, np.eye(sim["k"]), atol=1e-10)
    aligned = ha.transform(sim["test"])
    assert aligned[0].shape == (50, sim["k"])
    assert pattern_isc(aligned) > 0.9  # the signal lives in k dimensions; noise is cut away


def test_float32_in_float32_out(sim: dict) -> None:
    ha = Hyperalignment(verbose=False).fit(sim["train"])
    x32 = sim["test"][0].astype(np.float32)
    out = ha.transform_one(x32, 0)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ha.transform_one(x32.astype(np.float64), 0), atol=1e-5)


def test_progress_bar_and_logging(sim: dict, capsys, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="bci.align"):
        Hyperalignment(verbose=True).fit(sim["train"])
    assert "hyperalignment" in capsys.readouterr().err
    assert any("hyperalignment done" in r.getMessage() for r in caplog.records)
    Hyperalignment(verbose=False).fit(sim["train"])
    assert capsys.readouterr().err == ""


def test_errors(sim: dict) -> None:
    train = sim["train"]
    with pytest.raises(ValueError, match=_exact("Hyperalignment needs at least 2 subjects; got 1")):
        Hyperalignment(verbose=False).fit(train[:1])
    bad = [x.copy() for x in train]
    bad[2][3, 4] = np.inf
    with pytest.raises(ValueError, match=_exact("subject 2: data contain NaN or Inf values")):
        Hyperalignment(verbose=False).fit(bad)
    with pytest.raises(
        ValueError,
        match=_exact("all subjects must have the same number of samples; got [150, 149, 150]"),
    ):
        Hyperalignment(verbose=False).fit([train[0], train[1][:-1], train[2]])
    with pytest.raises(
        ValueError,
        match=_exact("subject 1: expected a 2-D array (n_samples, n_features); got shape (150,)"),
    ):
        Hyperalignment(verbose=False).fit([train[0], train[1][:, 0], train[2]])
    with pytest.raises(
        ValueError,
        match=_exact("Hyperalignment: expected a list of 2-D arrays, one per subject; got dict"),
    ):
        Hyperalignment(verbose=False).fit({0: train[0]})
    with pytest.raises(ValueError, match=_exact("ref_ds=3 is out of range for 3 subjects")):
        Hyperalignment(ref_ds=3, verbose=False).fit(train)
    with pytest.raises(ValueError, match=_exact("alpha must be in [0, 1]; got 1.5")):
        Hyperalignment(alpha=1.5, verbose=False).fit(train)
    with pytest.raises(NotFittedError):
        Hyperalignment().transform(train)
    with pytest.raises(NotFittedError):
        Hyperalignment().transform_one(train[0][0], 0)

    ha = Hyperalignment(verbose=False).fit(train)
    with pytest.raises(ValueError, match=_exact("subject 1: expected 48 voxels, got 47")):
        ha.transform_one(train[1][0, :47], 1)
    with pytest.raises(ValueError, match=_exact("subject 0: expected 40 voxels, got 48")):
        ha.transform([train[1], train[1], train[2]])
    with pytest.raises(
        IndexError, match=_exact("subject index 3 is out of range for 3 fitted subjects")
    ):
        ha.transform_one(train[0][0], 3)
    with pytest.raises(
        IndexError, match=_exact("subject index -1 is out of range for 3 fitted subjects")
    ):
        ha.transform_one(train[0][0], -1)
    with pytest.raises(ValueError, match=_exact("subject 0: data contain NaN or Inf values")):
        ha.transform_one(np.full(40, np.nan), 0)
    with pytest.raises(ValueError, match=_exact("expected data for 3 subjects (as fitted); got 2")):
        ha.transform(train[:2])


def test_save_load_round_trip(sim: dict, tmp_path) -> None:
    ha = Hyperalignment(alpha=0.7, zscore_all=True, output_dim=5, ref_ds=np.int64(1), verbose=False)
    ha.fit(sim["train"])
    path = save_aligner(ha, tmp_path / "ha.model")  # the name is used as given
    assert path == tmp_path / "ha.model" and path.exists()
    back = load_aligner(path, expected=Hyperalignment)
    assert back.get_params() == ha.get_params()
    for a, b in zip(back.transform(sim["test"]), ha.transform(sim["test"]), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(
        back.transform_one(sim["test"][2][0], 2), ha.transform_one(sim["test"][2][0], 2)
    )
    assert back.ref_ds_ == ha.ref_ds_ == 1 and back.n_voxels_ == ha.n_voxels_


def test_load_errors(sim: dict, tmp_path) -> None:
    ha = Hyperalignment(verbose=False).fit(sim["train"])
    good = save_aligner(ha, tmp_path / "ha.npz")
    data = good.read_bytes()

    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=rf"^{re.escape(str(truncated))}: cannot read") as err:
        load_aligner(truncated)
    assert "\n" not in str(err.value)

    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a numpy archive at all")
    with pytest.raises(ValueError, match=_exact(f"{garbage}: not an .npz archive")):
        load_aligner(garbage)

    flipped = tmp_path / "flipped.npz"
    middle = len(data) // 2
    flipped.write_bytes(
        data[:middle] + bytes(b ^ 0xFF for b in data[middle : middle + 64]) + data[middle + 64 :]
    )
    with pytest.raises(ValueError, match=rf"^{re.escape(str(flipped))}: ") as err:
        load_aligner(flipped)
    assert "\n" not in str(err.value)

    plain = tmp_path / "plain.npz"
    np.savez(plain, a=np.zeros(3))
    with pytest.raises(
        ValueError, match=_exact(f"{plain}: no metadata entry (not an aligner file)")
    ):
        load_aligner(plain)

    with pytest.raises(
        ValueError, match=_exact(f"{good}: contains a Hyperalignment, expected a SRM")
    ):
        load_aligner(good, expected=SRM)

    missing = tmp_path / "missing.npz"
    with pytest.raises(
        ValueError,
        match=rf"^{re.escape(str(missing))}: cannot read aligner "
        r"file \(FileNotFoundError",
    ):
        load_aligner(missing)

    with pytest.raises(
        ValueError,
        match=_exact(
            "cannot save an unfitted Hyperalignment (missing n_voxels_, ref_ds_, means_, stds_, "
            "projections_, offsets_, scales_, template_, components_, training_residuals_)"
        ),
    ):
        save_aligner(Hyperalignment(), tmp_path / "unfitted.npz")


def _zs(a: np.ndarray) -> np.ndarray:
    std = a.std(0)
    return (a - a.mean(0)) / np.where(std == 0, 1.0, std)


def _dense_procrustes(src: np.ndarray, tgt: np.ndarray) -> np.ndarray:
    """Literal dense statement of PyMVPA's ProcrusteanMapper; returns src mapped onto tgt."""
    xs, yt = src - src.mean(0), tgt - tgt.mean(0)
    nx, ny = np.linalg.norm(xs), np.linalg.norm(yt)
    q = max(src.shape[1], tgt.shape[1])
    xp = np.hstack([xs / nx, np.zeros((len(xs), q - src.shape[1]))])
    yp = np.hstack([yt / ny, np.zeros((len(yt), q - tgt.shape[1]))])
    u, s, vh = np.linalg.svd(yp.T @ xp)
    t = (vh.T @ u.T)[: src.shape[1], : tgt.shape[1]]
    return xs @ (s.sum() * ny / nx * t) + tgt.mean(0)


def _reference_hyperalignment(
    ds: list[np.ndarray], alpha: float, output_dim: int | None = None
) -> list[np.ndarray]:
    """PyMVPA's three levels (defaults, zscore_all=True) spelled out densely, training data only.

    With ``output_dim``, PyMVPA 2.6.5's last step: the SVD of the subjects' mean mapped data.
    """
    ds = [_zs(d) for d in ds]
    if alpha < 1:
        regs = []
        for d in ds:
            _, s, vh = np.linalg.svd(d)
            w = np.zeros(len(vh))
            w[: len(s)] = 1 / np.sqrt((1 - alpha) * s**2 + alpha)
            regs.append(d @ (vh.T * w) @ vh)
        ds = regs
    ref = int(np.argmax([d.shape[1] for d in ds]))
    common, mapped = ds[ref], list(ds)
    for i in range(len(ds)):
        if i != ref:
            mapped[i] = _zs(_dense_procrustes(ds[i], common))
            common = _zs(0.5 * (mapped[i] + common))
    common = np.mean(mapped, 0)
    for i in range(len(ds)):
        loo = _zs((common * len(ds) - mapped[i]) / (len(ds) - 1))
        mapped[i] = _zs(_dense_procrustes(ds[i], loo))
    common = _zs(np.mean(mapped, 0))
    final = [_dense_procrustes(d, common) for d in ds]
    if output_dim is None:
        return final
    mean = np.mean(final, 0)
    _, _, vh = np.linalg.svd(mean - mean.mean(0), full_matrices=False)
    return [(f - mean.mean(0)) @ vh[:output_dim].T for f in final]


@pytest.mark.parametrize(
    ("n", "alpha", "output_dim"),
    [
        (80, 1.0, None),
        (15, 1.0, None),
        (15, 0.4, None),
        (80, 0.4, None),
        (80, 1.0, 7),
        (15, 0.4, 4),
    ],
)
def test_matches_a_literal_dense_statement_of_pymvpa(
    n: int, alpha: float, output_dim: int | None
) -> None:
    rng = np.random.default_rng(11)
    ds = [rng.standard_normal((n, p)) * rng.uniform(0.5, 2, p) + 3.0 for p in (20, 30, 25)]
    expected = _reference_hyperalignment(ds, alpha, output_dim)
    ha = Hyperalignment(alpha=alpha, zscore_all=True, output_dim=output_dim)
    ours = ha.fit(ds).transform(ds)
    for a, b in zip(ours, expected, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-9, rtol=0)
