"""The canonical double-gamma haemodynamic response function (SPM's ``spm_hrf``).

SPM models the BOLD response to a brief event as a response gamma density minus a smaller, later
undershoot gamma density. With the default parameters ``[6 16 1 1 6 0 32]`` the response gamma has
shape 6 and scale 1 (mode at 5 s, the "delay of response 6 s" is its mean), the undershoot gamma has
shape 16 and scale 1, the undershoot is divided by 6, and the kernel is 32 s long. ``spm_hrf(RT)``
samples this at ``0, RT, 2 RT, ...`` up to 32 s and divides by the sum of the samples.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import minimize_scalar
from scipy.special import gammainc, gammaln, xlogy


@dataclass(frozen=True)
class HrfShape:
    """Parameters of the double-gamma HRF, in SPM's order and with SPM's defaults.

    Parameters
    ----------
    delay_s : float
        Delay of the response (SPM ``p(1)``); the response gamma has shape ``delay_s / dispersion``.
    undershoot_delay_s : float
        Delay of the undershoot (``p(2)``).
    dispersion : float
        Scale of the response gamma (``p(3)``).
    undershoot_dispersion : float
        Scale of the undershoot gamma (``p(4)``).
    ratio : float
        Ratio of response to undershoot (``p(5)``).
    onset_s : float
        Onset of the kernel (``p(6)``).
    length_s : float
        Length of the kernel (``p(7)``); the HRF is zero after it.
    """

    delay_s: float = 6.0
    undershoot_delay_s: float = 16.0
    dispersion: float = 1.0
    undershoot_dispersion: float = 1.0
    ratio: float = 6.0
    onset_s: float = 0.0
    length_s: float = 32.0


SPM_HRF = HrfShape()


def _gamma_pdf(x: np.ndarray, shape: float, scale: float) -> np.ndarray:
    pos = x > 0
    xs = np.where(pos, x, 1.0) / scale
    log_pdf = xlogy(shape - 1.0, xs) - xs - gammaln(shape) - math.log(scale)
    return np.where(pos, np.exp(log_pdf), 0.0)


def _gamma_cdf(x: np.ndarray, shape: float, scale: float) -> np.ndarray:
    return gammainc(shape, np.maximum(x, 0.0) / scale)


def hrf(t: ArrayLike, shape: HrfShape = SPM_HRF) -> np.ndarray:
    """Evaluate the (unnormalised) double-gamma HRF at times ``t``.

    ``h(t) = g(t - onset; delay/disp, disp) - g(t - onset; u_delay/u_disp, u_disp) / ratio`` for
    ``0 <= t <= length_s`` and 0 elsewhere, where ``g(x; k, theta)`` is the gamma density with shape
    ``k`` and scale ``theta``. Its integral over the kernel is about ``1 - 1 / ratio``.

    Parameters
    ----------
    t : array_like
        Times in seconds after the event.
    shape : HrfShape
        HRF parameters (SPM's canonical HRF by default).

    Returns
    -------
    np.ndarray
        ``h(t)`` in 1/s, float64, same shape as ``t``.
    """
    t = np.asarray(t, dtype=np.float64)
    x = t - shape.onset_s
    main = _gamma_pdf(x, shape.delay_s / shape.dispersion, shape.dispersion)
    under = _gamma_pdf(
        x, shape.undershoot_delay_s / shape.undershoot_dispersion, shape.undershoot_dispersion
    )
    inside = (t >= 0.0) & (t <= shape.length_s)
    return np.where(inside, main - under / shape.ratio, 0.0)


def hrf_integral(t: ArrayLike, shape: HrfShape = SPM_HRF) -> np.ndarray:
    """Integral of :func:`hrf` from 0 to ``t`` (exact, through the gamma distribution functions).

    Parameters
    ----------
    t : array_like
        Upper limits in seconds.
    shape : HrfShape
        HRF parameters.

    Returns
    -------
    np.ndarray
        ``H(t) = int_0^t h(s) ds``, float64, same shape as ``t``.
    """
    t = np.clip(np.asarray(t, dtype=np.float64), 0.0, shape.length_s)
    x = t - shape.onset_s
    main = _gamma_cdf(x, shape.delay_s / shape.dispersion, shape.dispersion)
    under = _gamma_cdf(
        x, shape.undershoot_delay_s / shape.undershoot_dispersion, shape.undershoot_dispersion
    )
    return main - under / shape.ratio


def hrf_kernel(tr: float, oversampling: int = 16, shape: HrfShape = SPM_HRF) -> np.ndarray:
    """The HRF sampled every ``tr / oversampling`` seconds over its length, summing to 1.

    With ``oversampling=1`` this is exactly SPM's ``spm_hrf(tr)``: samples at ``0, tr, 2 tr, ...``
    up to ``length_s``, divided by their sum.

    Parameters
    ----------
    tr : float
        Repetition time in seconds.
    oversampling : int
        Samples per TR.
    shape : HrfShape
        HRF parameters.

    Returns
    -------
    np.ndarray
        ``(floor(length_s / dt) + 1,)`` float64 kernel, ``dt = tr / oversampling``, unit sum.
    """
    if tr <= 0 or oversampling < 1:
        raise ValueError(
            f"need tr > 0 and oversampling >= 1, got tr={tr}, oversampling={oversampling}"
        )
    dt = tr / oversampling
    n = math.floor(shape.length_s / dt + 1e-9) + 1
    h = hrf(np.arange(n) * dt, shape)
    return h / h.sum()


def _block_unnormalised(t: np.ndarray, duration_s: float, shape: HrfShape) -> np.ndarray:
    if duration_s == 0.0:
        return hrf(t, shape)
    return (hrf_integral(t, shape) - hrf_integral(t - duration_s, shape)) / duration_s


@functools.lru_cache(maxsize=64)
def peak_time(duration_s: float = 0.0, shape: HrfShape = SPM_HRF) -> float:
    """Time of the maximum of the response to an event (``duration_s = 0``) or a block.

    Parameters
    ----------
    duration_s : float
        Stimulus duration in seconds (0 for an event).
    shape : HrfShape
        HRF parameters.

    Returns
    -------
    float
        Seconds after onset at which the response peaks (about 5 s for SPM's canonical event HRF).
    """
    if duration_s < 0:
        raise ValueError(f"duration_s must be >= 0, got {duration_s}")
    grid = np.linspace(0.0, shape.length_s + duration_s, 4001)
    i = int(np.argmax(_block_unnormalised(grid, duration_s, shape)))
    step = grid[1] - grid[0]
    lo, hi = max(grid[i] - step, 0.0), grid[i] + step
    res = minimize_scalar(
        lambda s: -float(_block_unnormalised(np.asarray(s), duration_s, shape)),
        bounds=(lo, hi),
        method="bounded",
        options={"xatol": 1e-9},
    )
    return float(res.x)


@functools.lru_cache(maxsize=64)
def _peak_value(duration_s: float, shape: HrfShape) -> float:
    return float(_block_unnormalised(np.asarray(peak_time(duration_s, shape)), duration_s, shape))


def event_response(t: ArrayLike, duration_s: float = 0.0, shape: HrfShape = SPM_HRF) -> np.ndarray:
    """Response to a stimulus starting at 0 and lasting ``duration_s``, scaled to peak at 1.

    The response is the HRF convolved with a boxcar of the given duration (evaluated exactly from
    the gamma distribution functions, so onsets need not fall on any sampling grid), divided by its
    maximum; a pattern multiplied by it therefore reaches its full amplitude at :func:`peak_time`.

    Parameters
    ----------
    t : array_like
        Times in seconds after the onset.
    duration_s : float
        Stimulus duration in seconds; 0 gives the event (impulse) response.
    shape : HrfShape
        HRF parameters.

    Returns
    -------
    np.ndarray
        float64 response, same shape as ``t``; 0 before the onset and after
        ``length_s + duration_s``.
    """
    t = np.asarray(t, dtype=np.float64)
    return _block_unnormalised(t, float(duration_s), shape) / _peak_value(float(duration_s), shape)
