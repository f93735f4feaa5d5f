"""load_seed_data: round trips of legitimate pickles, refusal of malicious ones."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from bci.io import RefusedPickleError, load_seed_data


def _seed_tuple(n_tr=6, n_te=3, vox=8, lat=4, dtype=np.float64):
    rng = np.random.default_rng(0)

    def trials(n, d):
        return [rng.standard_normal(d).astype(dtype) for _ in range(n)]

    return trials(n_tr, vox), trials(n_tr, lat), trials(n_te, vox), trials(n_te, lat)


def _write(path, obj, protocol=pickle.HIGHEST_PROTOCOL):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)
    return path


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_round_trip(tmp_path, protocol, dtype):
    data = _seed_tuple(dtype=dtype)
    out = load_seed_data(_write(tmp_path / "data_1.dat", data, protocol))
    assert out.X_train.shape == (6, 8) and out.T_train.shape == (6, 4)
    assert out.X_test.shape == (3, 8) and out.T_test.shape == (3, 4)
    for got, trials in zip(out, data, strict=True):
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, np.stack(trials).astype(np.float32))


def test_trials_are_flattened_and_scalars_allowed(tmp_path):
    x_tr, t_tr, x_te, t_te = _seed_tuple()
    x_tr = [x.reshape(2, 4) for x in x_tr]  # e.g. a voxel grid per trial
    x_te = tuple(x_te)
    t_te = [np.float64(1.5) * t for t in t_te]
    out = load_seed_data(_write(tmp_path / "d.dat", (x_tr, t_tr, x_te, t_te), protocol=2))
    assert out.X_train.shape == (6, 8)


class _Evil:
    def __init__(self, sentinel):
        self.sentinel = sentinel

    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_malicious_pickle_is_refused(tmp_path, protocol):
    sentinel = tmp_path / "SENTINEL"
    x_tr, t_tr, x_te, t_te = _seed_tuple()
    path = _write(tmp_path / "evil.dat", ([_Evil(sentinel)] + x_tr, t_tr, x_te, t_te), protocol)
    message = (
        rf"^refusing to unpickle {os.system.__module__}\.system from {path}: "
        r"only numpy arrays, lists and tuples are allowed$"
    )
    with pytest.raises(RefusedPickleError, match=message):
        load_seed_data(path)
    assert not sentinel.exists()
    assert issubclass(RefusedPickleError, pickle.UnpicklingError)


def test_other_globals_refused(tmp_path):
    path = _write(tmp_path / "eval.dat", (eval, [], [], []))
    with pytest.raises(RefusedPickleError, match=r"^refusing to unpickle builtins\.eval from "):
        load_seed_data(path)


def test_shape_errors(tmp_path):
    x_tr, t_tr, x_te, t_te = _seed_tuple()
    cases = [
        (
            (x_tr, t_tr, x_te),
            r"expected a 4-tuple \(X_tr, T_tr, X_te, T_te\), got tuple of length 3$",
        ),
        ((x_tr, t_tr[:-1], x_te, t_te), r"X_tr has 6 trials but T_tr has 5$"),
        ((x_tr, t_tr, [x[:5] for x in x_te], t_te), r"X_tr has 8 voxels but X_te has 5$"),
        ((x_tr, t_tr, x_te, [t[:3] for t in t_te]), r"T_tr latents have 4 values but T_te have 3$"),
        ((x_tr[:2] + [x_tr[2][:3]], t_tr, x_te, t_te), r"X_tr trials differ in size: \[3, 8\]$"),
        (([], t_tr, x_te, t_te), r"X_tr is empty$"),
        ((x_tr, t_tr, x_te, ["a"] * 3), r"T_te\[0\] must be a numpy array, got str$"),
    ]
    for i, (obj, message) in enumerate(cases):
        path = _write(tmp_path / f"bad{i}.dat", obj)
        with pytest.raises(ValueError, match=rf"^{path}: {message}"):
            load_seed_data(path)


def test_not_a_pickle(tmp_path):
    path = tmp_path / "junk.dat"
    path.write_bytes(b"\x80\x04\x95junk")
    with pytest.raises(ValueError, match=rf"^{path}: not a readable pickle"):
        load_seed_data(path)
