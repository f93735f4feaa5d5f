"""Scanner confound levels relative to the evoked response, and the BOLD settings they give.

Real BOLD sits on a baseline about 100 times its evoked response, drifts by several times the
evoked amplitude over a run, changes its baseline by 1-2 % between runs, has intensity spikes and
moves with the head. :class:`Confounds` states these levels in the units a neuroscientist uses
(multiples of the evoked response's standard deviation, fractions of the baseline) and
:meth:`Confounds.bold_kwargs` turns them into the keyword arguments of
:class:`bci.sim.bold.BoldStream` for given per-voxel evoked standard deviations
(:meth:`bci.sim.cohort.SimulatedCohort.evoked_std`).

The ``[simulate]`` config keys have the same names (``baseline``, ``drift``, ``run_change``,
``spike_rate``, ``spike_size``, ``motion_mm``, ``motion_effect``, all 0 by default):
:meth:`Confounds.from_config` reads them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
from numpy.typing import ArrayLike


@dataclass(frozen=True)
class Confounds:
    """Confound levels of a virtual scanner; all zero (the default) is the clean simulator.

    Attributes
    ----------
    baseline : float
        Baseline signal level, in evoked standard deviations (``100``: realistic).
    drift : float
        Standard deviation over time of the slow drift, in evoked standard deviations (``4``).
    run_change : float
        Standard deviation of each voxel's relative baseline change between runs (``0.02``).
    spike_rate : float
        Fraction of volumes that are intensity spikes (``0.02``).
    spike_size : float
        A spike's size, a fraction of the baseline (``0.03``).
    motion_mm : float
        Standard deviation over time of each head-motion parameter, mm or degrees (``0.3``).
    motion_effect : float
        What motion leaves in a voxel after realignment, evoked standard deviations per mm.
    """

    baseline: float = 0.0
    drift: float = 0.0
    run_change: float = 0.0
    spike_rate: float = 0.0
    spike_size: float = 0.0
    motion_mm: float = 0.0
    motion_effect: float = 0.0

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"confound {name} must be a finite number >= 0, got {value!r}")
        if self.spike_rate > 1:
            raise ValueError(f"confound spike_rate must be <= 1, got {self.spike_rate!r}")

    @classmethod
    def from_config(cls, simulate: dict[str, Any]) -> Confounds:
        """The confounds of a validated ``[simulate]`` table (its other keys are ignored)."""
        return cls(**{f.name: float(simulate.get(f.name, 0.0)) for f in fields(cls)})

    @property
    def any(self) -> bool:
        """Whether any confound is on."""
        return any(v > 0 for v in asdict(self).values())

    def bold_kwargs(self, evoked_std: ArrayLike | list[ArrayLike]) -> dict[str, object]:
        """Keyword arguments of :class:`~bci.sim.bold.BoldStream` for these levels.

        Parameters
        ----------
        evoked_std : array_like or list of array_like
            Per-voxel standard deviation of the evoked response (one array per subject for a
            multi-subject stream).

        Returns
        -------
        dict
            ``baseline``, ``drift_std``, ``run_change``, ``spike_rate``, ``spike_size``,
            ``motion_std`` and ``motion_effect``.
        """
        multi = isinstance(evoked_std, list)
        unit = [np.asarray(e, dtype=np.float64) for e in evoked_std] if multi else None
        single = None if multi else np.asarray(evoked_std, dtype=np.float64)

        def scaled(level: float) -> object:
            return [level * u for u in unit] if unit is not None else level * single

        return {
            "baseline": scaled(self.baseline),
            "drift_std": scaled(self.drift),
            "run_change": self.run_change,
            "spike_rate": self.spike_rate,
            "spike_size": self.spike_size,
            "motion_std": self.motion_mm,
            "motion_effect": scaled(self.motion_effect),
        }


#: The levels the project's acceptance is measured at (issue 9): baseline 100x evoked, drift 4x,
#: 2 % run-to-run change, 3 % spikes on 2 % of volumes.
REALISTIC = Confounds(baseline=100.0, drift=4.0, run_change=0.02, spike_rate=0.02, spike_size=0.03)
