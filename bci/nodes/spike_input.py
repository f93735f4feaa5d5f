"""What acquire makes of a rig's stream, by its ``kind``: spike counts per bin, for every form.

``[[acquire.streams]] kind`` says what a participant stream carries:

``counts`` (the default)
    Binned spike counts (or fMRI volumes): one sample per bin, one channel per site, a nominal
    rate. Acquire reads it as it is (no reader here).
``events``
    An irregular stream with one sample per spike, stamped at the spike: ``[channel]`` or
    ``[channel, unit]`` numbers, strings such as ``"ch12 u1"``, or one count per site (see
    :mod:`bci.spikes.event_samples`). ``channels`` sites, numbered from ``channel_base``.
:class:`EventsReader` bins them on a ``[acquire] bin_hz`` grid; a bin is final ``events_lag_s``
after its end (the app's transport delay), and an event later than that is counted as late.
``broadband``
    Raw voltage, float32 (any unit, e.g. microvolts) or int16 (any scale): the threshold is
    relative to each channel's noise level, so the scale does not matter. :class:`BroadbandReader`
    band-passes every chunk causally (``[acquire] band_hz``, ``filter_order``), finds crossings of
    ``-threshold_k`` times the robust noise level with a ``dead_time_s`` dead time, and bins them.
    NaN or Inf samples are held at the channel's last value for the filter and make their bins
    NaN, so a trial that reads them is reported bad; so does a gap of more than :data:`GAP_S`
    in the samples' time stamps (the app stalled and resumed), on every channel.

Either reader returns ``(counts, bin_times)`` like a counts stream, so trials are cut the same
way and a response times ``bin_hz`` is a rate in spikes/s.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pylsl

from bci.config import SessionConfig
from bci.config.tables import Stream
from bci.lsl.streams import pull_volumes
from bci.nodes.base import NodeError
from bci.spikes import BandPass, SpikeBinner, ThresholdDetector, parse_event_samples

KINDS = ("counts", "events", "broadband")
GAP_S = 0.05
"""A jump in a broadband stream's time stamps longer than this is a gap: its bins are NaN."""
MAX_EVENTS = 4096
"""Event samples pulled per call at most (the rest come on the next tick)."""


class SpikeStreamError(NodeError):
    """A stream cannot be read as the kind the config declares; the message says why."""


@dataclass(frozen=True)
class StreamSettings:
    """How one participant stream is read: ``[[acquire.streams]]`` ``kind``, ``channels``,
    ``channel_base``, and ``[acquire]`` ``band_hz``, ``filter_order``, ``threshold_k``,
    ``dead_time_s``, ``bin_hz``, ``events_lag_s``."""

    kind: str = "counts"
    channels: int = 0
    channel_base: int = 0
    band_hz: tuple[float, float] = (300.0, 6000.0)
    filter_order: int = 2
    threshold_k: float = 4.5
    dead_time_s: float = 0.001
    bin_hz: float = 1000.0
    events_lag_s: float = 0.1


def stream_settings(config: SessionConfig, index: int) -> StreamSettings:
    """The settings of participant stream ``index`` (counts for the simulator's default one)."""
    acq = config.acquire
    stream = acq.streams[index] if index < len(acq.streams) else Stream(subject=index)
    return StreamSettings(
        kind=stream.kind,
        channels=stream.channels,
        channel_base=stream.channel_base,
        band_hz=(acq.band_hz[0], acq.band_hz[1]),
        filter_order=acq.filter_order,
        threshold_k=acq.threshold_k,
        dead_time_s=acq.dead_time_s,
        bin_hz=acq.bin_hz,
        events_lag_s=acq.events_lag_s,
    )


Counter = Callable[[str, int], None]


class WarnOnce:
    """Warn about a kind of problem once, count every occurrence."""

    def __init__(self, log: logging.Logger, count: Counter, where: str) -> None:
        self.log, self.count, self.where, self.seen = log, count, where, set()

    def __call__(self, key: str, n: int, message: str) -> None:
        self.count(key, n)
        if key not in self.seen:
            self.seen.add(key)
            self.log.warning(
                "stream %s: %s; further ones are only counted (%s)", self.where, message, key
            )


class EventsReader:
    """Spike events in, spike counts per bin out (see the module docstring).

    Parameters
    ----------
    n_sites : int
        Sites (output channels).
    settings : StreamSettings
        ``bin_hz``, ``events_lag_s``, ``channel_base``.
    t0 : float
        Start of the first bin (LSL clock), normally when the inlet was opened.
    count, warn
        The node's counter, and a once-per-kind warning.
    """

    def __init__(
        self, n_sites: int, settings: StreamSettings, t0: float, count: Counter, warn: WarnOnce
    ) -> None:
        self.n_sites = int(n_sites)
        self.settings = settings
        self.rate_hz = settings.bin_hz
        self.binner = SpikeBinner(self.n_sites, settings.bin_hz, t0)
        self.count, self.warn = count, warn

    def read(self, inlet: pylsl.StreamInlet, now: float) -> tuple[np.ndarray, np.ndarray]:
        samples, times = inlet.pull_chunk(timeout=0.0, max_samples=MAX_EVENTS)
        if len(times):
            spike_times, sites, problems = parse_event_samples(
                samples, np.asarray(times), self.n_sites, self.settings.channel_base
            )
            self.count("events", len(times))
            self.count("spikes", int(sites.size))
            for problem in problems:
                self.warn("bad_events", 1, problem)
            self.binner.add(spike_times, sites)
        late = self.binner.late
        times_out, counts = self.binner.bins_until(now - self.settings.events_lag_s)
        if self.binner.late > late:
            self.warn(
                "late_events",
                self.binner.late - late,
                f"spike events arrived more than events_lag_s = {self.settings.events_lag_s:g} s "
                "after their time stamp and were not counted",
            )
        return counts, times_out


class BroadbandReader:
    """Raw voltage in, detected spikes per bin out (see the module docstring).

    Parameters
    ----------
    n_channels : int
        Channels of the stream (sites).
    rate_hz : float
        Its sampling rate.
    settings : StreamSettings
        Filter, threshold and bin settings.
    count, warn
        The node's counter, and a once-per-kind warning.
    """

    def __init__(
        self,
        n_channels: int,
        rate_hz: float,
        settings: StreamSettings,
        count: Counter,
        warn: WarnOnce,
    ) -> None:
        low, high = settings.band_hz
        self.n_channels = int(n_channels)
        self.sample_rate = float(rate_hz)
        self.rate_hz = settings.bin_hz
        try:
            self.filter = BandPass(n_channels, rate_hz, low, high, settings.filter_order)
        except ValueError as err:
            raise SpikeStreamError(str(err)) from None
        self.detector = ThresholdDetector(
            n_channels, rate_hz, settings.threshold_k, settings.dead_time_s
        )
        self.settings = settings
        self.binner: SpikeBinner | None = None
        self.count, self.warn = count, warn
        self._last_valid = np.zeros(self.n_channels)
        self._times: list[np.ndarray] = []  # time stamps of samples not searched yet
        self._times_from = 0  # absolute index of the first of them
        self._last_time: float | None = None

    def read(self, inlet: pylsl.StreamInlet, now: float) -> tuple[np.ndarray, np.ndarray]:
        data, times = pull_volumes(inlet, max_samples=8192)
        empty = np.empty((0, self.n_channels), np.float32), np.empty(0)
        if not times.size:
            return empty
        if self.binner is None:
            self.binner = SpikeBinner(self.n_channels, self.settings.bin_hz, float(times[0]))
        self.count("samples", int(times.size))
        self._mark_gap(float(times[0]))
        self._last_time = float(times[-1])
        x = np.asarray(data, dtype=np.float64)
        invalid = ~np.isfinite(x)
        bad = invalid if invalid.any() else None
        if bad is not None:
            x = self._hold_last_valid(x, invalid)
            rows, cols = np.nonzero(invalid)
            self.binner.add_invalid(times[rows], cols)
            self.warn("invalid_samples", int(rows.size), "NaN/Inf samples; their bins are NaN")
        else:
            self._last_valid = x[-1].copy()
        self._times.append(np.asarray(times, np.float64))
        samples, channels = self.detector.process(self.filter(x), bad)
        if self.detector.sigma is None:
            return empty  # the noise level is not known yet: hold everything back
        stamps = np.concatenate(self._times)
        self.binner.add(stamps[samples - self._times_from], channels)
        self.count("spikes", int(samples.size))
        self._times = []
        self._times_from = self.detector.n_seen
        times_out, counts = self.binner.bins_until(float(stamps[-1]) + 1.0 / self.sample_rate)
        return counts, times_out

    def _mark_gap(self, first: float) -> None:
        """Make the bins between the last sample and ``first`` NaN if they are a gap."""
        if self._last_time is None or first - self._last_time <= GAP_S:
            return
        step = self.binner.bin_s
        gap = np.arange(self._last_time + 1.0 / self.sample_rate, first, step / 2)
        self.binner.add_invalid(
            np.repeat(gap, self.n_channels), np.tile(np.arange(self.n_channels), gap.size)
        )
        self.warn(
            "sample_gaps",
            1,
            f"no samples for {first - self._last_time:.3f} s (a gap); its bins are NaN",
        )

    def _hold_last_valid(self, x: np.ndarray, invalid: np.ndarray) -> np.ndarray:
        """Each invalid sample replaced by its channel's last valid one (for the filter)."""
        index = np.where(~invalid, np.arange(x.shape[0])[:, None], -1)
        index = np.maximum.accumulate(index, axis=0)
        cols = np.broadcast_to(np.arange(x.shape[1]), x.shape)
        held = np.where(index >= 0, x[np.maximum(index, 0), cols], self._last_valid[cols])
        self._last_valid = held[-1].copy()
        return held


SpikeReader = EventsReader | BroadbandReader


def open_spike_reader(
    settings: StreamSettings,
    info: pylsl.StreamInfo,
    n_sites: int,
    t0: float,
    count: Counter,
    log: logging.Logger,
    where: str,
) -> SpikeReader:
    """The reader for an ``events`` or ``broadband`` stream, after checking the stream.

    Raises
    ------
    SpikeStreamError
        One line: why the stream cannot be read as declared (left out by acquire).
    """
    warn = WarnOnce(log, count, where)
    fmt, n_channels, rate = info.channel_format(), info.channel_count(), info.nominal_srate()
    if settings.kind == "events":
        if n_sites <= 0:
            raise SpikeStreamError(
                "is a spike-event stream but its number of sites is unknown: set "
                "[[acquire.streams]] channels"
            )
        if fmt != pylsl.cf_string and n_channels not in (1, 2, 3, n_sites):
            raise SpikeStreamError(
                f"is declared kind = 'events' but has {n_channels} channels: expected "
                f"[channel], [channel, unit] or one channel per site ({n_sites})"
            )
        return EventsReader(n_sites, settings, t0, count, warn)
    if fmt == pylsl.cf_string:
        raise SpikeStreamError("has string channels, expected broadband voltage (numbers)")
    if n_channels != n_sites:
        raise SpikeStreamError(f"has {n_channels} channels, expected {n_sites}")
    if rate <= 0:
        raise SpikeStreamError("is declared kind = 'broadband' but has no nominal rate")
    return BroadbandReader(n_channels, rate, settings, count, warn)
