"""Virtual fMRI participants whose voxel responses are a linear, subject-specific mix of a latent.

Generative model, for a stimulus latent ``z ~ N(0, I_d)`` (``d = latent_dim``) and subject ``i``::

    c   = z @ B                          common functional space, B: (d, n_common), B_jk ~ N(0, 1/d)
    x_i = (c @ R_i) * g_i + e_i          voxels, R_i: (n_common, n_voxels_i) with orthonormal rows,
                                         g_i > 0 per-voxel gains (lognormal),
                                         e_i ~ N(0, diag(noise_var_i)) independent per trial

so ``x_i = z @ W_i + e_i`` with ``W_i = B @ R_i * g_i``: a linear decoder is the right model, and
the subjects are functionally misaligned until the rotations ``R_i`` are undone (hyperalignment).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, DTypeLike
from scipy.fft import dct, idct

SeedLike = int | np.random.Generator | None

#: Default per-voxel SNR: with 4096 voxels, latent_dim 32 it gives a Bayes-optimal latent
#: correlation of about 0.75 for one subject and 0.85 for two (see the module report).
DEFAULT_SNR = 0.01


class _StructuredOrthogonal:
    """The map ``x -> x @ Q`` for a random ``n x n`` orthogonal ``Q``, applied in O(n log n).

    ``Q`` is a product of ``rounds`` stages, each a random sign flip, a random permutation and the
    orthonormal DCT-II; every stage is orthogonal, so ``Q`` is exactly orthogonal (to rounding).
    """

    def __init__(self, n: int, rng: np.random.Generator, rounds: int = 3) -> None:
        self.n = n
        self.signs = rng.choice(np.array([-1.0, 1.0]), size=(rounds, n))
        self.perms = np.stack([rng.permutation(n) for _ in range(rounds)])
        self.inv_perms = np.argsort(self.perms, axis=1)

    def forward(self, x: np.ndarray) -> np.ndarray:
        for s, p in zip(self.signs, self.perms, strict=True):
            x = dct((x * s)[..., p], type=2, norm="ortho", axis=-1)
        return x

    def inverse(self, x: np.ndarray) -> np.ndarray:
        for s, p in zip(self.signs[::-1], self.inv_perms[::-1], strict=True):
            x = idct(x, type=2, norm="ortho", axis=-1)[..., p] * s
        return x


def check_latents(latents: ArrayLike, latent_dim: int) -> np.ndarray:
    """Validate a latent batch and return it as a float64 ``(n, latent_dim)`` array.

    Parameters
    ----------
    latents : array_like
        ``(n, latent_dim)`` latents.
    latent_dim : int
        Expected width.

    Returns
    -------
    np.ndarray
        The latents as float64.
    """
    z = np.asarray(latents, dtype=np.float64)
    if z.ndim != 2:
        raise ValueError(f"latents must be 2-D (n, latent_dim), got shape {z.shape}")
    if z.shape[1] != latent_dim:
        raise ValueError(f"latents have width {z.shape[1]}, expected latent_dim={latent_dim}")
    if not np.all(np.isfinite(z)):
        raise ValueError("latents contain NaN or infinite values")
    return z


class SimulatedCohort:
    """Virtual participants for HYPER: voxel responses linear in the stimulus latent.

    See the module docstring for the generative model. **SNR** is defined per voxel as the variance
    of the voxel's noise-free response over stimuli ``z ~ N(0, I)`` divided by its noise variance:
    ``snr = g_v**2 * ||W0[:, v]||**2 / noise_var_v`` with ``W0 = B @ R_i``; every voxel of every
    subject has this same SNR, so the gains scale signal and noise together.

    Parameters
    ----------
    n_subjects : int
        Number of participants.
    n_voxels : int or sequence of int
        Voxels per subject (one int for all, or one per subject).
    latent_dim : int
        Width of the stimulus latents.
    n_common : int or None
        Dimension of the common functional space; default (and maximum) the smallest voxel count.
    snr : float
        Per-voxel signal-to-noise variance ratio of a single trial response.
    gain_sigma : float
        Log-standard deviation of the lognormal per-voxel gains (``g = exp(gain_sigma * N(0, 1))``).
    random_state : int, numpy Generator or None
        Seed for the parameters; the default noise stream of :meth:`trial_responses` derives
        from it.
    """

    def __init__(
        self,
        n_subjects: int = 2,
        n_voxels: int | Sequence[int] = 4096,
        latent_dim: int = 32,
        n_common: int | None = None,
        snr: float = DEFAULT_SNR,
        gain_sigma: float = 0.5,
        random_state: SeedLike = None,
    ) -> None:
        if n_subjects < 1:
            raise ValueError(f"n_subjects must be >= 1, got {n_subjects}")
        voxels = (
            [int(n_voxels)] * n_subjects if np.isscalar(n_voxels) else [int(v) for v in n_voxels]
        )
        if len(voxels) != n_subjects:
            raise ValueError(f"n_voxels has {len(voxels)} entries for {n_subjects} subjects")
        if min(voxels) < 1 or latent_dim < 1:
            raise ValueError(f"need n_voxels >= 1 and latent_dim >= 1, got {voxels}, {latent_dim}")
        n_common = min(voxels) if n_common is None else int(n_common)
        if not 1 <= n_common <= min(voxels):
            raise ValueError(
                f"n_common must be in [1, {min(voxels)}] (smallest voxel count), got {n_common}"
            )
        if not snr > 0 or gain_sigma < 0:
            raise ValueError(
                f"need snr > 0 and gain_sigma >= 0, got snr={snr}, gain_sigma={gain_sigma}"
            )

        rng = np.random.default_rng(random_state)
        self.n_subjects = n_subjects
        self.n_voxels = voxels
        self.latent_dim = latent_dim
        self.n_common = n_common
        self.snr = float(snr)
        self.gain_sigma = float(gain_sigma)
        #: ``(latent_dim, n_common)`` latent-to-common-space map ``B``.
        self.common_map = rng.standard_normal((latent_dim, n_common)) / np.sqrt(latent_dim)
        self._rot: list[_StructuredOrthogonal] = []
        self._rows: list[np.ndarray] = []
        #: Per-subject ``(n_voxels_i,)`` positive voxel gains ``g_i``.
        self.gains: list[np.ndarray] = []
        #: Per-subject ``(n_voxels_i,)`` noise variances.
        self.noise_var: list[np.ndarray] = []
        self._loadings: list[np.ndarray] = []
        for n in voxels:
            rot = _StructuredOrthogonal(n, rng)
            rows = np.sort(rng.choice(n, size=n_common, replace=False))
            gain = np.exp(self.gain_sigma * rng.standard_normal(n))
            self._rot.append(rot)
            self._rows.append(rows)
            self.gains.append(gain)
            w0 = self._rotate(self.common_map, len(self._rot) - 1)
            self._loadings.append(w0 * gain)
            self.noise_var.append(gain**2 * np.sum(w0**2, axis=0) / self.snr)
        self._noise_rng = np.random.default_rng(rng.integers(2**63))

    # -- parameters -----------------------------------------------------------------------------

    def _subject(self, subject: int) -> int:
        if isinstance(subject, bool) or not 0 <= subject < self.n_subjects:
            raise IndexError(
                f"subject index {subject} out of range for a cohort of {self.n_subjects} subjects"
            )
        return int(subject)

    def _rotate(self, common: np.ndarray, i: int) -> np.ndarray:
        full = np.zeros(common.shape[:-1] + (self.n_voxels[i],))
        full[..., self._rows[i]] = common
        return self._rot[i].forward(full)

    def evoked_std(self, subject: int) -> np.ndarray:
        """Standard deviation over stimuli of each voxel's noise-free response ``z @ W_i``.

        The unit the simulator's confounds are given in (``sqrt(snr * noise_var)``).

        Parameters
        ----------
        subject : int
            Subject index.

        Returns
        -------
        np.ndarray
            ``(n_voxels_i,)`` float64.
        """
        return np.sqrt(self.snr * self.noise_var[self._subject(subject)])

    def rotation(self, subject: int) -> np.ndarray:
        """Materialise subject ``subject``'s rotation ``R_i`` (costs O(n_voxels^2 log n_voxels)).

        Parameters
        ----------
        subject : int
            Subject index.

        Returns
        -------
        np.ndarray
            ``(n_common, n_voxels_i)`` float64 with orthonormal rows.
        """
        i = self._subject(subject)
        return self._rotate(np.eye(self.n_common), i)

    def loadings(self, subject: int) -> np.ndarray:
        """The effective encoding ``W_i = B @ R_i * g_i`` so that ``signal = z @ W_i``.

        Parameters
        ----------
        subject : int
            Subject index.

        Returns
        -------
        np.ndarray
            ``(latent_dim, n_voxels_i)`` float64 (a copy).
        """
        return self._loadings[self._subject(subject)].copy()

    def mix(self, common: ArrayLike, subject: int) -> np.ndarray:
        """Map common-space patterns to a subject's voxels without noise: ``(c @ R_i) * g_i``.

        Parameters
        ----------
        common : array_like
            ``(n, n_common)`` common-space patterns.
        subject : int
            Subject index.

        Returns
        -------
        np.ndarray
            ``(n, n_voxels_i)`` float64.
        """
        i = self._subject(subject)
        return self._rotate(np.asarray(common, dtype=np.float64), i) * self.gains[i]

    def unmix(self, responses: ArrayLike, subject: int) -> np.ndarray:
        """Undo a subject's gains and rotation: ``(x / g_i) @ R_i.T`` (the true hyperalignment).

        Parameters
        ----------
        responses : array_like
            ``(n, n_voxels_i)`` voxel patterns of that subject.
        subject : int
            Subject index.

        Returns
        -------
        np.ndarray
            ``(n, n_common)`` float64 common-space patterns.
        """
        i = self._subject(subject)
        x = np.asarray(responses, dtype=np.float64) / self.gains[i]
        return self._rot[i].inverse(x)[..., self._rows[i]]

    # -- data -----------------------------------------------------------------------------------

    def _subjects(self, subject: int | Sequence[int] | None) -> tuple[list[int], bool]:
        if subject is None:
            return list(range(self.n_subjects)), False
        if np.isscalar(subject):
            return [self._subject(subject)], True  # type: ignore[arg-type]
        return [self._subject(s) for s in subject], False  # type: ignore[union-attr]

    def signal(
        self, latents: ArrayLike, subject: int | Sequence[int] | None = None
    ) -> np.ndarray | list[np.ndarray]:
        """Noise-free responses ``z @ W_i`` (e.g. to feed :class:`bci.sim.bold.BoldStream`).

        Parameters
        ----------
        latents : array_like
            ``(n_trials, latent_dim)`` stimulus latents.
        subject : int, sequence of int or None
            One subject (returns an array) or several / all (returns a list).

        Returns
        -------
        np.ndarray or list of np.ndarray
            ``(n_trials, n_voxels_i)`` float32 per subject.
        """
        z = check_latents(latents, self.latent_dim)
        ids, single = self._subjects(subject)
        out = [(z @ self._loadings[i]).astype(np.float32) for i in ids]
        return out[0] if single else out

    def trial_responses(
        self,
        latents: ArrayLike,
        subject: int | Sequence[int] | None = None,
        seed: SeedLike = None,
    ) -> np.ndarray | list[np.ndarray]:
        """Trial-wise response patterns, as a GLM fitted per trial would estimate them.

        Each trial's pattern is ``z @ W_i`` plus fresh Gaussian noise with the voxel's variance;
        subjects' noises are independent.

        Parameters
        ----------
        latents : array_like
            ``(n_trials, latent_dim)`` stimulus latents (the same stimuli for every subject).
        subject : int, sequence of int or None
            One subject (returns an array) or several / all (returns a list).
        seed : int, numpy Generator or None
            Noise seed; ``None`` draws from the cohort's own noise stream (seeded by
            ``random_state``), so successive calls give fresh noise.

        Returns
        -------
        np.ndarray or list of np.ndarray
            ``(n_trials, n_voxels_i)`` float32 per subject.
        """
        z = check_latents(latents, self.latent_dim)
        ids, single = self._subjects(subject)
        rng = self._noise_rng if seed is None else np.random.default_rng(seed)
        out = []
        for i in ids:
            noise = rng.standard_normal((z.shape[0], self.n_voxels[i])) * np.sqrt(self.noise_var[i])
            out.append((z @ self._loadings[i] + noise).astype(np.float32))
        return out[0] if single else out

    # -- ceiling --------------------------------------------------------------------------------

    def bayes_optimal_latents(
        self,
        responses: ArrayLike | Sequence[ArrayLike],
        subjects: int | Sequence[int] | None = None,
        dtype: DTypeLike = np.float32,
    ) -> np.ndarray:
        """Posterior mean ``E[z | x]`` under the true model and the prior ``z ~ N(0, I)``.

        With ``P = I + sum_i W_i D_i^-1 W_i^T`` (D_i the diagonal noise covariance) the posterior
        mean is ``P^-1 sum_i W_i D_i^-1 x_i^T``: by the Woodbury identity this equals
        ``W^T (W W^T + D)^-1 x`` over the stacked voxels, but only a ``latent_dim`` square system
        is solved. This is the ceiling any decoder of these responses is measured against.

        Parameters
        ----------
        responses : array_like or sequence of array_like
            ``(n_trials, n_voxels_i)`` responses of one subject, or a list with one such array per
            subject in ``subjects`` (same trials, in the same order).
        subjects : int, sequence of int or None
            Which subjects the responses belong to; default: all subjects for a list, subject 0 for
            a single array.
        dtype : numpy dtype
            Output dtype (float64 for reference comparisons).

        Returns
        -------
        np.ndarray
            ``(n_trials, latent_dim)`` posterior means.
        """
        if isinstance(responses, np.ndarray) and responses.ndim == 2:
            xs = [responses]
            ids, _ = self._subjects(0 if subjects is None else subjects)
        else:
            xs = list(responses)  # type: ignore[arg-type]
            ids, _ = self._subjects(subjects)
        if len(xs) != len(ids):
            raise ValueError(f"got responses for {len(xs)} subjects but {len(ids)} subject ids")
        precision = np.eye(self.latent_dim)
        rhs = None
        for x, i in zip(xs, ids, strict=True):
            x = np.asarray(x, dtype=np.float64)
            if x.ndim != 2 or x.shape[1] != self.n_voxels[i]:
                n = self.n_voxels[i]
                raise ValueError(
                    f"responses of subject {i} have shape {x.shape}, expected (n, {n})"
                )
            if rhs is not None and x.shape[0] != rhs.shape[1]:
                raise ValueError(f"subject {i} has {x.shape[0]} trials, expected {rhs.shape[1]}")
            weighted = self._loadings[i] / self.noise_var[i]
            precision += weighted @ self._loadings[i].T
            term = weighted @ x.T
            rhs = term if rhs is None else rhs + term
        return np.linalg.solve(precision, rhs).T.astype(dtype)
