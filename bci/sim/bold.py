"""BOLD time series from trial response patterns: HRF, AR(1) noise, slow drift and baseline.

Volume ``v`` is acquired at ``start_s + v * tr``. Its value for one subject is::

    baseline + sum_events pattern_e * event_response(t_v - onset_e, duration_e)
             + drift(t_v) + ar1_noise_v

The event response is the canonical HRF convolved with the stimulus boxcar, evaluated exactly at the
acquisition time (the limit of a fine-resolution convolution sampled at the TR) and scaled to peak
at 1, so a pattern appears at full amplitude about 5 s after a brief event. Drift per voxel is a sum
of slow random-phase cosines (periods longer than SPM's 128 s high-pass cutoff by default); noise
is stationary AR(1) with marginal standard deviation ``noise_std``.

Confounds of a real scanner (all off by default, so the defaults give the series above)::

    baseline_r + drift_r(t_v) + spike_v * spike_size * baseline_r + motion_v @ motion_loadings

* **Runs.** :meth:`BoldStream.start_run` begins a new run: each voxel's baseline becomes
  ``baseline * (1 + run_change * N(0, 1))`` (a fresh draw per run and voxel: shim and head
  position change between runs), the drift cosines get fresh phases and amplitudes, and the head
  returns to its reference position. The first run draws its baseline factor the same way.
* **Spikes.** Each volume of each subject is, with probability ``spike_rate``, an intensity spike:
  every voxel gets ``spike_size`` times its run baseline added (``0.03``: a 3 % jump).
* **Head motion.** Six rigid-body parameters (mm and degrees) follow a slow AR(1) walk with
  marginal standard deviation ``motion_std`` (time constant ``MOTION_TAU_S``), zero at the start of
  each run; what is left of it after realignment enters every voxel through fixed random
  loadings, ``motion_effect`` signal units per mm (or degree). :meth:`BoldStream.motion` returns
  the parameters of the emitted volumes, :attr:`BoldStream.spikes` the spike volumes.

The confounds draw from their own random stream, so the noise of a seed is the same with and
without them (a confound-free run and a run with confounds differ only by the confounds).

:class:`BoldStream` produces volumes incrementally (a live LSL source calls :meth:`volumes_until`
every TR); :func:`simulate_bold` is the batch form and gives identical numbers for the same events
and seed, because both compute each volume the same way, one volume at a time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from bci.sim.hrf import SPM_HRF, HrfShape, event_response

SeedLike = int | np.random.Generator | None
PerSubject = float | ArrayLike | Sequence[float | ArrayLike]

MOTION_TAU_S = 30.0
"""Time constant in seconds of the simulated head motion's AR(1) walk."""


def _per_subject(value: PerSubject, n_voxels: list[int], name: str) -> list[np.ndarray]:
    if np.isscalar(value) or (isinstance(value, np.ndarray) and value.ndim == 0):
        return [np.full(n, float(value)) for n in n_voxels]  # type: ignore[arg-type]
    values = [value] if len(n_voxels) == 1 and np.ndim(value) == 1 else list(value)  # type: ignore
    if len(values) != len(n_voxels):
        raise ValueError(f"{name} has {len(values)} entries for {len(n_voxels)} subjects")
    return [
        np.broadcast_to(np.asarray(v, dtype=np.float64), (n,))
        for v, n in zip(values, n_voxels, strict=True)
    ]


class BoldStream:
    """Incremental BOLD generator for one or several subjects.

    Parameters
    ----------
    n_voxels : int or sequence of int
        Voxels of the single subject (then patterns and volumes are plain arrays) or of each
        subject (then they are lists, one entry per subject), e.g. ``cohort.n_voxels``.
    tr : float
        Repetition time in seconds.
    duration_s : float
        Default stimulus duration (0: event; > 0: block).
    noise_std : float, array or per-subject sequence
        Marginal standard deviation of the AR(1) noise, per voxel.
    ar_rho : float
        AR(1) coefficient in (-1, 1): lag-1 autocorrelation of the noise between volumes.
    drift_std : float, array or per-subject sequence
        Standard deviation over time of the slow drift, per voxel.
    drift_periods_s : (float, float)
        Range of the drift periods; each of ``n_drift`` components has a period drawn
        log-uniformly in it (shared by the voxels of a subject, with per-voxel amplitude and phase).
    n_drift : int
        Number of drift cosines.
    baseline : float, array or per-subject sequence
        Constant signal level, per voxel.
    start_s : float
        Acquisition time of volume 0.
    hrf_shape : HrfShape
        HRF parameters.
    seed : int, numpy Generator or None
        Seed of the noise and drift; the same seed gives the same series.
    run_change : float
        Standard deviation of each voxel's relative baseline change between runs (0.02: 2 %).
    spike_rate : float
        Probability in [0, 1] that a volume is an intensity spike.
    spike_size : float
        A spike adds this fraction of the run baseline to every voxel.
    motion_std : float
        Standard deviation of each head-motion parameter over time (mm, degrees).
    motion_effect : float, array or per-subject sequence
        Standard deviation over voxels of the signal per mm (degree) of motion.
    """

    def __init__(
        self,
        n_voxels: int | Sequence[int],
        tr: float,
        *,
        duration_s: float = 0.0,
        noise_std: PerSubject = 1.0,
        ar_rho: float = 0.3,
        drift_std: PerSubject = 1.0,
        drift_periods_s: tuple[float, float] = (128.0, 512.0),
        n_drift: int = 3,
        baseline: PerSubject = 100.0,
        start_s: float = 0.0,
        hrf_shape: HrfShape = SPM_HRF,
        seed: SeedLike = None,
        run_change: float = 0.0,
        spike_rate: float = 0.0,
        spike_size: float = 0.0,
        motion_std: float = 0.0,
        motion_effect: PerSubject = 0.0,
    ) -> None:
        self._single = bool(np.isscalar(n_voxels))
        self.n_voxels = [int(n_voxels)] if self._single else [int(n) for n in n_voxels]  # type: ignore
        if tr <= 0 or not -1.0 < ar_rho < 1.0 or duration_s < 0:
            raise ValueError(
                f"need tr > 0, -1 < ar_rho < 1, duration_s >= 0; got {tr}, {ar_rho}, {duration_s}"
            )
        self.tr = float(tr)
        self.duration_s = float(duration_s)
        self.ar_rho = float(ar_rho)
        self.start_s = float(start_s)
        self.hrf_shape = hrf_shape
        self._noise_std = _per_subject(noise_std, self.n_voxels, "noise_std")
        self._baseline = _per_subject(baseline, self.n_voxels, "baseline")
        drift = _per_subject(drift_std, self.n_voxels, "drift_std")
        root = np.random.default_rng(seed)
        rngs = [np.random.default_rng(root.integers(2**63)) for _ in self.n_voxels]
        lo, hi = drift_periods_s
        self._omega: list[np.ndarray] = []
        self._drift_cos: list[np.ndarray] = []
        self._drift_sin: list[np.ndarray] = []
        for rng, d, n in zip(rngs, drift, self.n_voxels, strict=True):
            periods = np.exp(rng.uniform(np.log(lo), np.log(hi), n_drift))
            amp = d * np.sqrt(2.0 / max(n_drift, 1)) * rng.standard_normal((n_drift, n))
            phase = rng.uniform(0.0, 2.0 * np.pi, (n_drift, n))
            self._omega.append(2.0 * np.pi / periods)
            self._drift_cos.append(amp * np.cos(phase))
            self._drift_sin.append(amp * np.sin(phase))
        self._rngs = rngs
        self._ar_state: list[np.ndarray | None] = [None] * len(self.n_voxels)
        self._events: list[tuple[float, float, list[np.ndarray]]] = []
        self.n_emitted = 0
        if run_change < 0 or not 0 <= spike_rate <= 1 or motion_std < 0:
            raise ValueError(
                "need run_change >= 0, 0 <= spike_rate <= 1, motion_std >= 0; got "
                f"{run_change}, {spike_rate}, {motion_std}"
            )
        # The confounds' own stream, drawn after everything above: the noise does not change.
        self._confound_rng = np.random.default_rng(root.integers(2**63))
        self.run_change, self.spike_rate = float(run_change), float(spike_rate)
        self.spike_size, self.motion_std = float(spike_size), float(motion_std)
        self._drift_std = drift
        self._drift_periods = (float(lo), float(hi))
        self._nominal_baseline = self._baseline
        effect = _per_subject(motion_effect, self.n_voxels, "motion_effect")
        self._motion_loadings = [
            e * self._confound_rng.standard_normal((6, n))
            for e, n in zip(effect, self.n_voxels, strict=True)
        ]
        self._motion_state = [np.zeros(6) for _ in self.n_voxels]
        self._motion_log: list[list[np.ndarray]] = [[] for _ in self.n_voxels]
        #: Per subject, the indices of the emitted volumes that are intensity spikes.
        self.spikes: list[list[int]] = [[] for _ in self.n_voxels]
        #: Index of the first volume of the current run.
        self.run_start = 0
        self._new_run_baseline()

    def _new_run_baseline(self) -> None:
        if self.run_change > 0:
            self._baseline = [
                b * (1.0 + self.run_change * self._confound_rng.standard_normal(b.size))
                for b in self._nominal_baseline
            ]

    def start_run(self) -> None:
        """Begin a new run at the next volume: new baseline factors, drift, head position.

        The noise and the timing continue (volume times keep counting from ``start_s``).
        """
        self._new_run_baseline()
        rng = self._confound_rng
        lo, hi = self._drift_periods
        for i, (d, n) in enumerate(zip(self._drift_std, self.n_voxels, strict=True)):
            k = self._omega[i].size
            self._omega[i] = 2.0 * np.pi / np.exp(rng.uniform(np.log(lo), np.log(hi), k))
            amp = d * np.sqrt(2.0 / max(k, 1)) * rng.standard_normal((k, n))
            phase = rng.uniform(0.0, 2.0 * np.pi, (k, n))
            self._drift_cos[i], self._drift_sin[i] = amp * np.cos(phase), amp * np.sin(phase)
        self._motion_state = [np.zeros(6) for _ in self.n_voxels]
        self.run_start = self.n_emitted

    def motion(self, subject: int = 0) -> np.ndarray:
        """Head-motion parameters of the emitted volumes of one subject.

        Returns
        -------
        np.ndarray
            ``(n_emitted, 6)``: translations x, y, z (mm) and rotations about x, y, z (degrees),
            relative to the run's first volume (zeros when ``motion_std`` is 0).
        """
        rows = self._motion_log[subject]
        return np.array(rows, dtype=np.float64).reshape(len(rows), 6)

    def _confounds(self, i: int, value: np.ndarray) -> None:
        rng = self._confound_rng
        if self.motion_std > 0 and self.n_emitted > self.run_start:
            rho = math.exp(-self.tr / MOTION_TAU_S)
            step = math.sqrt(1.0 - rho**2) * self.motion_std * rng.standard_normal(6)
            self._motion_state[i] = rho * self._motion_state[i] + step
        self._motion_log[i].append(self._motion_state[i].copy())
        if self.motion_std > 0:
            value += self._motion_state[i] @ self._motion_loadings[i]
        if self.spike_rate > 0 and rng.random() < self.spike_rate:
            value += self.spike_size * self._baseline[i]
            self.spikes[i].append(self.n_emitted)

    def volume_time(self, index: int | np.ndarray) -> float | np.ndarray:
        """Acquisition time in seconds of volume ``index``.

        Parameters
        ----------
        index : int or np.ndarray
            Volume index (or indices).

        Returns
        -------
        float or np.ndarray
            ``start_s + index * tr``.
        """
        return self.start_s + index * self.tr

    def add_event(
        self,
        onset_s: float,
        patterns: ArrayLike | Sequence[ArrayLike],
        duration_s: float | None = None,
    ) -> None:
        """Register a stimulus: its pattern(s) enter the volumes acquired after ``onset_s``.

        Events are causal: one added after volumes it would have touched were emitted only
        affects the volumes still to come (the HRF is ~0 in the first second, so a marker that
        arrives a little late changes nothing measurable).

        Parameters
        ----------
        onset_s : float
            Stimulus onset in seconds (same clock as ``start_s``).
        patterns : array_like or sequence of array_like
            ``(n_voxels,)`` response pattern, or one per subject for a multi-subject stream.
        duration_s : float or None
            Stimulus duration; default the stream's ``duration_s``.
        """
        duration = self.duration_s if duration_s is None else float(duration_s)
        if duration < 0 or not math.isfinite(onset_s):
            raise ValueError(f"need a finite onset and duration_s >= 0, got {onset_s}, {duration}")
        items = [patterns] if self._single else list(patterns)  # type: ignore[arg-type]
        if len(items) != len(self.n_voxels):
            raise ValueError(f"got {len(items)} patterns for {len(self.n_voxels)} subjects")
        arrays = []
        for p, n in zip(items, self.n_voxels, strict=True):
            a = np.asarray(p, dtype=np.float64)
            if a.shape != (n,):
                raise ValueError(f"pattern has shape {a.shape}, expected ({n},)")
            arrays.append(a)
        self._events.append((float(onset_s), duration, arrays))

    def _volume(self, t: float) -> list[np.ndarray]:
        active = []
        for onset, duration, arrays in self._events:
            tau = t - onset
            if 0.0 < tau < self.hrf_shape.length_s + duration:
                active.append((float(event_response(tau, duration, self.hrf_shape)), arrays))
        out = []
        for i, rng in enumerate(self._rngs):
            value = self._baseline[i].copy()
            for weight, arrays in active:
                value += weight * arrays[i]
            for j, w in enumerate(self._omega[i]):
                value += (
                    math.cos(w * t) * self._drift_cos[i][j]
                    - math.sin(w * t) * self._drift_sin[i][j]
                )
            w_noise = rng.standard_normal(self.n_voxels[i])
            prev = self._ar_state[i]
            if prev is None:
                noise = w_noise * self._noise_std[i]
            else:
                innovation = math.sqrt(1.0 - self.ar_rho**2) * self._noise_std[i] * w_noise
                noise = self.ar_rho * prev + innovation
            self._ar_state[i] = noise
            self._confounds(i, value)
            out.append(value + noise)
        return out

    def _prune(self, t_next: float) -> None:
        limit = self.hrf_shape.length_s
        self._events = [e for e in self._events if t_next - e[0] < limit + e[1]]

    def volumes_until(self, t_s: float) -> np.ndarray | list[np.ndarray]:
        """Emit the volumes acquired at or before ``t_s`` that were not emitted yet.

        Parameters
        ----------
        t_s : float
            Current time in seconds.

        Returns
        -------
        np.ndarray or list of np.ndarray
            ``(n_new, n_voxels)`` float32 volumes (``n_new`` may be 0), or one such array per
            subject for a multi-subject stream. Their times are
            ``volume_time(range(n_emitted - n_new, n_emitted))``.
        """
        n_total = max(math.floor((t_s - self.start_s) / self.tr + 1e-9) + 1, self.n_emitted)
        rows: list[list[np.ndarray]] = []
        for v in range(self.n_emitted, n_total):
            rows.append(self._volume(float(self.volume_time(v))))
            self.n_emitted = v + 1
            self._prune(float(self.volume_time(self.n_emitted)))
        out = []
        for i, n in enumerate(self.n_voxels):
            block = np.empty((len(rows), n), dtype=np.float32)
            for k, row in enumerate(rows):
                block[k] = row[i]
            out.append(block)
        return out[0] if self._single else out


def simulate_bold(
    onsets_s: ArrayLike,
    patterns: ArrayLike | Sequence[ArrayLike],
    n_volumes: int,
    tr: float,
    **stream_kwargs: object,
) -> np.ndarray | list[np.ndarray]:
    """Batch BOLD series: identical to a :class:`BoldStream` fed the same events and seed.

    Parameters
    ----------
    onsets_s : array_like
        ``(n_trials,)`` stimulus onsets in seconds.
    patterns : array_like or sequence of array_like
        ``(n_trials, n_voxels)`` response patterns, or a list of them, one per subject.
    n_volumes : int
        Number of volumes to acquire.
    tr : float
        Repetition time in seconds.
    **stream_kwargs
        Keyword arguments of :class:`BoldStream` (``duration_s``, ``noise_std``, ``ar_rho``,
        ``drift_std``, ``baseline``, ``seed``, ...).

    Returns
    -------
    np.ndarray or list of np.ndarray
        ``(n_volumes, n_voxels)`` float32 per subject (a list when ``patterns`` is a list).
    """
    onsets = np.asarray(onsets_s, dtype=np.float64).reshape(-1)
    single = isinstance(patterns, np.ndarray)
    per_subject = [np.asarray(patterns)] if single else [np.asarray(p) for p in patterns]  # type: ignore
    for p in per_subject:
        if p.ndim != 2 or p.shape[0] != onsets.size:
            raise ValueError(f"patterns have shape {p.shape}, expected ({onsets.size}, n_voxels)")
    n_voxels = per_subject[0].shape[1] if single else [p.shape[1] for p in per_subject]
    stream = BoldStream(n_voxels, tr, **stream_kwargs)  # type: ignore[arg-type]
    for k, onset in enumerate(onsets):
        stream.add_event(onset, per_subject[0][k] if single else [p[k] for p in per_subject])
    return stream.volumes_until(float(stream.volume_time(n_volumes - 1)))


def trial_window(
    onset_s: float, tr: float, delay_s: float = 4.0, duration_s: float = 4.0, start_s: float = 0.0
) -> slice:
    """Volumes acquired in ``[onset_s + delay_s, onset_s + delay_s + duration_s)``.

    The default window (4-8 s after onset) brackets the ~5 s peak of the canonical HRF.

    Parameters
    ----------
    onset_s : float
        Stimulus onset in seconds.
    tr : float
        Repetition time in seconds.
    delay_s : float
        Start of the window after the onset (negative for a pre-stimulus window).
    duration_s : float
        Window length in seconds (> 0).
    start_s : float
        Acquisition time of volume 0.

    Returns
    -------
    slice
        Volume indices of the window (possibly empty if ``duration_s < tr``).
    """
    if tr <= 0 or duration_s <= 0:
        raise ValueError(f"need tr > 0 and duration_s > 0, got tr={tr}, duration_s={duration_s}")
    first = (onset_s + delay_s - start_s) / tr
    last = (onset_s + delay_s + duration_s - start_s) / tr
    return slice(max(math.ceil(first - 1e-9), 0), max(math.ceil(last - 1e-9), 0))


def cut_trials(
    bold: ArrayLike,
    onsets_s: ArrayLike,
    tr: float,
    delay_s: float = 4.0,
    duration_s: float = 4.0,
    baseline_s: float = 0.0,
    start_s: float = 0.0,
    skip_nan: bool = False,
) -> np.ndarray:
    """Trial responses cut out of a BOLD series: the mean of each trial's :func:`trial_window`.

    Parameters
    ----------
    bold : array_like
        ``(n_volumes, n_voxels)`` series, volume ``v`` acquired at ``start_s + v * tr``.
    onsets_s : array_like
        ``(n_trials,)`` stimulus onsets in seconds.
    tr, delay_s, duration_s, start_s : float
        As in :func:`trial_window`.
    baseline_s : float
        If > 0, subtract the mean of the volumes in ``[onset - baseline_s, onset)`` from each
        trial (removes the baseline and drift).
    skip_nan : bool
        Leave volumes with a NaN (censored volumes, :mod:`bci.preprocess`) out of the means; a
        window with none left gives a row of NaN.

    Returns
    -------
    np.ndarray
        ``(n_trials, n_voxels)`` float32.
    """
    x = np.asarray(bold)
    if x.ndim != 2:
        raise ValueError(f"bold must be 2-D (n_volumes, n_voxels), got shape {x.shape}")
    onsets = np.asarray(onsets_s, dtype=np.float64).reshape(-1)
    out = np.empty((onsets.size, x.shape[1]), dtype=np.float32)
    for k, onset in enumerate(onsets):
        win = trial_window(onset, tr, delay_s, duration_s, start_s)
        if not win.start < win.stop <= x.shape[0]:
            raise ValueError(
                f"trial at {onset} s needs volumes {win.start}:{win.stop} of {x.shape[0]}"
            )
        value = _window_mean(x[win], skip_nan)
        if baseline_s > 0:
            pre = trial_window(onset, tr, -baseline_s, baseline_s, start_s)
            if not pre.start < pre.stop <= x.shape[0]:
                raise ValueError(f"trial at {onset} s has no baseline volume before its onset")
            value = value - _window_mean(x[pre], skip_nan)
        out[k] = value
    return out


def _window_mean(window: np.ndarray, skip_nan: bool) -> np.ndarray:
    if skip_nan:
        keep = ~np.isnan(window).any(axis=1)
        if not keep.any():
            return np.full(window.shape[1], np.nan)
        window = window[keep]
    return window.mean(axis=0, dtype=np.float64)
