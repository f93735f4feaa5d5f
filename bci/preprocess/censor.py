"""Which volumes to leave out: non-finite values, head motion, global intensity jumps.

A volume is censored, with the first reason that applies:

``non-finite``
    Any voxel is NaN or infinite (a broken reconstruction, a bad export).
``motion``
    Its framewise displacement (:mod:`bci.preprocess.framewise`) exceeds ``fd_threshold_mm``.
``intensity``
    Its global intensity (the mean over voxels) jumps away from the last accepted volume's by more
    than ``intensity_z`` robust standard deviations: ``|j - median| / (1.4826 * MAD)`` over the
    accepted jumps so far (the last :data:`JUMP_HISTORY` of them, so the cost per volume stays
    constant), once :data:`MIN_JUMPS` are known. The jumps of the participant's earlier runs
    count too (:meth:`Censor.new_run` keeps them; a jump is never taken across two runs): a
    short run's first jumps alone give too rough a spread, and spurious censoring. Comparing
    with the last *accepted* volume flags a spike but not the volume after it; after
    :data:`MAX_CONSECUTIVE` intensity censorings in a row the new level is accepted (a step
    change, not a spike).

A threshold of 0 turns its test off.
"""

from __future__ import annotations

from collections import deque

import numpy as np

JUMP_HISTORY = 128
"""Accepted jumps the robust z-score is computed from."""
MIN_JUMPS = 20
"""Intensity censoring starts once this many jumps are known (at the start of a run the evoked
responses are still rising: a spread from fewer jumps is too narrow, and censors them)."""
MAX_CONSECUTIVE = 3
"""After this many intensity-censored volumes in a row, the new level is accepted."""
MAD_TO_SD = 1.4826
"""Standard deviation of a normal distribution per unit of median absolute deviation."""

REASONS = ("non-finite", "motion", "intensity")


class Censor:
    """The censoring tests of one run.

    Parameters
    ----------
    fd_threshold_mm : float
        Framewise displacement above which a volume is censored (0: off).
    intensity_z : float
        Robust z of the global intensity jump above which a volume is censored (0: off).
    """

    def __init__(self, fd_threshold_mm: float, intensity_z: float) -> None:
        if fd_threshold_mm < 0 or intensity_z < 0:
            raise ValueError(
                f"need fd_threshold_mm >= 0 and intensity_z >= 0, got "
                f"{fd_threshold_mm}, {intensity_z}"
            )
        self.fd_threshold_mm = float(fd_threshold_mm)
        self.intensity_z = float(intensity_z)
        self._reference: float | None = None
        self._jumps: deque[float] = deque(maxlen=JUMP_HISTORY)
        self._in_a_row = 0

    def new_run(self) -> None:
        """The next volume begins a new run: no jump to it; the known jumps are kept."""
        self._reference = None
        self._in_a_row = 0

    def check(self, volume: np.ndarray, fd_mm: float | None = None) -> str | None:
        """The reason to censor ``volume``, or None to keep it.

        Parameters
        ----------
        volume : np.ndarray
            ``(n_voxels,)`` the raw volume.
        fd_mm : float or None
            Its framewise displacement, when motion is known.
        """
        if not np.all(np.isfinite(volume)):
            return "non-finite"
        if self.fd_threshold_mm and fd_mm is not None and fd_mm > self.fd_threshold_mm:
            return "motion"
        level = float(np.mean(volume, dtype=np.float64))
        if self._reference is None:
            self._reference = level
            return None
        jump = level - self._reference
        if self.intensity_z and len(self._jumps) >= MIN_JUMPS:
            jumps = np.fromiter(self._jumps, dtype=np.float64)
            centre = float(np.median(jumps))
            spread = MAD_TO_SD * float(np.median(np.abs(jumps - centre)))
            if spread > 0 and abs(jump - centre) > self.intensity_z * spread:
                self._in_a_row += 1
                if self._in_a_row <= MAX_CONSECUTIVE:
                    return "intensity"
        self._in_a_row = 0
        self._jumps.append(jump)
        self._reference = level
        return None
