"""Framewise displacement of rigid-body head motion (Power et al., NeuroImage 2012).

``FD_t = |dx| + |dy| + |dz| + r * (|d alpha| + |d beta| + |d gamma|)`` between consecutive volumes,
translations in mm, rotations converted from degrees to radians and turned into arc length on a
sphere of radius ``r`` = 50 mm (about the distance from the head's centre to the cortex).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

HEAD_RADIUS_MM = 50.0
"""Radius that turns rotations into displacement."""


def framewise_displacement(
    previous: ArrayLike, current: ArrayLike, radius_mm: float = HEAD_RADIUS_MM
) -> float:
    """FD in mm between two volumes' motion parameters.

    Parameters
    ----------
    previous, current : array_like
        ``(6,)`` translations x, y, z (mm) then rotations about x, y, z (degrees).
    radius_mm : float
        Head radius for the rotations.

    Returns
    -------
    float
        The framewise displacement in mm.
    """
    a = np.asarray(previous, dtype=np.float64).reshape(-1)
    b = np.asarray(current, dtype=np.float64).reshape(-1)
    if a.shape != (6,) or b.shape != (6,):
        raise ValueError(f"motion parameters must have 6 values, got {a.size} and {b.size}")
    d = np.abs(b - a)
    return float(d[:3].sum() + radius_mm * math.radians(1.0) * d[3:].sum())
