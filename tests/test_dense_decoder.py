"""DenseDecoder: gluon-Adam replication, loss curves, plotting, sklearn API."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import clone

from bci.decode import DenseDecoder


def _data(n: int = 40, p: int = 12, t: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, p)).astype(np.float32)
    y = (x @ rng.standard_normal((p, t)) * 0.5 + 0.2).astype(np.float32)
    return x, y


def _mxnet_adam_reference(x, y, w, b, lr, wd, steps, eps=1e-8, b1=0.9, b2=0.999):
    """Full-batch gluon training: L2Loss + Trainer.step(batch) + Adam with coupled ``wd``."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    params = [w.astype(np.float64), b.astype(np.float64)]
    m = [np.zeros_like(q) for q in params]
    v = [np.zeros_like(q) for q in params]
    for step in range(1, steps + 1):
        resid = x @ params[0].T + params[1] - y
        grads = [resid.T @ x / resid.size, resid.sum(axis=0) / resid.size]
        lr_t = lr * np.sqrt(1 - b2**step) / (1 - b1**step)
        for i, g in enumerate(grads):
            g = g + wd * params[i]
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            params[i] = params[i] - lr_t * m[i] / (np.sqrt(v[i]) + eps)
    return params


def test_update_matches_gluon_adam_with_wd(monkeypatch):
    x, y = _data()
    rng = np.random.default_rng(1)
    w0 = rng.uniform(-0.07, 0.07, size=(3, 12)).astype(np.float32)
    b0 = rng.uniform(-0.1, 0.1, size=3).astype(np.float32)

    def init(self, n_in, n_out, gen):
        layer = torch.nn.Linear(n_in, n_out)
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(w0))
            layer.bias.copy_(torch.from_numpy(b0))
        return layer

    monkeypatch.setattr(DenseDecoder, "_init_model", init)
    model = DenseDecoder(epochs=6, lr=1e-2, weight_decay=0.5, batch_size=40, device="cpu")
    model.set_params(verbose=False, random_state=0).fit(x, y)
    w_ref, b_ref = _mxnet_adam_reference(x, y, w0, b0, lr=1e-2, wd=0.5, steps=6)
    np.testing.assert_allclose(model.coef_, w_ref, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(model.intercept_, b_ref, rtol=1e-4, atol=1e-6)
    # first-epoch loss is 0.5 * MSE of the initial weights
    first = 0.5 * np.mean((x @ w0.T + b0 - y) ** 2)
    assert model.loss_curve_[0] == pytest.approx(first, rel=1e-5)


def test_loss_curves_and_plot(tmp_path):
    x, y = _data(n=50)
    x, y, xv, yv = x[:40], y[:40], x[40:], y[40:]
    model = DenseDecoder(epochs=25, lr=1e-2, random_state=0, verbose=False)
    assert model.fit(x, y, validation_data=(xv, yv)) is model
    assert len(model.loss_curve_) == 25 and len(model.validation_loss_curve_) == 25
    assert model.loss_curve_[-1] < 0.5 * model.loss_curve_[0]
    assert model.validation_loss_curve_[-1] < model.validation_loss_curve_[0]
    out = model.plot_loss(tmp_path / "loss.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert model.device_ == ("cuda" if torch.cuda.is_available() else "cpu")
    no_val = DenseDecoder(epochs=2, random_state=0, verbose=False).fit(x, y)
    assert no_val.validation_loss_curve_ is None
    assert no_val.plot_loss(tmp_path / "train_only.png").exists()


def test_reproducible_and_shapes():
    x, y = _data()
    a = DenseDecoder(epochs=3, lr=1e-3, random_state=7, verbose=False).fit(x, y)
    b = clone(a).fit(x, y)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    pred = a.predict(x)
    assert pred.shape == (40, 3) and pred.dtype == np.float32
    one = DenseDecoder(epochs=2, random_state=0, verbose=False).fit(x, y[:, 0])
    assert one.predict(x).shape == (40,) and one.coef_.shape == (12,)
    assert a.get_params()["batch_size"] == 30 and a.n_features_in_ == 12


def test_progress_bar(capsys):
    x, y = _data()
    DenseDecoder(epochs=2, random_state=0, verbose=True).fit(x, y)
    assert "DenseDecoder" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"epochs": 0}, r"^epochs must be a positive integer, got 0$"),
        ({"batch_size": 2.5}, r"^batch_size must be a positive integer, got 2.5$"),
        ({"lr": -1.0}, r"^lr must be a positive number, got -1.0$"),
        ({"weight_decay": -0.1}, r"^weight_decay must be a non-negative number, got -0.1$"),
    ],
)
def test_bad_params(params, message):
    x, y = _data()
    with pytest.raises(ValueError, match=message):
        DenseDecoder(verbose=False, **params).fit(x, y)


def test_bad_validation_data():
    x, y = _data()
    model = DenseDecoder(epochs=1, verbose=False)
    with pytest.raises(ValueError, match=r"^validation X must have shape \(n, 12\), got \(5, 4\)$"):
        model.fit(x, y, validation_data=(np.zeros((5, 4)), np.zeros((5, 3))))
    with pytest.raises(ValueError, match=r"^validation_data must be a pair \(X, Y\)$"):
        model.fit(x, y, validation_data=(x,))
