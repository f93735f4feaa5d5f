"""Online preprocessing of one participant's volumes as they arrive: pure logic, no LSL, no bus.

The acquire node hands each participant's new volumes (and, when a scanner bridge sends them, its
motion samples) to a :class:`StreamCleaner`; the volumes it gives back, preprocessed by
:class:`bci.preprocess.VolumePreprocessor` (censored ones all NaN), are what the trial cutter
cuts. The same object runs live, in a replay and offline, so calibration and decoding see the
same preprocessing. Times are plain floats on one clock (the LSL clock in the acquire node).

Runs. Every statistic of the preprocessing is per run. A run begins at the stream's first volume,
at a volume that follows a pause longer than :data:`RUN_GAP_PERIODS` volume periods (a scanner
acquires nothing between runs), and at a run start the display's ``run`` marker declared
(:meth:`StreamCleaner.declare_run`, for runs without a pause between them; a declared start
within :data:`RUN_GAP_PERIODS` periods of the current run's first volume is that run's, e.g. a
free-running display's start, a little after the scanner's first volume). The pause rule alone
decides for runs with a pause, so the boundaries do not depend on when a marker arrives: a replay
at any speed cuts the runs where the live session did. The ``k``-th run's scheduled length (the
session's ``[[runs]]``, :func:`bci.nodes.runs.plan_runs`) sets the DCT horizon of its drift
regressors.

Motion. With a motion stream, a volume waits for the motion sample with its time stamp (within
the tolerance). If a later motion sample comes first, or none within :data:`MOTION_WAIT_S` of
the volume's arrival, its motion is unknown: NaN, which censors it (reason ``motion``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bci.config import SessionConfig
from bci.preprocess import PreprocessSettings, VolumePreprocessor

RUN_GAP_PERIODS = 3.0
"""A pause longer than this many volume periods between two volumes begins a new run."""
MOTION_WAIT_S = 2.0
"""A volume waits at most this long (after its arrival) for its motion sample."""
N_MOTION = 6


@dataclass(frozen=True)
class CensoredVolume:
    """A volume the preprocessing left out: its time stamp and the reason."""

    time: float
    reason: str


class StreamCleaner:
    """Preprocesses one participant's volumes a run at a time (see the module docstring).

    Parameters
    ----------
    preprocessor : VolumePreprocessor
        The participant's preprocessor (``tr_s`` in scanner seconds).
    period_s : float
        The volume period on this clock (TR / time scale).
    run_volumes : sequence of int
        Scheduled volumes of the session's runs, in order (the DCT horizon of each).
    with_motion : bool
        Whether a motion sample comes with every volume.
    tolerance_s : float
        Time stamps this close are the same volume's (a volume and its motion sample; a volume and
        a declared run start).
    motion_wait_s : float
        See :data:`MOTION_WAIT_S`.
    """

    def __init__(
        self,
        preprocessor: VolumePreprocessor,
        period_s: float,
        run_volumes: Sequence[int] = (),
        *,
        with_motion: bool = False,
        tolerance_s: float = 0.0,
        motion_wait_s: float = MOTION_WAIT_S,
    ) -> None:
        if not period_s > 0 or tolerance_s < 0 or motion_wait_s < 0:
            raise ValueError(
                f"need period_s > 0, tolerance_s >= 0, motion_wait_s >= 0; got {period_s}, "
                f"{tolerance_s}, {motion_wait_s}"
            )
        self.pre = preprocessor
        self.period_s, self.tol = float(period_s), float(tolerance_s)
        self.run_volumes = [int(v) for v in run_volumes]
        self.with_motion = bool(with_motion)
        self.motion_wait_s = float(motion_wait_s)
        self._waiting: deque[tuple[float, np.ndarray, float]] = deque()
        self._motion: deque[tuple[float, np.ndarray]] = deque()
        self._declared: list[float] = []
        self._last: float | None = None
        self._run_start = -np.inf
        #: Volumes whose motion sample never came (censored as ``motion``).
        self.motion_unknown = 0

    def declare_run(self, start: float) -> None:
        """A run marker: a run begins with the volume stamped ``start``."""
        self._declared.append(float(start))

    def add_volumes(self, data: np.ndarray, times: np.ndarray, arrival: float) -> None:
        """Volumes received at ``arrival`` (``(n, n_voxels)`` and their ``(n,)`` stamps)."""
        data = np.asarray(data)
        for t, row in sorted(
            zip(np.asarray(times, dtype=float).tolist(), data, strict=True), key=_first
        ):
            self._waiting.append((t, row, float(arrival)))

    def add_motion(self, rows: np.ndarray, times: np.ndarray) -> None:
        """Motion samples (their first six channels: mm and degrees) and their stamps."""
        rows = np.asarray(rows, dtype=np.float64).reshape(len(times), -1)
        if rows.shape[1] < N_MOTION:
            raise ValueError(f"motion samples need {N_MOTION} channels, got {rows.shape[1]}")
        for t, row in sorted(
            zip(np.asarray(times, dtype=float).tolist(), rows, strict=True), key=_first
        ):
            self._motion.append((t, row[:N_MOTION].copy()))

    @property
    def n_waiting(self) -> int:
        """Volumes received but not preprocessed yet (waiting for their motion)."""
        return len(self._waiting)

    def ready(self, now: float) -> tuple[np.ndarray, np.ndarray, list[CensoredVolume]]:
        """Preprocess every volume that can be; return them.

        Parameters
        ----------
        now : float
            The current time (for giving up on a motion sample).

        Returns
        -------
        data : np.ndarray
            ``(n, n_voxels)`` float32 preprocessed volumes, NaN rows for censored ones.
        times : np.ndarray
            ``(n,)`` their stamps.
        censored : list of CensoredVolume
            The censored ones among them.
        """
        rows, times, censored = [], [], []
        while self._waiting:
            t, volume, arrival = self._waiting[0]
            motion = None
            if self.with_motion:
                motion = self._motion_for(t)
                if motion is None:
                    if now - arrival < self.motion_wait_s:
                        break
                    motion = np.full(N_MOTION, np.nan)
                    self.motion_unknown += 1
            self._waiting.popleft()
            self._maybe_new_run(t)
            clean = self.pre.update(volume, motion)
            rows.append(clean.values)
            times.append(t)
            if clean.censored:
                censored.append(CensoredVolume(t, str(clean.reason)))
        data = np.stack(rows) if rows else np.empty((0, self.pre.n_voxels), np.float32)
        return data, np.asarray(times, dtype=np.float64), censored

    def _motion_for(self, t: float) -> np.ndarray | None:
        """The motion sample stamped ``t``; NaN if a later one came first; None to wait."""
        while self._motion and self._motion[0][0] < t - self.tol:
            self._motion.popleft()  # a motion sample without its volume
        if not self._motion:
            return None
        stamp, row = self._motion[0]
        if stamp <= t + self.tol:
            self._motion.popleft()
            return row
        self.motion_unknown += 1
        return np.full(N_MOTION, np.nan)

    def _maybe_new_run(self, t: float) -> None:
        last = self._last
        self._last = t
        near = RUN_GAP_PERIODS * self.period_s
        if last is not None and t - last <= near:
            declared = [s for s in self._declared if last < s - self.tol <= t]
            if not any(s - self._run_start > near for s in declared):
                return
        self._run_start = t
        k = self.pre.n_runs
        scheduled = self.run_volumes[k] if k < len(self.run_volumes) else None
        self.pre.start_run(n_volumes=scheduled, motion=self.with_motion)

    def summary(self) -> dict[str, Any]:
        """The preprocessor's counts (runs, volumes, censored per reason) and the motion's."""
        return {
            **self.pre.summary(),
            "motion": self.with_motion,
            "motion_unknown": self.motion_unknown,
        }


def make_cleaner(
    config: SessionConfig,
    n_voxels: int,
    run_volumes: Sequence[int],
    *,
    with_motion: bool,
    tolerance_s: float,
) -> StreamCleaner | None:
    """The cleaner a session config asks for, or None with ``[preprocess] method = "none"``."""
    settings = PreprocessSettings.from_config(dict(config.preprocess))
    if settings.method == "none":
        return None
    timing = config.timing
    pre = VolumePreprocessor(n_voxels, timing.tr_s, settings)
    period = timing.tr_s / timing.time_scale
    return StreamCleaner(pre, period, run_volumes, with_motion=with_motion, tolerance_s=tolerance_s)


def _first(item: tuple) -> float:
    return item[0]
