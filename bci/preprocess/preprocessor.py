"""Online, causal preprocessing of one stream's volumes, one volume at a time.

For each run (:meth:`VolumePreprocessor.start_run`), every volume passed to
:meth:`VolumePreprocessor.update` is

1. **censored** or kept (:mod:`bci.preprocess.censor`): a censored volume comes out as NaN with
   its reason and is not used by any of the steps below;
2. **detrended** by a cumulative GLM (:mod:`bci.preprocess.glm`) on a constant, a linear term,
   the DCT cosines below the high-pass cutoff (:mod:`bci.preprocess.drift`) and, when the run has
   them, the six motion parameters: the volume minus the fit of the run so far;
3. **high-passed** (``highpass = "ema"``, the default): the residual minus its run's local level,
   an exponential moving average (:mod:`bci.preprocess.highpass`), for the drift the
   whole-run fit misses at the newest volume;
4. **freed of the global signal** (``global_signal``, off by default): each voxel's fit over the
   run on the volumes' mean, for drift that every voxel shares
   (:mod:`bci.preprocess.global_signal`);
5. **scaled** by the run's running statistics (:mod:`bci.preprocess.scaling`).

Only the run's past and present volumes are used, and the cost per volume is constant. With
``method = "none"`` volumes pass through as float32, unchanged and never censored.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from bci.preprocess.censor import REASONS, Censor
from bci.preprocess.drift import DEFAULT_HORIZON_S, DriftBasis
from bci.preprocess.framewise import framewise_displacement
from bci.preprocess.glm import CumulativeGLM
from bci.preprocess.global_signal import GlobalSignalRegression
from bci.preprocess.highpass import ExponentialHighPass
from bci.preprocess.scaling import RunningScaler
from bci.preprocess.settings import PreprocessSettings

N_MOTION = 6


@dataclass(frozen=True)
class CleanVolume:
    """One preprocessed volume.

    Attributes
    ----------
    values : np.ndarray
        ``(n_voxels,)`` float32; all NaN when ``censored``.
    censored : bool
        Whether the volume is left out.
    reason : str or None
        ``"non-finite"``, ``"motion"`` or ``"intensity"`` when censored.
    fd_mm : float or None
        Framewise displacement from the previous volume, when motion was given.
    """

    values: np.ndarray
    censored: bool
    reason: str | None = None
    fd_mm: float | None = None


class VolumePreprocessor:
    """Causal per-volume preprocessing of one participant's stream.

    Parameters
    ----------
    n_voxels : int
        Voxels per volume.
    tr_s : float
        Repetition time in seconds (scanner seconds).
    settings : PreprocessSettings
        The ``[preprocess]`` settings.

    Examples
    --------
    >>> pre = VolumePreprocessor(1024, 2.0, PreprocessSettings())
    >>> pre.start_run(n_volumes=300)
    >>> clean = pre.update(volume)  # doctest: +SKIP
    """

    def __init__(self, n_voxels: int, tr_s: float, settings: PreprocessSettings) -> None:
        if n_voxels < 1 or not tr_s > 0:
            raise ValueError(f"need n_voxels >= 1 and tr_s > 0, got {n_voxels}, {tr_s}")
        self.n_voxels, self.tr_s, self.settings = int(n_voxels), float(tr_s), settings
        #: Censored volumes per reason, over all runs.
        self.censored: Counter[str] = Counter({r: 0 for r in REASONS})
        #: Volumes seen, over all runs.
        self.n_volumes = 0
        #: Runs started.
        self.n_runs = 0
        self._run_started = False
        self._censor: Censor | None = None

    def start_run(self, n_volumes: int | None = None, motion: bool = False) -> None:
        """Begin a run: the next volume is its first; every statistic starts afresh (but the
        intensity censoring's history of jumps, see :mod:`bci.preprocess.censor`).

        Parameters
        ----------
        n_volumes : int or None
            The run's scheduled length, which sets the DCT horizon (unless ``horizon_s`` is set);
            None: ``horizon_s`` or :data:`~bci.preprocess.drift.DEFAULT_HORIZON_S`.
        motion : bool
            Whether every volume of the run comes with motion parameters (then, with
            ``motion_regressors``, they enter the GLM).
        """
        s = self.settings
        horizon_s = s.horizon_s or (n_volumes * self.tr_s if n_volumes else DEFAULT_HORIZON_S)
        horizon = max(1, round(horizon_s / self.tr_s))
        self._basis = DriftBasis(horizon, self.tr_s, s.cutoff_s)
        self._with_motion = bool(motion)
        penalty = [0.0] + [s.ridge] * (self._basis.n_regressors - 1)  # constant: never
        penalty += [0.0] * (N_MOTION if motion and s.motion_regressors else 0)
        self._glm = CumulativeGLM(penalty, self.n_voxels)
        use_ema = s.highpass == "ema" and 0 < s.cutoff_s < float("inf")
        self._highpass = (
            ExponentialHighPass(self.tr_s, s.cutoff_s, self.n_voxels) if use_ema else None
        )
        self._global = GlobalSignalRegression(self.n_voxels) if s.global_signal else None
        self._scaler = RunningScaler(s.scaling, self.n_voxels)
        if self._censor is None:
            self._censor = Censor(s.fd_threshold_mm, s.intensity_z)
        else:
            self._censor.new_run()  # the participant's intensity jumps so far stay known
        self._index = 0
        self._last_motion: np.ndarray | None = None
        self.n_runs += 1
        self._run_started = True

    @property
    def run_volumes(self) -> int:
        """Volumes of the current run so far."""
        return self._index if self._run_started else 0

    def update(self, volume: ArrayLike, motion: ArrayLike | None = None) -> CleanVolume:
        """Preprocess the run's next volume.

        Parameters
        ----------
        volume : array_like
            ``(n_voxels,)`` the volume as acquired.
        motion : array_like or None
            ``(6,)`` its motion parameters (mm, degrees, against the run's reference volume);
            required when the run was started with ``motion=True``. NaN (the bridge could not
            estimate it) censors the volume as ``"motion"``.

        Returns
        -------
        CleanVolume
            The cleaned volume and whether it is censored.
        """
        y = np.asarray(volume, dtype=np.float64).reshape(-1)
        if y.size != self.n_voxels:
            raise ValueError(f"volume has {y.size} voxels, expected {self.n_voxels}")
        if self.settings.method == "none":
            self.n_volumes += 1
            return CleanVolume(y.astype(np.float32), False)
        if not self._run_started:
            self.start_run()
        m = self._motion(motion)
        fd = None
        unknown_motion = m is not None and not np.all(np.isfinite(m))
        if m is not None and not unknown_motion:
            fd = 0.0 if self._last_motion is None else framewise_displacement(self._last_motion, m)
            self._last_motion = m
        index = self._index
        self._index += 1
        self.n_volumes += 1
        reason = "motion" if unknown_motion else self._censor.check(y, fd)
        if reason is not None:
            self.censored[reason] += 1
            return CleanVolume(np.full(self.n_voxels, np.nan, np.float32), True, reason, fd)
        x = self._basis.row(index)
        if m is not None and self._glm.n_regressors > x.size:
            x = np.concatenate([x, m])
        residual = self._glm.update(x, y, self._active(x.size))
        if self._highpass is not None:
            residual = self._highpass.filter(residual)
        if self._global is not None:
            residual = self._global.remove(residual)
        values = self._scaler.scale(y, residual).astype(np.float32)
        return CleanVolume(values, False, None, fd)

    def process_run(
        self, volumes: ArrayLike, motion: ArrayLike | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """A whole recorded run through :meth:`start_run` and :meth:`update` (replay, offline).

        Parameters
        ----------
        volumes : array_like
            ``(n_volumes, n_voxels)`` the run in acquisition order.
        motion : array_like or None
            ``(n_volumes, 6)`` motion parameters, if known.

        Returns
        -------
        values : np.ndarray
            ``(n_volumes, n_voxels)`` float32, NaN rows for censored volumes.
        censored : np.ndarray
            ``(n_volumes,)`` bool.
        """
        data = np.asarray(volumes)
        if data.ndim != 2:
            raise ValueError(f"volumes must be 2-D (n_volumes, n_voxels), got shape {data.shape}")
        moves = None if motion is None else np.asarray(motion, dtype=np.float64).reshape(-1, 6)
        if moves is not None and len(moves) != len(data):
            raise ValueError(f"{len(moves)} motion rows for {len(data)} volumes")
        self.start_run(n_volumes=len(data), motion=moves is not None)
        out = [self.update(v, None if moves is None else moves[i]) for i, v in enumerate(data)]
        values = np.stack([o.values for o in out]) if out else np.empty((0, self.n_voxels))
        return values.astype(np.float32), np.array([o.censored for o in out], dtype=bool)

    def _active(self, n_regressors: int) -> np.ndarray:
        s = self.settings
        n_cos = self._basis.n_active_cosines(self._glm.n_used + 1, self.tr_s, s.cutoff_s)
        active = np.ones(n_regressors, dtype=bool)
        active[2 + n_cos : self._basis.n_regressors] = False
        return active

    def _motion(self, motion: ArrayLike | None) -> np.ndarray | None:
        if motion is None:
            if self._with_motion:
                raise ValueError("this run was started with motion=True: every volume needs it")
            return None
        m = np.asarray(motion, dtype=np.float64).reshape(-1)
        if m.shape != (N_MOTION,):
            raise ValueError(f"motion must be 6 numbers (mm, degrees), got {m.tolist()}")
        return m

    def summary(self) -> dict[str, object]:
        """Counts for a session summary: runs, volumes, censored volumes per reason."""
        return {
            "method": self.settings.method,
            "runs": self.n_runs,
            "volumes": self.n_volumes,
            "censored": int(sum(self.censored.values())),
            "censored_by_reason": dict(self.censored),
        }
