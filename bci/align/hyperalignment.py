"""Hyperalignment (Haxby et al. 2011) with PyMVPA's three-level algorithm and defaults.

Level 1 aligns every subject in turn to a running template that starts as the reference subject and
is updated as ``combiner1 * aligned + (1 - combiner1) * template``. Level 2 (``level2_niter``
passes) re-aligns each subject to the leave-one-out mean of the level-1/2 aligned data. Level 3
fits each subject's final Procrustes transform to the final (z-scored) template. With
``output_dim`` set, the level-3-mapped training data are averaged over subjects and the top
right-singular vectors of that (centred) mean become the output axes, as in PyMVPA 2.6.5.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from bci.align.procrustes import (
    Side,
    SvdMode,
    _svd,
    as_samples,
    check_array_2d,
    check_svd_mode,
    fit_factors,
    output_dtype,
)

logger = logging.getLogger(__name__)


def check_datasets(datasets: object, owner: str) -> list[np.ndarray]:
    """Validate a list of per-subject (n_samples, n_voxels_i) arrays for fitting.

    Parameters
    ----------
    datasets : sequence of array-like
        One 2-D array per subject; voxel counts may differ, sample counts must match.
    owner : str
        Name of the estimator, used in error messages.

    Returns
    -------
    list of numpy.ndarray
        Finite float64 arrays.
    """
    if isinstance(datasets, np.ndarray) and datasets.ndim == 3:
        datasets = list(datasets)
    if not isinstance(datasets, Sequence) or isinstance(datasets, (str, bytes)):
        raise ValueError(
            f"{owner}: expected a list of 2-D arrays, one per subject; "
            f"got {type(datasets).__name__}"
        )
    if len(datasets) < 2:
        raise ValueError(f"{owner} needs at least 2 subjects; got {len(datasets)}")
    arrays = [check_array_2d(d, f"subject {i}") for i, d in enumerate(datasets)]
    counts = [a.shape[0] for a in arrays]
    if len(set(counts)) > 1:
        raise ValueError(f"all subjects must have the same number of samples; got {counts}")
    if counts[0] < 2:
        raise ValueError(f"{owner} needs at least 2 samples per subject; got {counts[0]}")
    return arrays


def zscore(a: np.ndarray) -> np.ndarray:
    """Column-wise z-score (population std); constant columns are only centred, as in PyMVPA."""
    mean, std = zscore_stats(a)
    return (a - mean) / std


def zscore_stats(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and std, with zero stds replaced by 1."""
    std = a.std(axis=0)
    std[std == 0] = 1.0
    return a.mean(axis=0), std


class MultiSubjectAligner(BaseEstimator):
    """Shared ``transform`` / ``transform_one`` for aligners with one affine map per subject.

    Subclasses set ``n_voxels_`` (list of int) when fitted and implement ``_subject_affine``.
    """

    def _subject_affine(
        self, subject: int
    ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray, np.ndarray | None]:
        """Return (mean, std, projection, offset) of ``subject``; mean/std/offset may be None."""
        raise NotImplementedError

    def _check_subject(self, subject: object) -> int:
        check_is_fitted(self, "n_voxels_")
        if isinstance(subject, bool) or not isinstance(subject, (int, np.integer)):
            raise TypeError(f"subject must be an integer index; got {type(subject).__name__}")
        n = len(self.n_voxels_)
        if not 0 <= subject < n:
            raise IndexError(f"subject index {subject} is out of range for {n} fitted subjects")
        return int(subject)

    def _apply(self, x: np.ndarray, subject: int) -> np.ndarray:
        mean, std, proj, offset = self._subject_affine(subject)
        z = x if mean is None else (x - mean) / std
        out = z @ proj
        if offset is not None:
            out += offset
        return out

    def transform_one(self, x: object, subject: int) -> np.ndarray:
        """Map one sample or a chunk of one subject into the common space (for streaming).

        Parameters
        ----------
        x : array-like
            Shape (n_voxels,) for one sample or (n_samples, n_voxels) for a chunk.
        subject : int
            Index of the subject in the list given to ``fit``.

        Returns
        -------
        numpy.ndarray
            Shape (k,) or (n_samples, k); float32 for float32 input, else float64.
        """
        s = self._check_subject(subject)
        x2, one = as_samples(x, self.n_voxels_[s], f"subject {s}", unit="voxels")
        out = self._apply(x2, s).astype(output_dtype(x), copy=False)
        return out[0] if one else out

    def transform(self, datasets: Sequence[object]) -> list[np.ndarray]:
        """Map every subject's data into the common space.

        Parameters
        ----------
        datasets : sequence of array-like
            One (n_samples_i, n_voxels_i) array per fitted subject, in the fitted order.

        Returns
        -------
        list of numpy.ndarray
            One (n_samples_i, k) array per subject.
        """
        check_is_fitted(self, "n_voxels_")
        n = len(self.n_voxels_)
        if not isinstance(datasets, Sequence) and not isinstance(datasets, np.ndarray):
            raise ValueError(
                f"expected a list of 2-D arrays, one per subject; got {type(datasets).__name__}"
            )
        if len(datasets) != n:
            raise ValueError(f"expected data for {n} subjects (as fitted); got {len(datasets)}")
        out = []
        for i, d in enumerate(datasets):
            x = check_array_2d(d, f"subject {i}")
            if x.shape[1] != self.n_voxels_[i]:
                raise ValueError(
                    f"subject {i}: expected {self.n_voxels_[i]} voxels, got {x.shape[1]}"
                )
            out.append(self._apply(x, i).astype(output_dtype(d), copy=False))
        return out

    def fit_transform(self, datasets: Sequence[object], y: object = None) -> list[np.ndarray]:
        """Fit to ``datasets`` and return them mapped into the common space."""
        return self.fit(datasets).transform(datasets)


def _regulariser(x: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PyMVPA's CCA-shrinkage whitening W = V diag(1/sqrt((1-a) s^2 + a)) V^T, kept factorised.

    Directions outside the data's row space get weight 0 (PyMVPA pads the weights with zeros).
    Returns (basis (p, r), weights (r,), x @ W (n, p)).
    """
    u, s, vh = _svd(x)
    den = np.sqrt((1.0 - alpha) * s**2 + alpha)
    w = np.divide(1.0, den, out=np.zeros_like(den), where=den > 1e-12 * max(1.0, s[0]))
    return vh.T, w, (u * (s * w)) @ vh


class Hyperalignment(MultiSubjectAligner):
    """Hyperalignment of several subjects' responses into a common space (PyMVPA defaults).

    Parameters
    ----------
    alpha : float, default 1.0
        Regularisation between CCA (0) and hyperalignment (1). Below 1 each (z-scored) dataset
        is first multiplied by ``V diag(1/sqrt((1-alpha) s^2 + alpha)) V^T`` from its SVD.
    level2_niter : int, default 1
        Number of level-2 passes.
    zscore_all : bool, default False
        Z-score every dataset (statistics learned at fit time and reapplied to new data).
    zscore_common : bool, default True
        Z-score the common space after each update.
    ref_ds : int or None, default None
        Level-1 reference subject; None picks the subject with the most voxels.
    combiner1 : float, default 0.5
        Level-1 update weight: ``template = combiner1 * aligned + (1 - combiner1) * template``.
    output_dim : int or None, default None
        Keep only the top ``output_dim`` principal directions of the subjects' mean level-3-mapped
        training data (PyMVPA 2.6.5's SVD step; Haxby et al. 2011); None keeps all
        k = n_voxels[ref] dimensions.
    scaling, reflection : bool, default True
        Passed to each Procrustes fit (see :class:`bci.align.Procrustes`).
    svd : {"auto", "dual", "full"}, default "auto"
        Procrustes solver.
    verbose : bool, default False
        Show a progress bar.

    Attributes
    ----------
    n_voxels_ : list of int
        Voxel count of each subject.
    ref_ds_ : int
        The reference subject used in level 1.
    means_, stds_ : list of numpy.ndarray or None
        Per-subject z-scoring statistics (None unless ``zscore_all``); zero stds stored as 1.
    projections_ : list of numpy.ndarray
        Per-subject (n_voxels_i, k) linear maps (regularisation, Procrustes scale and
        ``output_dim`` reduction folded in), applied after z-scoring.
    offsets_ : list of numpy.ndarray
        Per-subject (k,) offsets added after the projection.
    scales_ : numpy.ndarray
        (n_subjects,) level-3 Procrustes scales.
    template_ : numpy.ndarray
        (n_samples, k) final common-space template (projected onto ``components_`` when
        ``output_dim`` is set).
    components_ : numpy.ndarray or None
        (n_voxels[ref], output_dim) principal directions of the mean mapped training data that
        are kept, or None.
    training_residuals_ : numpy.ndarray
        (1 + level2_niter, n_subjects) Frobenius distance between each aligned subject and the
        template it was aligned to, per level (PyMVPA's ``training_residual_errors``).
    """

    _persisted_attrs = (
        "n_voxels_",
        "ref_ds_",
        "means_",
        "stds_",
        "projections_",
        "offsets_",
        "scales_",
        "template_",
        "components_",
        "training_residuals_",
    )

    def __init__(
        self,
        alpha: float = 1.0,
        level2_niter: int = 1,
        zscore_all: bool = False,
        zscore_common: bool = True,
        ref_ds: int | None = None,
        combiner1: float = 0.5,
        output_dim: int | None = None,
        scaling: bool = True,
        reflection: bool = True,
        svd: SvdMode = "auto",
        verbose: bool = False,
    ) -> None:
        self.alpha = alpha
        self.level2_niter = level2_niter
        self.zscore_all = zscore_all
        self.zscore_common = zscore_common
        self.ref_ds = ref_ds
        self.combiner1 = combiner1
        self.output_dim = output_dim
        self.scaling = scaling
        self.reflection = reflection
        self.svd = svd
        self.verbose = verbose

    def _check_params(self, n_subjects: int) -> None:
        if not 0.0 <= float(self.alpha) <= 1.0:
            raise ValueError(f"alpha must be in [0, 1]; got {self.alpha}")
        if not isinstance(self.level2_niter, (int, np.integer)) or self.level2_niter < 0:
            raise ValueError(f"level2_niter must be an integer >= 0; got {self.level2_niter!r}")
        if not 0.0 <= float(self.combiner1) <= 1.0:
            raise ValueError(f"combiner1 must be in [0, 1]; got {self.combiner1}")
        if self.ref_ds is not None and not 0 <= self.ref_ds < n_subjects:
            raise ValueError(f"ref_ds={self.ref_ds} is out of range for {n_subjects} subjects")
        if self.output_dim is not None and (
            not isinstance(self.output_dim, (int, np.integer)) or self.output_dim < 1
        ):
            raise ValueError(
                f"output_dim must be a positive integer or None; got {self.output_dim!r}"
            )
        check_svd_mode(self.svd)

    def fit(self, datasets: Sequence[object], y: object = None) -> Hyperalignment:
        """Derive the common space and each subject's transform into it.

        Parameters
        ----------
        datasets : sequence of array-like
            One (n_samples, n_voxels_i) array per subject, time-locked (same samples).
        y : ignored

        Returns
        -------
        Hyperalignment
            ``self``.
        """
        xs = check_datasets(datasets, "Hyperalignment")
        self._check_params(len(xs))
        n_sub, n = len(xs), xs[0].shape[0]
        n_vox = [x.shape[1] for x in xs]
        ref = int(np.argmax(n_vox)) if self.ref_ds is None else int(self.ref_ds)
        if self.output_dim is not None and self.output_dim > min(n, n_vox[ref]):
            raise ValueError(
                f"output_dim={self.output_dim} exceeds min(n_samples, n_voxels[ref]) "
                f"= {min(n, n_vox[ref])}"
            )
        logger.info(
            "hyperalignment: %d subjects, %d samples, voxels %s, reference %d", n_sub, n, n_vox, ref
        )

        means = stds = None
        if self.zscore_all:
            means, stds = map(list, zip(*(zscore_stats(x) for x in xs), strict=True))
            xs = [(x - m) / s for x, m, s in zip(xs, means, stds, strict=True)]
        reg = None
        if self.alpha < 1:
            reg = [_regulariser(x, float(self.alpha)) for x in xs]
            xs = [r[2] for r in reg]
        sides = [Side(x, True, f"subject {i}") for i, x in enumerate(xs)]

        total = (n_sub - 1) + self.level2_niter * n_sub + n_sub
        with tqdm(total=total, desc="hyperalignment", unit="fit", disable=not self.verbose) as bar:
            template, residuals = self._levels_1_2(xs, sides, ref, bar)
            bar.set_postfix_str("level 3")
            final = []
            tgt = Side(template, True, "common space")
            for side in sides:
                fac = fit_factors(side, tgt, reflection=self.reflection, svd=self.svd)
                proj = fac.projection(side, tgt, self.scaling)
                final.append((proj, tgt.mean - side.mean @ proj, fac.scale(side, tgt)))
                bar.update()

        projections = [f[0] for f in final]
        offsets = [f[1] for f in final]
        components = None
        if self.output_dim is not None:  # PyMVPA: SVDMapper on the mean of the mapped data
            mapped_mean = np.mean(
                [x @ p + o for x, p, o in zip(xs, projections, offsets, strict=True)], axis=0
            )
            centre = mapped_mean.mean(axis=0)  # = the template's mean
            _, _, vh = np.linalg.svd(mapped_mean - centre, full_matrices=False)  # as PyMVPA
            components = np.ascontiguousarray(vh[: self.output_dim].T)
            # PyMVPA's final projection centres on the mean of the first data it maps (the mapped
            # training data when those are mapped first); here always on the training mean.
            template = (template - centre) @ components
            projections = [p @ components for p in projections]
            offsets = [(o - centre) @ components for o in offsets]
        if reg is not None:  # fold the regulariser in: z @ W @ P = z @ (V diag(w) (V^T P))
            projections = [
                basis @ (w[:, None] * (basis.T @ p))
                for (basis, w, _), p in zip(reg, projections, strict=True)
            ]

        self.n_voxels_ = n_vox
        self.ref_ds_ = ref
        self.means_, self.stds_ = means, stds
        self.projections_ = projections
        self.offsets_ = offsets
        self.scales_ = np.array([f[2] for f in final])
        self.template_ = template
        self.components_ = components
        self.training_residuals_ = residuals
        logger.info(
            "hyperalignment done: common space %s, final residuals %s",
            template.shape,
            np.round(residuals[-1], 3).tolist(),
        )
        return self

    def _align(self, side: Side, target: np.ndarray) -> np.ndarray:
        """Procrustes-align one subject to ``target``; return its aligned training data."""
        tgt = Side(target, True, "common space")
        fac = fit_factors(side, tgt, reflection=self.reflection, svd=self.svd)
        out = fac.project_source(side, tgt, self.scaling)
        return zscore(out) if self.zscore_common else out

    def _levels_1_2(
        self, xs: list[np.ndarray], sides: list[Side], ref: int, bar: tqdm
    ) -> tuple[np.ndarray, np.ndarray]:
        n_sub = len(xs)
        residuals = np.zeros((1 + self.level2_niter, n_sub))
        common = xs[ref]
        if self.zscore_common and not self.zscore_all:
            common = zscore(common)
        mapped = list(xs)  # the reference stays as it is, as in PyMVPA
        w = float(self.combiner1)
        bar.set_postfix_str("level 1")
        for i in range(n_sub):
            if i == ref:
                continue
            aligned = self._align(sides[i], common)
            mapped[i] = aligned
            residuals[0, i] = np.linalg.norm(aligned - common)
            common = w * aligned + (1.0 - w) * common
            if self.zscore_common:
                common = zscore(common)
            logger.debug("level 1: subject %d residual %.4g", i, residuals[0, i])
            bar.update()
        common = np.mean(mapped, axis=0)
        for it in range(self.level2_niter):
            bar.set_postfix_str(f"level 2 ({it + 1}/{self.level2_niter})")
            for i in range(n_sub):
                loo = (common * n_sub - mapped[i]) / (n_sub - 1)
                if self.zscore_common:
                    loo = zscore(loo)
                mapped[i] = self._align(sides[i], loo)
                residuals[1 + it, i] = np.linalg.norm(mapped[i] - common)
                logger.debug(
                    "level 2 pass %d: subject %d residual %.4g", it, i, residuals[1 + it, i]
                )
                bar.update()
            common = np.mean(mapped, axis=0)
        if self.zscore_common:
            common = zscore(common)
        return common, residuals

    def _subject_affine(
        self, subject: int
    ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray, np.ndarray | None]:
        if self.means_ is None:
            return None, None, self.projections_[subject], self.offsets_[subject]
        return (
            self.means_[subject],
            self.stds_[subject],
            self.projections_[subject],
            self.offsets_[subject],
        )

    def _validate_fitted(self) -> None:
        """Check the fitted attributes are consistent (used after loading from disk)."""
        n = len(self.n_voxels_)
        k = self.template_.shape[1]
        if len(self.projections_) != n or len(self.offsets_) != n:
            raise ValueError("projections_/offsets_ do not match n_voxels_")
        for i, (p, o) in enumerate(zip(self.projections_, self.offsets_, strict=True)):
            if p.shape != (self.n_voxels_[i], k) or o.shape != (k,):
                raise ValueError(f"subject {i}: projection/offset shapes do not match")
        for stats in (self.means_, self.stds_):
            if stats is not None and [s.shape for s in stats] != [(v,) for v in self.n_voxels_]:
                raise ValueError("means_/stds_ do not match n_voxels_")
        if (self.means_ is None) != (self.stds_ is None):
            raise ValueError("means_ and stds_ must both be present or both absent")
