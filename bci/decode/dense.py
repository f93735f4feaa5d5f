"""Dense (linear) decoder trained by gradient descent, as in the HYPER seed (MXNet gluon).

The seed trains ``gluon.nn.Dense(512, in_units=4096)`` with ``gluon.loss.L2Loss`` and
``Trainer(..., "Adam", {"learning_rate": 1e-5, "wd": 0.01})`` on shuffled batches of 30. This is
the same model in torch:

* ``L2Loss`` is ``0.5 * (pred - label)²`` averaged over the latent axis; the trainer's
  ``step(batch_size)`` averages over the batch, so the gradient is that of ``0.5 * MSE``.
* gluon's Adam ``wd`` adds ``wd * w`` to the gradient of every parameter (bias included), which
  is torch's ``Adam(weight_decay=...)`` (coupled L2), not ``AdamW``. The one remaining
  difference: MXNet adds ``eps`` to ``sqrt(v)`` before, torch after, the bias correction.
* gluon's default initialiser draws weights from U(-0.07, 0.07); biases start at zero.
"""

from __future__ import annotations

import numbers
from pathlib import Path

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data
from tqdm.auto import tqdm

__all__ = ["DenseDecoder"]

_INIT_SCALE = 0.07  # mxnet.initializer.Uniform() default


def _resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _adam(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.Adam:
    """Adam with coupled L2 ``weight_decay``; the fused kernel (faster on CPU) when available."""
    try:
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)


class DenseDecoder(RegressorMixin, BaseEstimator):
    """Linear layer from responses to latents, trained with Adam on an L2 loss (the HYPER seed).

    Parameters
    ----------
    epochs : int, default=1500
        Passes over the training data.
    lr : float, default=1e-5
        Adam learning rate.
    weight_decay : float, default=0.01
        Coupled L2 penalty added to the gradient (gluon Adam ``wd``; torch Adam ``weight_decay``).
    batch_size : int, default=30
        Mini-batch size; batches are reshuffled every epoch (the last one may be smaller).
    device : str, torch.device or None, default=None
        Training device; None picks CUDA when available, else CPU.
    random_state : int, RandomState or None, default=None
        Seeds the weight initialisation and the batch shuffling.
    verbose : bool, default=False
        Show a tqdm progress bar over epochs.

    Attributes
    ----------
    coef_ : ndarray of shape (n_targets, n_features) or (n_features,) for 1-D y
    intercept_ : ndarray of shape (n_targets,) or float for 1-D y
    loss_curve_ : list of float
        Mean training loss (0.5 * MSE) of the batches of each epoch.
    validation_loss_curve_ : list of float or None
        Loss on ``validation_data`` after each epoch; None when no validation data was given.
    device_ : str
        Device the model was trained on.
    n_features_in_ : int
    """

    def __init__(
        self,
        epochs: int = 1500,
        lr: float = 1e-5,
        weight_decay: float = 0.01,
        batch_size: int = 30,
        device: str | torch.device | None = None,
        random_state: int | np.random.RandomState | None = None,
        verbose: bool = False,
    ) -> None:
        self.epochs = epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.non_deterministic = self.random_state is None
        return tags

    def _check_params(self) -> None:
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not (isinstance(self.lr, numbers.Real) and np.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        wd = self.weight_decay
        if not (isinstance(wd, numbers.Real) and np.isfinite(wd) and wd >= 0):
            raise ValueError(f"weight_decay must be a non-negative number, got {wd!r}")

    def _init_model(self, n_in: int, n_out: int, gen: torch.Generator) -> torch.nn.Linear:
        model = torch.nn.Linear(n_in, n_out)
        with torch.no_grad():
            weight = torch.rand((n_out, n_in), generator=gen) * (2 * _INIT_SCALE) - _INIT_SCALE
            model.weight.copy_(weight)
            model.bias.zero_()
        return model

    def _validation_tensors(self, validation_data, n_features, n_targets, device):
        try:
            xv, yv = validation_data
        except (TypeError, ValueError):
            raise ValueError("validation_data must be a pair (X, Y)") from None
        xv = np.asarray(xv, dtype=np.float32)
        yv = np.asarray(yv, dtype=np.float32).reshape(len(yv), -1)
        if xv.ndim != 2 or xv.shape[1] != n_features:
            raise ValueError(f"validation X must have shape (n, {n_features}), got {xv.shape}")
        if yv.shape != (len(xv), n_targets):
            raise ValueError(
                f"validation Y must have shape ({len(xv)}, {n_targets}), got {yv.shape}"
            )
        return torch.from_numpy(xv).to(device), torch.from_numpy(yv).to(device)

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        validation_data: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> DenseDecoder:
        """Train the layer.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Responses (z-scored, as in the seed).
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Latents.
        validation_data : tuple (X_val, Y_val), optional
            Held-out pair whose loss is recorded after each epoch (never trained on).

        Returns
        -------
        self : DenseDecoder
        """
        self._check_params()
        X, y = validate_data(self, X, y, dtype=np.float32, multi_output=True, y_numeric=True)
        y2 = np.asarray(y, dtype=np.float32).reshape(len(y), -1)
        device = _resolve_device(self.device)
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        gen = torch.Generator().manual_seed(seed)
        n, p = X.shape
        model = self._init_model(p, y2.shape[1], gen).to(device)
        opt = _adam(model, self.lr, self.weight_decay)
        xt, yt = torch.from_numpy(X).to(device), torch.from_numpy(y2).to(device)
        val = None
        if validation_data is not None:
            val = self._validation_tensors(validation_data, p, y2.shape[1], device)
        self.loss_curve_: list[float] = []
        self.validation_loss_curve_: list[float] | None = None if val is None else []
        bar = tqdm(range(self.epochs), desc="DenseDecoder", unit="epoch", disable=not self.verbose)
        for _ in bar:
            order = torch.randperm(n, generator=gen).to(device)
            total = torch.zeros((), device=device)
            n_batches = 0
            for start in range(0, n, self.batch_size):
                idx = order[start : start + self.batch_size]
                loss = 0.5 * torch.mean((model(xt[idx]) - yt[idx]) ** 2)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.detach()
                n_batches += 1
            self.loss_curve_.append(float(total) / n_batches)
            postfix = {"loss": f"{self.loss_curve_[-1]:.4g}"}
            if val is not None:
                with torch.no_grad():
                    vloss = 0.5 * torch.mean((model(val[0]) - val[1]) ** 2)
                self.validation_loss_curve_.append(float(vloss))
                postfix["val"] = f"{self.validation_loss_curve_[-1]:.4g}"
            bar.set_postfix(postfix, refresh=False)
        bar.close()
        coef = model.weight.detach().cpu().numpy().astype(np.float32)
        intercept = model.bias.detach().cpu().numpy().astype(np.float32)
        self.coef_ = coef[0] if y.ndim == 1 else coef
        self.intercept_ = float(intercept[0]) if y.ndim == 1 else intercept
        self.device_ = str(device)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predict latents.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_targets) or (n_samples,), float32
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float32)
        return (X @ self.coef_.T + np.float32(self.intercept_)).astype(np.float32, copy=False)

    def plot_loss(self, path: str | Path) -> Path:
        """Write the loss curves (train, and validation when recorded) to a PNG file.

        Parameters
        ----------
        path : str or Path
            Output file (PNG).

        Returns
        -------
        Path
            The written file.
        """
        check_is_fitted(self)
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        path = Path(path)
        fig = Figure(figsize=(6, 4), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        epochs = np.arange(1, len(self.loss_curve_) + 1)
        ax.plot(epochs, self.loss_curve_, label="train")
        if self.validation_loss_curve_:
            ax.plot(epochs, self.validation_loss_curve_, label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss (0.5 × MSE)")
        ax.set_yscale("log")
        ax.set_title("DenseDecoder training")
        ax.legend()
        fig.tight_layout()
        fig.savefig(path, format="png")
        return path
