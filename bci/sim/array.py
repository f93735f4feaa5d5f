"""An in-silico multi-electrode array: diverse units, spike times, and broadband voltage.

One unit per channel. :func:`array_units` draws each unit's visual gain, baseline rate, tuning
width factor and spike amplitude; with ``diverse`` one unit (chosen by the seed) is clearly the
most responsive (gain 1 and the broadest tuning, so it answers most images), the others respond
5-30 % as strongly with sharper tuning, and about a fifth of them not at all (not visual); every
image also drives each visual unit a little (:data:`VISUAL_DRIVE`).

:func:`spikes_in_bins` turns Poisson counts per 1 ms bin into spike times (uniform within the
bin, an absolute refractory period per unit). :class:`BroadbandSynth` writes each spike as an
extracellular waveform (a sharp negative trough of the unit's amplitude, 50-150 uV, then a small
slower positive repolarisation, 1.6 ms in all) onto white noise (10 uV RMS), a slow local field
potential and a per-channel DC offset, as an amplifier's raw channel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

TROUGH_MS = 0.4
"""The waveform starts this long before its trough (the spike's time)."""
WAVEFORM_MS = 1.6
"""Length of a spike waveform."""
VISUAL_DRIVE = 0.0
"""In a diverse array, every image drives a unit by this fraction of its peak on top of its tuning
(a visual onset response that does not depend on the image)."""
LFP_HZ = 5.0
"""Corner frequency of the simulated local field potential (first-order low-pass noise)."""


@dataclass(frozen=True)
class ArrayUnits:
    """Per-unit parameters of an in-silico array.

    Attributes
    ----------
    gain : np.ndarray
        ``(n,)`` visual response height as a fraction of ``peak_hz``.
    baseline_hz : np.ndarray
        ``(n,)`` rate with no stimulus.
    width_factor : np.ndarray
        ``(n,)`` factor on the tuning width (broader or sharper tuning).
    amplitude_uv : np.ndarray
        ``(n,)`` trough depth of the unit's spike waveform, microvolts.
    drive : float
        Image-independent response, as a fraction of the peak (:data:`VISUAL_DRIVE` or 0).
    """

    gain: np.ndarray
    baseline_hz: np.ndarray
    width_factor: np.ndarray
    amplitude_uv: np.ndarray
    drive: float = 0.0

    def rates(self, tuning: np.ndarray, peak_hz: float) -> np.ndarray:
        """Firing rates ``(n_images, n_units)`` from tuning curves in [0, 1]:
        ``baseline_hz + peak_hz * gain * (drive + tuning)``."""
        return self.baseline_hz + peak_hz * self.gain * (self.drive + np.asarray(tuning))

    @property
    def most_responsive(self) -> int:
        """The unit with the highest gain."""
        return int(np.argmax(self.gain))

    def to_json(self) -> dict:
        """Plain lists, for the session folder."""
        return {
            "gain": self.gain.round(4).tolist(),
            "baseline_hz": self.baseline_hz.round(4).tolist(),
            "width_factor": self.width_factor.round(4).tolist(),
            "amplitude_uv": self.amplitude_uv.round(3).tolist(),
            "drive": self.drive,
            "most_responsive": self.most_responsive,
        }


def array_units(
    n_units: int,
    baseline_hz: float,
    amplitude_uv: tuple[float, float] = (50.0, 150.0),
    *,
    diverse: bool = True,
    seed: int | np.random.Generator = 0,
) -> ArrayUnits:
    """Draw an array's units (see the module docstring).

    Without ``diverse`` every unit has gain 1, ``baseline_hz`` and the default tuning width.
    """
    rng = np.random.default_rng(seed)
    n = int(n_units)
    lo, hi = float(amplitude_uv[0]), float(amplitude_uv[1])
    amplitude = rng.uniform(lo, hi, n) if hi > lo else np.full(n, lo)
    if not diverse or n == 1:
        ones = np.ones(n)
        return ArrayUnits(ones, np.full(n, float(baseline_hz)), ones.copy(), amplitude)
    gain = rng.uniform(0.05, 0.3, n)
    gain[rng.random(n) < 0.2] = 0.0
    width = rng.uniform(0.6, 0.95, n)
    best = int(rng.integers(n))
    gain[best], width[best] = 1.0, 1.0  # strong and the most broadly tuned: it answers most
    baseline = float(baseline_hz) * rng.uniform(0.5, 1.5, n)
    return ArrayUnits(gain, baseline, width, amplitude, VISUAL_DRIVE)


def spike_waveform(rate_hz: float, amplitude_uv: float = 1.0) -> tuple[np.ndarray, int]:
    """An extracellular spike sampled at ``rate_hz``, its trough ``-amplitude_uv``.

    Returns
    -------
    waveform : np.ndarray
        ``(L,)`` float64.
    trough : int
        Index of the trough (the spike's time).
    """
    trough = int(round(TROUGH_MS * 1e-3 * rate_hz))
    t = (np.arange(int(round(WAVEFORM_MS * 1e-3 * rate_hz))) - trough) / rate_hz * 1e3  # ms
    shape = -np.exp(-0.5 * (t / 0.08) ** 2) + 0.15 * np.exp(-0.5 * ((t - 0.3) / 0.2) ** 2)
    return amplitude_uv * shape / -shape.min(), trough


def spikes_in_bins(
    bin_times: np.ndarray,
    counts: np.ndarray,
    bin_s: float,
    rng: np.random.Generator,
    last_spike: np.ndarray,
    refractory_s: float = 0.0015,
) -> tuple[np.ndarray, np.ndarray]:
    """Spike times from counts per bin: uniform within each bin, refractory per unit.

    Parameters
    ----------
    bin_times : np.ndarray
        ``(n,)`` bin starts.
    counts : np.ndarray
        ``(n, n_units)`` spike counts.
    bin_s : float
        Bin width.
    rng : numpy Generator
        Where in its bin each spike falls.
    last_spike : np.ndarray
        ``(n_units,)`` each unit's last spike time so far; updated in place.
    refractory_s : float
        A spike this close after the unit's previous one is dropped.

    Returns
    -------
    times, units : np.ndarray
        float64 and int64, sorted by time.
    """
    counts = np.asarray(counts).round().astype(np.int64)
    rows, units = np.nonzero(counts)
    reps = counts[rows, units]
    rows, units = np.repeat(rows, reps), np.repeat(units, reps)
    times = bin_times[rows] + rng.uniform(0.0, bin_s, rows.size)
    order = np.lexsort((times, units))
    times, units = times[order], units[order]
    keep = np.ones(times.size, dtype=bool)
    for u in np.unique(units).tolist():
        last = float(last_spike[u])
        for i in np.flatnonzero(units == u).tolist():
            if times[i] - last < refractory_s:
                keep[i] = False
            else:
                last = float(times[i])
        last_spike[u] = last
    times, units = times[keep], units[keep]
    order = np.argsort(times, kind="stable")
    return times[order], units[order]


class BroadbandSynth:
    """Raw voltage of an array, chunk by chunk (microvolts, ``(n_samples, n_channels)``).

    Sample ``i`` is at ``t0 + i / rate_hz``. Add spikes (by trough sample) before emitting the
    samples their waveform starts in: a spike whose trough is at least ``trough`` samples after
    the next sample to emit always fits.

    Parameters
    ----------
    amplitude_uv : np.ndarray
        ``(n_channels,)`` spike amplitude of each channel's unit.
    rate_hz : float
        Sampling rate.
    noise_uv : float
        RMS of the white noise.
    lfp_uv : float
        RMS of the slow local field potential.
    seed : int or numpy Generator
        Noise, LFP and DC offsets.
    """

    def __init__(
        self,
        amplitude_uv: np.ndarray,
        rate_hz: float,
        noise_uv: float = 10.0,
        lfp_uv: float = 20.0,
        seed: int | np.random.Generator = 0,
    ) -> None:
        self.amplitude = np.asarray(amplitude_uv, dtype=np.float64)
        self.n_channels = self.amplitude.size
        self.rate_hz = float(rate_hz)
        self.noise_uv = float(noise_uv)
        self.rng = np.random.default_rng(seed)
        self.waveform, self.trough = spike_waveform(rate_hz)
        self.emitted = 0
        self._spikes = np.zeros((4 * self.waveform.size, self.n_channels))
        a = float(np.exp(-2 * np.pi * LFP_HZ / rate_hz))
        self._lfp_ba = ([np.sqrt(1 - a * a) * lfp_uv], [1.0, -a])
        self._lfp_state = self.rng.standard_normal((1, self.n_channels)) * lfp_uv
        self.dc_uv = self.rng.uniform(-500.0, 500.0, self.n_channels)

    def add_spikes(self, samples: np.ndarray, channels: np.ndarray) -> int:
        """Add spike waveforms with troughs at absolute ``samples``; returns how many fitted."""
        start = np.asarray(samples, np.int64) - self.trough - self.emitted
        fits = start >= 0
        start, channels = start[fits], np.asarray(channels, np.int64)[fits]
        if start.size == 0:
            return 0
        need = int(start.max()) + self.waveform.size
        if need > self._spikes.shape[0]:
            grown = np.zeros((2 * need, self.n_channels))
            grown[: self._spikes.shape[0]] = self._spikes
            self._spikes = grown
        rows = start[:, None] + np.arange(self.waveform.size)[None, :]
        values = self.waveform[None, :] * self.amplitude[channels][:, None]
        np.add.at(self._spikes, (rows, np.broadcast_to(channels[:, None], rows.shape)), values)
        return int(start.size)

    def emit(self, n: int) -> np.ndarray:
        """The next ``n`` samples, float32 microvolts."""
        n = int(n)
        if n > self._spikes.shape[0]:
            grown = np.zeros((2 * n, self.n_channels))
            grown[: self._spikes.shape[0]] = self._spikes
            self._spikes = grown
        noise = self.rng.standard_normal((n, self.n_channels)) * self.noise_uv
        lfp, self._lfp_state = signal.lfilter(
            *self._lfp_ba,
            self.rng.standard_normal((n, self.n_channels)),
            axis=0,
            zi=self._lfp_state,
        )
        out = noise + lfp + self.dc_uv + self._spikes[:n]
        self._spikes[:-n] = self._spikes[n:].copy() if n < self._spikes.shape[0] else 0.0
        self._spikes[-n:] = 0.0
        self.emitted += n
        return out.astype(np.float32)
