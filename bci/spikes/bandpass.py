"""A causal Butterworth band-pass that carries its state from one chunk to the next.

Filtering chunk after chunk gives exactly what filtering the whole recording at once gives
(:func:`scipy.signal.sosfilt` with the final state of one chunk as the initial state of the next),
so where a stream's chunks happen to be cut changes nothing. The first sample sets the initial
state as if the signal had stood at that value forever (:func:`scipy.signal.sosfilt_zi`), so an
amplifier's DC offset gives no step response at the start.
"""

from __future__ import annotations

import numpy as np
from scipy import signal


class BandPass:
    """Causal band-pass of ``(n_samples, n_channels)`` chunks, second-order sections.

    Parameters
    ----------
    n_channels : int
        Channels per sample.
    rate_hz : float
        Sampling rate.
    low_hz, high_hz : float
        Pass band (300-6000 Hz for spikes).
    order : int
        Butterworth order of each of the low and high edges.
    """

    def __init__(
        self,
        n_channels: int,
        rate_hz: float,
        low_hz: float = 300.0,
        high_hz: float = 6000.0,
        order: int = 2,
    ) -> None:
        if not 0 < low_hz < high_hz < rate_hz / 2:
            raise ValueError(
                f"band {low_hz:g}-{high_hz:g} Hz does not fit below the Nyquist frequency "
                f"({rate_hz / 2:g} Hz) of a {rate_hz:g} Hz stream"
            )
        self.n_channels = int(n_channels)
        self.sos = signal.butter(
            order, [low_hz, high_hz], btype="bandpass", fs=rate_hz, output="sos"
        )
        self._zi_unit = signal.sosfilt_zi(self.sos)  # (n_sections, 2), for a unit step
        self.state: np.ndarray | None = None  # (n_sections, 2, n_channels) once started

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Filter the next chunk.

        Parameters
        ----------
        x : np.ndarray
            ``(n, n_channels)`` finite samples, any float or int dtype.

        Returns
        -------
        np.ndarray
            ``(n, n_channels)`` float64, filtered.
        """
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_channels:
            raise ValueError(f"expected (n, {self.n_channels}) samples, got shape {x.shape}")
        if x.shape[0] == 0:
            return x
        if self.state is None:
            self.state = self._zi_unit[:, :, None] * x[0][None, None, :]
        y, self.state = signal.sosfilt(self.sos, x, axis=0, zi=self.state)
        return y
