"""Segment-wise dejittering of a regular stream's time stamps, that never bridges a pause.

pyxdf's own dejittering fits one straight line (time = a + b * sample index) to every run of
samples without a break longer than 1 s *and* 500 sample periods; for an fMRI stream at
0.5 Hz that is 1000 s, so a 40 s pause between two runs is inside one fit and the fit spreads it
over every volume (the first volume came out 10.4 s early, the TR 2.079 s instead of 2.000 s).

Here a segment ends at any interval longer than :data:`BREAK_PERIODS` times the stream's typical
interval (the median of its intervals, so a nominal rate that disagrees with the stamps does not
matter), each segment is fitted on its own, and a fit is used only when it moves no stamp by more
than :data:`MAX_CORRECTION_S`: it then removes rounding noise and sub-millisecond jitter. A
segment whose stamps scatter more keeps its recorded stamps, because a fit there would move real
timing (an amplifier stamping chunks, a dropped sample) by more than the 1 ms a replay promises.
"""

from __future__ import annotations

import numpy as np

__all__ = ["BREAK_PERIODS", "MAX_CORRECTION_S", "dejitter", "segments"]

BREAK_PERIODS = 1.5
"""An interval longer than this many typical intervals starts a new segment."""
MAX_CORRECTION_S = 5e-4
"""A segment's fit is used only if it moves no stamp by more than this (seconds)."""


def segments(stamps: np.ndarray) -> list[tuple[int, int]]:
    """The runs of samples without a pause: ``[(start, stop), ...]``, ``stop`` exclusive.

    Parameters
    ----------
    stamps : np.ndarray
        ``(n,)`` non-decreasing time stamps.

    Returns
    -------
    list of (int, int)
        One pair per segment; a pause is an interval longer than :data:`BREAK_PERIODS` times
        the median interval.
    """
    stamps = np.asarray(stamps, dtype=np.float64)
    n = stamps.size
    if n < 2:
        return [(0, n)] if n else []
    diffs = np.diff(stamps)
    positive = diffs[diffs > 0]
    if not positive.size:
        return [(0, n)]
    typical = float(np.median(positive))
    cuts = np.flatnonzero(diffs > BREAK_PERIODS * typical) + 1
    bounds = [0, *cuts.tolist(), n]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def dejitter(stamps: np.ndarray, nominal_srate: float) -> np.ndarray:
    """Time stamps with sub-millisecond jitter removed segment by segment (see module doc).

    Parameters
    ----------
    stamps : np.ndarray
        ``(n,)`` non-decreasing time stamps, seconds.
    nominal_srate : float
        The stream's nominal rate; 0 (irregular) returns the stamps unchanged.

    Returns
    -------
    np.ndarray
        ``(n,)`` float64; never more than :data:`MAX_CORRECTION_S` from ``stamps``.
    """
    out = np.array(stamps, dtype=np.float64, copy=True)
    if nominal_srate <= 0 or out.size < 3:
        return out
    for start, stop in segments(out):
        if stop - start < 3:
            continue
        index = np.arange(stop - start, dtype=np.float64)
        y = out[start:stop]
        slope, intercept = np.polyfit(index, y - y[0], 1)
        fitted = y[0] + intercept + slope * index
        if np.max(np.abs(fitted - y)) <= MAX_CORRECTION_S:
            out[start:stop] = fitted
    return out
