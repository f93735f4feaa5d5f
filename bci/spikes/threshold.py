"""Online threshold-crossing spike detection with a robust noise level and a dead time.

Per channel, a spike is a downward crossing of ``-k * sigma``, where ``sigma`` is the robust noise
level of the band-passed signal, ``median(|x|) / 0.6745`` (Quiroga et al., 2004: spikes barely move
the median, so this is the noise's standard deviation and not inflated by the spikes). A crossing
less than the dead time (1 ms) after the channel's last spike is the same spike and is not counted.

Online, ``sigma`` comes from the signal itself: every ``noise_window_s`` of data gives one estimate
per channel (on every ``NOISE_STRIDE``-th sample, which is plenty for a median), and ``sigma`` is
the median of the last ``n_windows`` estimates, so it follows slow changes and ignores a burst.
Until the first estimate exists the data are held back; then they are searched too, so no spike
is lost at the start. Samples flagged invalid (NaN in the stream) never count as crossings and do
not enter the noise estimate.
"""

from __future__ import annotations

from collections import deque

import numpy as np

MAD_TO_SIGMA = 0.6745
"""``median(|x|) / MAD_TO_SIGMA`` is the standard deviation of Gaussian noise."""
NOISE_STRIDE = 8
"""The noise estimate reads every this-many-th sample."""


class ThresholdDetector:
    """Find threshold crossings in band-passed ``(n_samples, n_channels)`` chunks.

    Parameters
    ----------
    n_channels : int
        Channels.
    rate_hz : float
        Sampling rate.
    k : float
        Threshold in units of the robust noise level (4.5).
    dead_time_s : float
        A channel's crossings closer than this to its last spike are ignored (1 ms).
    noise_window_s : float
        Data per noise estimate; also the wait before the first detection.
    n_windows : int
        Estimates the noise level is the median of.
    """

    def __init__(
        self,
        n_channels: int,
        rate_hz: float,
        k: float = 4.5,
        dead_time_s: float = 0.001,
        noise_window_s: float = 1.0,
        n_windows: int = 5,
    ) -> None:
        if k <= 0 or dead_time_s < 0 or noise_window_s <= 0 or n_windows < 1:
            raise ValueError("need k > 0, dead_time_s >= 0, noise_window_s > 0, n_windows >= 1")
        self.n_channels = int(n_channels)
        self.k = float(k)
        self.dead = max(1, int(round(dead_time_s * rate_hz)))
        self.window = max(16, int(round(noise_window_s * rate_hz / NOISE_STRIDE)))
        self.estimates: deque[np.ndarray] = deque(maxlen=int(n_windows))
        self.sigma: np.ndarray | None = None
        self._noise: list[np.ndarray] = []  # |x| samples towards the next estimate
        self._n_noise = 0
        self._held: list[tuple[np.ndarray, np.ndarray | None]] = []
        self._held_from = 0
        self._stride_phase = 0
        self.n_seen = 0  # samples passed in so far (absolute index of the next one)
        self._done = 0  # samples already searched
        self._prev_below = np.zeros(self.n_channels, dtype=bool)
        self._last_spike = np.full(self.n_channels, -(10**12), dtype=np.int64)

    def process(
        self, y: np.ndarray, invalid: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Search the next chunk (and any held back before the noise level was known).

        Parameters
        ----------
        y : np.ndarray
            ``(n, n_channels)`` band-passed samples.
        invalid : np.ndarray, optional
            ``(n, n_channels)`` bool, True where a sample is not real data.

        Returns
        -------
        samples : np.ndarray
            int64 absolute sample indices (0 = the first sample ever passed) of the spikes.
        channels : np.ndarray
            int64 their channels. Sorted by sample, then channel.
        """
        y = np.asarray(y, dtype=np.float64)
        n = y.shape[0]
        self._update_noise(y, invalid)
        self.n_seen += n
        if self.sigma is None:
            self._held.append((y, invalid))
            return np.empty(0, np.int64), np.empty(0, np.int64)
        chunks = [*self._held, (y, invalid)]
        self._held = []
        out_s, out_c = [], []
        for chunk, bad in chunks:
            s, c = self._search(chunk, bad)
            out_s.append(s)
            out_c.append(c)
        return np.concatenate(out_s), np.concatenate(out_c)

    @property
    def threshold(self) -> np.ndarray | None:
        """``-k * sigma`` per channel, or None before the first noise estimate."""
        return None if self.sigma is None else -self.k * self.sigma

    def _update_noise(self, y: np.ndarray, invalid: np.ndarray | None) -> None:
        start = (-self._stride_phase) % NOISE_STRIDE
        sub = np.abs(y[start::NOISE_STRIDE])
        self._stride_phase = (self._stride_phase + y.shape[0]) % NOISE_STRIDE
        if invalid is not None and invalid.any():
            sub = np.where(invalid[start::NOISE_STRIDE], np.nan, sub)
        self._noise.append(sub)
        self._n_noise += sub.shape[0]
        if self._n_noise < self.window:
            return
        block = np.concatenate(self._noise)
        self._noise, self._n_noise = [], 0
        with np.errstate(all="ignore"):
            estimate = np.nanmedian(block, axis=0) / MAD_TO_SIGMA
        if self.sigma is not None:  # a channel that was all NaN keeps its level
            estimate = np.where(np.isfinite(estimate), estimate, self.sigma)
        self.estimates.append(estimate)
        sigma = np.median(np.stack(self.estimates), axis=0)
        if np.all(np.isfinite(sigma)):
            self.sigma = np.maximum(sigma, 1e-12)

    def _search(self, y: np.ndarray, invalid: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        base = self._done
        self._done += y.shape[0]
        if y.shape[0] == 0:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        below = y < -self.k * self.sigma
        if invalid is not None:
            below &= ~invalid
        onset = below.copy()
        onset[0] &= ~self._prev_below
        onset[1:] &= ~below[:-1]
        self._prev_below = below[-1].copy()
        rows, chans = np.nonzero(onset)
        if rows.size == 0:
            return rows.astype(np.int64), chans.astype(np.int64)
        order = np.lexsort((rows, chans))
        samples, chans = rows[order].astype(np.int64) + base, chans[order].astype(np.int64)
        previous = np.empty_like(samples)
        previous[1:] = samples[:-1]
        first = np.ones(samples.size, dtype=bool)
        first[1:] = chans[1:] != chans[:-1]
        previous[first] = self._last_spike[chans[first]]
        keep = samples - previous >= self.dead
        if not keep.all():  # greedy: a crossing counts only if the last *kept* one is far enough
            keep[:] = True
            last = dict.fromkeys(chans[first].tolist())
            for i, (s, c) in enumerate(zip(samples.tolist(), chans.tolist(), strict=True)):
                ref = last[c] if last[c] is not None else int(self._last_spike[c])
                if s - ref < self.dead:
                    keep[i] = False
                else:
                    last[c] = s
        samples, chans = samples[keep], chans[keep]
        if samples.size:
            np.maximum.at(self._last_spike, chans, samples)
        order = np.lexsort((chans, samples))
        return samples[order], chans[order]
