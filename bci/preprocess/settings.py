"""The ``[preprocess]`` settings of a session: what each key means and its default.

========================  ==========  ============================================================
key                       default     meaning
========================  ==========  ============================================================
``method``                ``"glm"``   ``"glm"``: detrend, scale and censor every volume;
                                      ``"none"``: volumes pass through untouched (no censoring)
``cutoff_s``              ``256.0``   high-pass cutoff: DCT drift regressors with periods >= it,
                                      and the -3 dB period of the exponential high-pass
``highpass``              ``"ema"``   ``"ema"``: then remove each volume's local level (an
                                      exponential moving average, see :mod:`.highpass`);
                                      ``"none"``: the cumulative GLM alone
``horizon_s``             ``0.0``     DCT horizon; 0: the run's scheduled length, else 512 s
``global_signal``         ``false``   ``true``: then remove what every voxel shares (each voxel's
                                      fit on the volumes' mean, see :mod:`.global_signal`)
``motion_regressors``     ``true``    add the six motion parameters to the GLM when supplied
``ridge``                 ``1000.0``  ridge penalty on the drift terms (in volumes)
``scaling``               ``"zscore"`` ``"zscore"``, ``"psc"`` (percent signal change) or ``"none"``
``fd_threshold_mm``       ``0.5``     censor volumes moving more than this (0: off)
``intensity_z``           ``5.0``     censor global intensity jumps beyond this robust z (0: off)
========================  ==========  ============================================================
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from bci.preprocess.scaling import SCALINGS

METHODS = ("glm", "none")
HIGHPASSES = ("ema", "none")


@dataclass(frozen=True)
class PreprocessSettings:
    """How volumes are preprocessed (see the module docstring for each field)."""

    method: str = "glm"
    cutoff_s: float = 256.0
    highpass: str = "ema"
    global_signal: bool = False
    horizon_s: float = 0.0
    motion_regressors: bool = True
    ridge: float = 1000.0
    scaling: str = "zscore"
    fd_threshold_mm: float = 0.5
    intensity_z: float = 5.0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.highpass not in HIGHPASSES:
            raise ValueError(
                f"highpass must be one of {', '.join(HIGHPASSES)}, got {self.highpass!r}"
            )
        if self.scaling not in SCALINGS:
            raise ValueError(f"scaling must be one of {', '.join(SCALINGS)}, got {self.scaling!r}")
        for name in ("cutoff_s", "horizon_s", "ridge", "fd_threshold_mm", "intensity_z"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")

    @classmethod
    def from_config(cls, table: dict[str, Any]) -> PreprocessSettings:
        """Settings from a validated ``[preprocess]`` table (unknown keys are an error)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(table) - known)
        if unknown:
            raise ValueError(f"unknown [preprocess] key {unknown[0]!r}")
        return cls(**table)
