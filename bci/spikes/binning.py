"""Spike times into counts per bin, emitted once a bin can no longer change.

A :class:`SpikeBinner` turns what a rig sends (spikes found in broadband voltage, or spike events)
into the form acquire cuts trials from: one ``(n_channels,)`` sample of spike counts per bin, on a
regular grid ``t0 + k / bin_hz`` stamped with the bin's start. A bin is emitted when the caller
says that time has been covered (the broadband stream's last sample, or "now" minus the event
stream's transport lag); a spike that arrives for a bin already emitted is counted in ``late``
and lost. A bin that holds an invalid sample (NaN in the stream) on a channel is NaN there, so
a trial that reads it is reported bad rather than quietly short of spikes.
"""

from __future__ import annotations

import math

import numpy as np


class SpikeBinner:
    """Count spikes per channel in regular bins.

    Parameters
    ----------
    n_channels : int
        Channels (sites).
    bin_hz : float
        Bins per second.
    t0 : float
        Start of bin 0 (the stream's clock).
    """

    def __init__(self, n_channels: int, bin_hz: float, t0: float) -> None:
        if bin_hz <= 0 or not math.isfinite(t0):
            raise ValueError(f"need bin_hz > 0 and a finite t0, got {bin_hz}, {t0}")
        self.n_channels = int(n_channels)
        self.bin_s = 1.0 / float(bin_hz)
        self.t0 = float(t0)
        self.next_bin = 0
        self.late = 0
        self._spikes: list[tuple[np.ndarray, np.ndarray]] = []
        self._invalid: list[tuple[np.ndarray, np.ndarray]] = []

    def bin_of(self, times: np.ndarray) -> np.ndarray:
        """Bin index of each time (int64)."""
        return np.floor((np.asarray(times, np.float64) - self.t0) / self.bin_s).astype(np.int64)

    def add(self, times: np.ndarray, channels: np.ndarray) -> None:
        """Spikes at ``times`` on ``channels`` (equal-length 1-D arrays)."""
        if len(times):
            self._spikes.append((self.bin_of(times), np.asarray(channels, np.int64)))

    def add_invalid(self, times: np.ndarray, channels: np.ndarray) -> None:
        """Samples at ``times`` on ``channels`` were invalid: their bins become NaN there."""
        if len(times):
            self._invalid.append((self.bin_of(times), np.asarray(channels, np.int64)))

    def bins_until(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Every bin that ends at or before ``t`` and was not returned yet.

        Returns
        -------
        times : np.ndarray
            ``(n,)`` float64 bin start times.
        counts : np.ndarray
            ``(n, n_channels)`` float32 spike counts (NaN where a sample was invalid).
        """
        last = int(math.floor((t - self.t0) / self.bin_s + 1e-9))  # bins [next_bin, last)
        n = max(0, last - self.next_bin)
        counts = np.zeros((n, self.n_channels), dtype=np.float32)
        self._spikes = self._drain(self._spikes, last, counts, nan=False)
        self._invalid = self._drain(self._invalid, last, counts, nan=True)
        times = self.t0 + (self.next_bin + np.arange(n)) * self.bin_s
        self.next_bin = max(self.next_bin, last)
        return times, counts

    def _drain(
        self, pending: list[tuple[np.ndarray, np.ndarray]], last: int, counts: np.ndarray, nan: bool
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        if not pending:
            return pending
        bins = np.concatenate([b for b, _ in pending])
        chans = np.concatenate([c for _, c in pending])
        early = bins < self.next_bin
        if not nan:
            self.late += int(np.count_nonzero(early))
        now = ~early & (bins < last)
        if now.any():
            rows = bins[now] - self.next_bin
            if nan:
                counts[rows, chans[now]] = np.nan
            else:
                np.add.at(counts, (rows, chans[now]), 1.0)
        later = bins >= last
        return [(bins[later], chans[later])] if later.any() else []
