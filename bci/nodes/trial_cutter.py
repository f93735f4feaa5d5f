"""Cutting one response per trial out of buffered volumes: pure logic, no LSL, no bus.

Times are plain floats on one clock (the LSL clock in the acquire node). A trial's window is
half-open, ``[start, end)``, like :func:`bci.sim.bold.trial_window`; with a tolerance ``tol``
(timestamps carry clock-correction noise), a volume at time ``t`` is in the window when::

    start - tol <= t < end - tol

so a volume stamped (within ``tol``) exactly at the window start is inside, and one stamped
exactly at the window end is outside (it opens the next window of the same length).

A subject's window is **complete** once its buffer holds a volume at or past ``end - tol``: no
later volume can fall inside any more, because volumes arrive in time order. A stream with a
regular period ``p`` completes a window one volume earlier, as soon as it holds a volume at or
past ``end - tol - p`` (the next volume, ``p`` later, will be past the end). The response is the
mean of the window's volumes, optionally minus the mean of the volumes in ``[onset - baseline_s,
onset)``; a window with NaN/Inf, without volumes, or older than the buffered data gives a zero
pattern and a one-line ``bad`` reason, so the trial is still accounted for downstream.

Censored volumes. With ``skip_censored`` (online preprocessing is on, :mod:`bci.preprocess`), a
volume that is NaN in every voxel is one the preprocessing censored: it is left out of the mean
(and counted in :attr:`CutResponse.n_censored`), and the trial is bad only when every volume of
its window (or of its baseline) is censored.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Trial:
    """One stimulus presentation and the window its response is cut from.

    Attributes
    ----------
    trial : int
        Trial index from the marker.
    stimulus : str
        Stimulus id from the marker.
    phase : str
        ``"train"`` or ``"test"`` (whatever the marker said).
    onset : float
        Stimulus onset (the flip's time).
    start, end : float
        The window ``[start, end)``.
    known_at : float
        When the marker was received; a response is never ready before it.
    run_end : float
        When the trial's scanner run ends (its last volume's interval; inf when unknown): the
        window is cut from the run's own volumes, and is complete once the run's last volume
        is in even if the window reaches past it.
    """

    trial: int
    stimulus: str
    phase: str
    onset: float
    start: float
    end: float
    known_at: float = -math.inf
    run_end: float = math.inf


@dataclass(frozen=True)
class CutResponse:
    """A cut trial response of one subject.

    Attributes
    ----------
    trial : Trial
        The trial.
    subject : int
        The subject (the key of its buffer).
    pattern : np.ndarray
        ``(n_channels,)`` float32; zeros when ``bad`` is set.
    arrival : float
        When everything needed for this response had arrived: the arrival time of the volume
        that completed the window, or the marker's arrival if that was later.
    n_volumes : int
        Volumes averaged (those in the window, censored ones left out).
    bad : str or None
        None for a usable response, else a one-line reason.
    n_censored : int
        Censored volumes of the window that were left out.
    """

    trial: Trial
    subject: int
    pattern: np.ndarray
    arrival: float
    n_volumes: int
    bad: str | None = None
    n_censored: int = 0


class VolumeBuffer:
    """The recent volumes of one stream, in time order.

    Parameters
    ----------
    n_channels : int
        Channels (voxels) per volume.
    period_s : float or None
        Regular sampling period, if the stream has one (lets windows complete one volume early).
    """

    def __init__(self, n_channels: int, period_s: float | None = None) -> None:
        self.n_channels = int(n_channels)
        self.period_s = period_s
        self.times = np.empty(0, dtype=np.float64)
        self.data = np.empty((0, self.n_channels), dtype=np.float32)
        self.arrivals = np.empty(0, dtype=np.float64)
        #: Volumes older than this were dropped (-inf: nothing dropped yet).
        self.covered_from = -math.inf
        #: Arrival time of the newest volume (-inf before the first).
        self.last_arrival = -math.inf

    def __len__(self) -> int:
        return int(self.times.size)

    @property
    def latest(self) -> float:
        """Timestamp of the newest volume (-inf when empty)."""
        return float(self.times[-1]) if self.times.size else -math.inf

    def append(self, data: np.ndarray, times: np.ndarray, arrival: float) -> None:
        """Add volumes that arrived at ``arrival``.

        Parameters
        ----------
        data : np.ndarray
            ``(n, n_channels)`` volumes.
        times : np.ndarray
            ``(n,)`` their timestamps (any order; the buffer keeps time order).
        arrival : float
            When they were received.
        """
        data = np.asarray(data, dtype=np.float32).reshape(-1, self.n_channels)
        times = np.asarray(times, dtype=np.float64).reshape(-1)
        if data.shape[0] != times.size:
            raise ValueError(f"{data.shape[0]} volumes but {times.size} timestamps")
        if not times.size:
            return
        self.times = np.concatenate([self.times, times])
        self.data = np.concatenate([self.data, data])
        self.arrivals = np.concatenate([self.arrivals, np.full(times.size, float(arrival))])
        if np.any(np.diff(self.times) < 0):
            order = np.argsort(self.times, kind="stable")
            self.times, self.data, self.arrivals = (
                self.times[order],
                self.data[order],
                self.arrivals[order],
            )
        self.last_arrival = max(self.last_arrival, float(arrival))

    def span(self, start: float, end: float) -> slice:
        """Indices of the volumes with ``start <= t < end``."""
        lo = int(np.searchsorted(self.times, start, side="left"))
        hi = int(np.searchsorted(self.times, end, side="left"))
        return slice(lo, max(lo, hi))

    def first_at_or_after(self, t: float) -> int | None:
        """Index of the first volume with timestamp ``>= t``, or None."""
        i = int(np.searchsorted(self.times, t, side="left"))
        return i if i < self.times.size else None

    def drop_before(self, t: float) -> None:
        """Forget the volumes older than ``t``."""
        i = int(np.searchsorted(self.times, t, side="left"))
        if i:
            self.times, self.data, self.arrivals = (
                self.times[i:],
                self.data[i:],
                self.arrivals[i:],
            )
        self.covered_from = max(self.covered_from, t)


def bad_values_reason(window: np.ndarray) -> str | None:
    """``"NaN in 12 of 1024 voxels"`` if ``window`` (volumes x voxels) has NaN/Inf, else None."""
    finite = np.isfinite(window)
    if finite.all():
        return None
    n_bad = int(np.count_nonzero(~finite.all(axis=0)))
    has_nan, has_inf = bool(np.isnan(window).any()), bool(np.isinf(window).any())
    what = "NaN/Inf" if has_nan and has_inf else "NaN" if has_nan else "Inf"
    return f"{what} in {n_bad} of {window.shape[1]} voxels"


class TrialCutter:
    """Cuts each trial's window out of every subject's :class:`VolumeBuffer`.

    Parameters
    ----------
    buffers : dict of int to VolumeBuffer
        One buffer per subject; the acquire node appends to them.
    delay_s, window_s : float
        The window is ``[onset + delay_s, onset + delay_s + window_s)`` (same clock as the
        timestamps, so scanner seconds divided by the session's time scale).
    tolerance_s : float
        Timestamp tolerance at the window boundaries (see the module docstring).
    baseline_s : float
        If > 0, subtract the mean of the volumes in ``[onset - baseline_s, onset)``.
    retain_s : float
        Volumes are kept at least this long behind the newest one, so a marker that arrives
        late still finds its window; older ones are dropped unless a pending trial needs them.
    stall_s : float
        A pending window still incomplete this long after its end (by the ``now`` passed to
        :meth:`cut`) is given up: published as bad, so one dead stream cannot hold trials back.
    skip_censored : bool
        Leave censored (all-NaN) volumes out of the windows (see the module docstring).
    """

    def __init__(
        self,
        buffers: dict[int, VolumeBuffer],
        delay_s: float,
        window_s: float,
        *,
        tolerance_s: float = 1e-3,
        baseline_s: float = 0.0,
        retain_s: float = 30.0,
        stall_s: float = 10.0,
        skip_censored: bool = False,
    ) -> None:
        if window_s <= 0 or tolerance_s < 0 or baseline_s < 0 or retain_s < 0 or stall_s <= 0:
            raise ValueError(
                "need window_s > 0, stall_s > 0 and tolerance_s, baseline_s, retain_s >= 0"
            )
        self.buffers = buffers
        self.delay_s = float(delay_s)
        self.window_s = float(window_s)
        self.tol = float(tolerance_s)
        self.baseline_s = float(baseline_s)
        self.retain_s = float(retain_s)
        self.stall_s = float(stall_s)
        self.skip_censored = bool(skip_censored)
        # per subject, the trials still to cut, sorted by window end
        self._pending: dict[int, list[Trial]] = {subject: [] for subject in buffers}
        self._seen: set[tuple[str, int]] = set()

    def window(self, onset: float) -> tuple[float, float]:
        """The window ``(start, end)`` of a trial with this onset."""
        start = onset + self.delay_s
        return start, start + self.window_s

    def add_trial(
        self,
        trial: int,
        stimulus: str,
        phase: str,
        onset: float,
        known_at: float = -math.inf,
        run_end: float = math.inf,
    ) -> Trial | None:
        """Register a stimulus onset; return its :class:`Trial`, or None for a repeated marker.

        Parameters
        ----------
        trial : int
            Trial index (with ``phase``, the trial's identity).
        stimulus : str
            Stimulus id.
        phase : str
            Session phase.
        onset : float
            Onset time.
        known_at : float
            When the marker arrived.
        run_end : float
            When the trial's run ends (see :class:`Trial`).
        """
        key = (str(phase), int(trial))
        if key in self._seen:
            return None
        self._seen.add(key)
        start, end = self.window(onset)
        item = Trial(
            int(trial), str(stimulus), str(phase), float(onset), start, end, known_at, run_end
        )
        for pending in self._pending.values():
            bisect.insort(pending, item, key=lambda t: (t.end, t.trial))
        return item

    @property
    def n_pending(self) -> int:
        """Trial windows (summed over subjects) still waiting for data."""
        return sum(len(p) for p in self._pending.values())

    def remove_subject(self, subject: int) -> None:
        """Stop cutting for ``subject`` (its pending trials are forgotten)."""
        self.buffers.pop(subject, None)
        self._pending.pop(subject, None)

    def give_up(self, subject: int, before: float, why: str, now: float) -> list[CutResponse]:
        """Give up ``subject``'s pending windows that end by ``before``: bad responses ``why``.

        For a stream known to have stopped (the others have passed these windows).
        """
        pending = self._pending.get(subject, [])
        buffer = self.buffers.get(subject)
        out = []
        while pending and buffer is not None and min(pending[0].end, pending[0].run_end) <= before:
            trial = pending.pop(0)
            out.append(self._bad(trial, subject, buffer, max(now, trial.known_at), 0, why))
        return out

    def cut(self, now: float = -math.inf) -> list[CutResponse]:
        """Cut every window that is complete (or given up); trim the buffers.

        Parameters
        ----------
        now : float
            Current time, for giving up on stalled windows (``-inf``: never give up).

        Returns
        -------
        list of CutResponse
            Ordered by window end, then subject; per subject always in window-end order.
        """
        out: list[CutResponse] = []
        for subject, buffer in self.buffers.items():
            pending = self._pending[subject]
            while pending:
                response = self._try_cut(pending[0], subject, buffer, now)
                if response is None:
                    break
                out.append(response)
                pending.pop(0)
            self._trim(buffer, pending)
        out.sort(key=lambda r: (r.trial.end, r.trial.trial, r.subject))
        return out

    def _try_cut(
        self, trial: Trial, subject: int, buffer: VolumeBuffer, now: float
    ) -> CutResponse | None:
        lo, hi = trial.start - self.tol, min(trial.end, trial.run_end) - self.tol
        period = buffer.period_s or 0.0
        done = buffer.first_at_or_after(hi - period)
        if done is None:
            waited = now - min(trial.end, trial.run_end)
            if waited < self.stall_s:
                return None
            why = f"stream stalled: no volume {waited:.1f} s after the window end"
            return self._bad(trial, subject, buffer, max(now, trial.known_at), 0, why)
        arrival = max(float(buffer.arrivals[done]), trial.known_at)
        if self._needed_from(trial) < buffer.covered_from:
            late = trial.known_at - trial.onset
            why = f"window is older than the buffered data (marker arrived {late:.1f} s late)"
            return self._bad(trial, subject, buffer, arrival, 0, why)
        span = buffer.span(lo, hi)
        window, n_censored = self._uncensored(buffer.data[span])
        n = int(window.shape[0])
        if n == 0 and n_censored:
            why = f"all {n_censored} volumes of the window censored"
            return self._bad(trial, subject, buffer, arrival, 0, why, n_censored)
        if n == 0:
            return self._bad(trial, subject, buffer, arrival, 0, "no volumes in window")
        reason = bad_values_reason(window)
        if reason is not None:
            return self._bad(trial, subject, buffer, arrival, n, reason, n_censored)
        pattern = window.mean(axis=0, dtype=np.float64)
        if self.baseline_s:
            base_lo = trial.onset - self.baseline_s - self.tol
            base, base_censored = self._uncensored(
                buffer.data[buffer.span(base_lo, trial.onset - self.tol)]
            )
            if base.shape[0] == 0:
                why = "all volumes of the baseline censored" if base_censored else None
                return self._bad(
                    trial, subject, buffer, arrival, n, why or "no volumes in baseline", n_censored
                )
            reason = bad_values_reason(base)
            if reason is not None:
                return self._bad(
                    trial, subject, buffer, arrival, n, f"baseline: {reason}", n_censored
                )
            pattern = pattern - base.mean(axis=0, dtype=np.float64)
        return CutResponse(
            trial, subject, pattern.astype(np.float32), arrival, n, n_censored=n_censored
        )

    def _uncensored(self, window: np.ndarray) -> tuple[np.ndarray, int]:
        """The window's volumes without the censored (all-NaN) ones, and how many those were."""
        if not self.skip_censored or not window.shape[0]:
            return window, 0
        censored = np.isnan(window).all(axis=1)
        return window[~censored], int(np.count_nonzero(censored))

    def _bad(
        self,
        trial: Trial,
        subject: int,
        buffer: VolumeBuffer,
        arrival: float,
        n: int,
        why: str,
        n_censored: int = 0,
    ) -> CutResponse:
        zeros = np.zeros(buffer.n_channels, dtype=np.float32)
        return CutResponse(trial, subject, zeros, arrival, n, why, n_censored)

    def _trim(self, buffer: VolumeBuffer, pending: Iterable[Trial]) -> None:
        keep_from = buffer.latest - self.retain_s
        for trial in pending:
            keep_from = min(keep_from, self._needed_from(trial) - self.tol)
        if keep_from > buffer.covered_from and math.isfinite(keep_from):
            buffer.drop_before(keep_from)

    def _needed_from(self, trial: Trial) -> float:
        """The earliest time stamp a trial's response reads (baseline or window start)."""
        return (trial.onset - self.baseline_s if self.baseline_s else trial.start) - self.tol
