"""The decoding model a live session loads: per-subject alignment, averaging, ridge decoder.

The HYPER pipeline as one object: each subject's response is mapped into the common functional
space (hyperalignment or SRM; none for a single subject), the subjects present are averaged, the
average is standardised with the calibration data's statistics, and a ridge decoder predicts the
latent. :func:`fit_decoding_model` fits it from calibration data; :meth:`DecodingModel.save`
writes one ``.npz`` file (arrays plus JSON metadata, no pickle) that :func:`load_decoding_model`
reads back.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bci.align import SRM, Hyperalignment
from bci.align.persistence import aligner_from_arrays, aligner_to_arrays
from bci.archive import (
    READ_ERRORS,
    check_finite,
    check_format,
    json_entry,
    read_json_entry,
    read_npz,
    write_npz,
)
from bci.decode.ridge import RidgeDecoder

log = logging.getLogger(__name__)

FORMAT = "bci.decoding-model"
FORMAT_VERSION = 1
_RIDGE_ATTRS = ("coef_", "intercept_", "alpha_", "pca_components_", "pca_mean_")


@dataclass
class DecodingModel:
    """A fitted HYPER decoding pipeline.

    Attributes
    ----------
    aligner : Hyperalignment | SRM | None
        Maps each subject into the common space; None when responses are used as they are.
    decoder : RidgeDecoder
        Fitted on the standardised common-space average.
    feature_mean, feature_std : np.ndarray
        Standardisation of the averaged common-space features (from the calibration data).
    n_voxels : list of int
        Voxels per subject, in subject order.
    meta : dict
        Provenance: data files, trial counts, generator spec, alphas chosen.
    """

    aligner: Hyperalignment | SRM | None
    decoder: RidgeDecoder
    feature_mean: np.ndarray
    feature_std: np.ndarray
    n_voxels: list[int]
    meta: dict = field(default_factory=dict)

    @property
    def latent_dim(self) -> int:
        """Width of the predicted latents."""
        return int(self.decoder.coef_.shape[0])

    def common(self, response: np.ndarray, subject: int) -> np.ndarray:
        """Map one subject's response(s), ``(n_voxels,)`` or ``(n, n_voxels)``, to common space."""
        if not 0 <= subject < len(self.n_voxels):
            raise ValueError(
                f"subject {subject} is not in this model (it has {len(self.n_voxels)} subjects)"
            )
        x = np.asarray(response, dtype=np.float32)
        if x.shape[-1] != self.n_voxels[subject]:
            raise ValueError(
                f"subject {subject}: response has {x.shape[-1]} voxels, the model expects "
                f"{self.n_voxels[subject]}"
            )
        if self.aligner is None:
            return x
        return self.aligner.transform_one(x, subject)

    def predict(self, responses: Mapping[int, np.ndarray]) -> np.ndarray:
        """Predict latents from the responses of the subjects present.

        Parameters
        ----------
        responses : mapping of int to np.ndarray
            Subject index → response ``(n_voxels,)`` (one trial) or ``(n, n_voxels)`` (n trials).

        Returns
        -------
        np.ndarray
            ``(latent_dim,)`` for one trial, ``(n, latent_dim)`` for n, float32.
        """
        if not responses:
            raise ValueError("no subject responses to decode")
        common = [self.common(x, s) for s, x in sorted(responses.items())]
        average = np.mean(common, axis=0)
        one = average.ndim == 1
        z = (np.atleast_2d(average) - self.feature_mean) / self.feature_std
        latents = self.decoder.predict(z).astype(np.float32)
        return latents[0] if one else latents

    def save(self, path: str | Path) -> Path:
        """Write the model to one ``.npz`` file, atomically."""
        arrays: dict[str, np.ndarray] = {
            "feature_mean": self.feature_mean,
            "feature_std": self.feature_std,
        }
        for attr in _RIDGE_ATTRS:
            value = getattr(self.decoder, attr, None)
            if value is not None:
                arrays[f"ridge/{attr}"] = np.asarray(value)
        if self.aligner is not None:
            arrays.update(aligner_to_arrays(self.aligner, prefix="aligner/"))
        meta = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "n_voxels": self.n_voxels,
            "ridge_params": self.decoder.get_params(),
            "meta": self.meta,
            "aligner": type(self.aligner).__name__ if self.aligner is not None else None,
        }
        arrays["__model__"] = json_entry(meta, default=float)
        return write_npz(path, arrays)


def load_decoding_model(path: str | Path) -> DecodingModel:
    """Read a model written by :meth:`DecodingModel.save`.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        One line naming the file: it is not a decoding model, has another format version, or
        holds NaN or Inf weights.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"decoding model not found: {path}")
    try:
        arrays = read_npz(path)
        meta = read_json_entry(arrays, "__model__")
        del arrays["__model__"]
        if not isinstance(meta, dict):
            raise ValueError("'__model__' is not a JSON object")
    except (*READ_ERRORS, ValueError, KeyError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ValueError(f"{path} is not a readable decoding model ({first})") from None
    try:
        check_format(meta.get("format"), meta.get("version"), FORMAT, FORMAT_VERSION)
        check_finite(arrays)  # a NaN weight would decode every trial to NaN
    except ValueError as err:
        raise ValueError(f"{path} {err}") from None
    try:
        model = _model_from(arrays, meta, path)
        _dry_run(model)
    except (KeyError, TypeError, ValueError, IndexError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ValueError(f"{path} is not a usable decoding model ({first})") from None
    return model


MAX_VOXELS = 2**20
"""Most voxels per subject a model file may declare (a whole brain at 2 mm has ~230 000)."""


def _model_from(arrays: dict[str, np.ndarray], meta: dict, path: Path) -> DecodingModel:
    n_voxels = meta["n_voxels"]
    if not (
        isinstance(n_voxels, list)
        and n_voxels
        and all(type(n) is int and 0 < n <= MAX_VOXELS for n in n_voxels)
    ):
        raise ValueError(f"n_voxels {str(n_voxels)[:40]} is not a list of voxel counts")
    params = meta["ridge_params"]
    if not isinstance(params, dict):
        raise ValueError(f"ridge_params {str(params)[:40]} is not a map")
    decoder = RidgeDecoder(**params)
    for attr in _RIDGE_ATTRS:
        if f"ridge/{attr}" in arrays:
            setattr(decoder, attr, arrays[f"ridge/{attr}"])
    decoder.n_features_in_ = int(arrays["feature_mean"].shape[-1])
    aligner = None
    if meta["aligner"] is not None:
        aligner = aligner_from_arrays(arrays, prefix="aligner/", source=str(path))
    return DecodingModel(
        aligner,
        decoder,
        arrays["feature_mean"],
        arrays["feature_std"],
        n_voxels,
        meta.get("meta", {}),
    )


def _dry_run(model: DecodingModel) -> None:
    """Decode zeros from every subject: arrays whose shapes or types do not fit together (a
    hand-made or damaged file) fail here, at load, not on the first trial of a live session."""
    for n in (model.feature_mean, model.feature_std, model.decoder.coef_):
        if not np.issubdtype(np.asarray(n).dtype, np.number):
            raise ValueError(f"an array of {np.asarray(n).dtype} values")
    zeros = {s: np.zeros(n, np.float32) for s, n in enumerate(model.n_voxels)}
    for subjects in (zeros, {0: zeros[0]}):
        with np.errstate(all="ignore"):  # a zero std is named below, not warned about
            latent = model.predict(subjects)
        if latent.shape != (model.latent_dim,) or not np.isfinite(latent).all():
            raise ValueError(f"it decodes zeros to {latent.shape[:3]} values, not all finite")


def fit_decoding_model(
    responses: Sequence[np.ndarray],
    latents: np.ndarray,
    aligner: str = "hyperalignment",
    alphas: Sequence[float] = (1.0, 10.0, 100.0, 1e3, 1e4, 1e5),
    n_components: int | None = None,
    n_srm_features: int = 50,
    meta: dict | None = None,
    random_state: int = 0,
) -> DecodingModel:
    """Fit the HYPER pipeline on calibration data.

    Parameters
    ----------
    responses : sequence of np.ndarray
        One ``(n_trials, n_voxels_i)`` array per subject, trials in the same order.
    latents : np.ndarray, shape (n_trials, latent_dim)
        The latents of the stimuli shown.
    aligner : {"hyperalignment", "srm", "none"}
        How subjects are brought into one space ("none" needs equal voxel counts).
    alphas : sequence of float
        Ridge penalties, chosen per latent dimension by leave-one-out.
    n_components : int | None
        PCA reduction before the ridge.
    n_srm_features : int
        Shared features for SRM.
    meta : dict | None
        Provenance stored with the model.
    random_state : int
        Seed of SRM's initial maps, so that fitting the same data again (a replay of the
        session) gives the same model.

    Returns
    -------
    DecodingModel
    """
    data = [np.asarray(r, dtype=np.float64) for r in responses]
    y = np.asarray(latents, dtype=np.float64)
    if not data:
        raise ValueError("no subject responses to fit")
    counts = {len(d) for d in data} | {len(y)}
    if len(counts) != 1:
        raise ValueError(
            f"responses and latents disagree on the number of trials: "
            f"{[len(d) for d in data]} responses vs {len(y)} latents"
        )
    fitted = None
    if aligner != "none" and len(data) > 1:
        fitted = (
            Hyperalignment(verbose=False)
            if aligner == "hyperalignment"
            else SRM(n_features=n_srm_features, random_state=random_state)
        )
        common = fitted.fit_transform(data)
    else:
        if len({d.shape[1] for d in data}) != 1:
            raise ValueError("aligner 'none' needs the same voxel count for every subject")
        common = data
    average = np.mean(common, axis=0)
    mean = average.mean(axis=0)
    std = average.std(axis=0)
    std[std == 0] = 1.0
    decoder = RidgeDecoder(alphas=tuple(alphas), n_components=n_components)
    decoder.fit((average - mean) / std, y)
    info = {"n_trials": len(y), "n_subjects": len(data), "aligner": aligner, **(meta or {})}
    log.info(
        "fitted decoding model: %d subjects, %d trials, alphas chosen %s",
        len(data),
        len(y),
        np.unique(decoder.alpha_).tolist(),
    )
    return DecodingModel(
        fitted,
        decoder,
        mean.astype(np.float32),
        std.astype(np.float32),
        [d.shape[1] for d in data],
        info,
    )
