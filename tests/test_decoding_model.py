"""The HYPER decoding model: fit on a simulated cohort, save, load, predict, bci-train."""

from __future__ import annotations

import numpy as np
import pytest

from bci.decode.model import fit_decoding_model, load_decoding_model
from bci.io import save_dataset
from bci.sim import SimulatedCohort
from bci.train import main as bci_train


@pytest.fixture(scope="module")
def cohort_data():
    cohort = SimulatedCohort(
        n_subjects=2, n_voxels=[300, 260], latent_dim=8, snr=0.2, random_state=0
    )
    rng = np.random.default_rng(0)
    z = rng.standard_normal((260, 8)).astype(np.float32)
    x = cohort.trial_responses(z, seed=1)
    return x, z


def test_fit_predict_save_load(tmp_path, cohort_data):
    x, z = cohort_data
    train, test = slice(0, 200), slice(200, 260)
    model = fit_decoding_model([xi[train] for xi in x], z[train], alphas=(1, 10, 100, 1000))
    pred = model.predict({0: x[0][test], 1: x[1][test]})
    r = np.mean([np.corrcoef(p, t)[0, 1] for p, t in zip(pred, z[test], strict=True)])
    assert pred.shape == (60, 8) and r > 0.6
    # One subject alone still decodes, worse than both.
    alone = model.predict({0: x[0][test]})
    r_alone = np.mean([np.corrcoef(p, t)[0, 1] for p, t in zip(alone, z[test], strict=True)])
    assert 0.2 < r_alone < r
    path = model.save(tmp_path / "model.npz")
    loaded = load_decoding_model(path)
    np.testing.assert_allclose(loaded.predict({0: x[0][test], 1: x[1][test]}), pred, atol=1e-5)
    np.testing.assert_allclose(loaded.predict({0: x[0][200], 1: x[1][200]}), pred[0], atol=1e-5)
    assert loaded.n_voxels == [300, 260] and loaded.latent_dim == 8


def test_errors(tmp_path, cohort_data):
    x, z = cohort_data
    model = fit_decoding_model([xi[:100] for xi in x], z[:100], aligner="srm", alphas=(10,))
    again = fit_decoding_model([xi[:100] for xi in x], z[:100], aligner="srm", alphas=(10,))
    # SRM is seeded: fitting the same calibration again (a replay) decodes the same latents
    np.testing.assert_array_equal(model.predict({0: x[0][100]}), again.predict({0: x[0][100]}))
    with pytest.raises(
        ValueError, match="subject 1: response has 300 voxels, the model expects 260"
    ):
        model.predict({1: x[0][0]})
    with pytest.raises(ValueError, match=r"subject 2 is not in this model \(it has 2 subjects\)"):
        model.predict({2: x[0][0]})
    with pytest.raises(ValueError, match="no subject responses to decode"):
        model.predict({})
    with pytest.raises(ValueError, match="responses and latents disagree on the number of trials"):
        fit_decoding_model([x[0][:10]], z[:11])
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="bad.npz is not a readable decoding model"):
        load_decoding_model(bad)
    with pytest.raises(FileNotFoundError, match="decoding model not found"):
        load_decoding_model(tmp_path / "none.npz")


def test_bci_train_cli(tmp_path, cohort_data, capsys):
    x, z = cohort_data
    split = np.array(["train"] * 200 + ["test"] * 60)
    data = save_dataset(tmp_path / "calib.npz", x, z, split, meta={"note": "sim"})
    out = tmp_path / "m.npz"
    assert bci_train([str(data), "--out", str(out), "--alphas", "1", "100"]) == 0
    assert "200 trials x 2 subjects (300, 260 voxels) -> 8-d latents" in capsys.readouterr().out
    model = load_decoding_model(out)
    assert model.meta["n_trials"] == 200 and model.meta["note"] == "sim"
    assert bci_train([str(tmp_path / "missing.npz"), "--out", str(out)]) == 1
    assert "bci-train: no such data file:" in capsys.readouterr().err
