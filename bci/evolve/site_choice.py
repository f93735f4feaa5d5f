"""Which recorded site(s) an evolution drives: one, a few, all, or the best of a probe block.

``[evolve] unit`` names the target: a site index (a channel of the response vector), a list of
them (the fitness is the mean of their responses), ``-1`` (the mean of all sites), or ``"best"``.
For ``"best"`` a probe block of reference images runs before evolution, as a rig operator
screens the array for a visual site, and the site with the most reliable visual response is
chosen: the largest t value of its evoked rate over the probe trials (mean response, which is
the rate in the window minus the baseline rate, divided by its standard error). A site that
fires a lot but inconsistently, or not at all, scores low; one whose every trial answers
scores high.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

PROBE = "evolve/probe.json"
"""The probe block's result inside the session folder (``unit = "best"``)."""
METRIC = "t of the evoked rate over the probe trials (mean / standard error)"


def target_sites(unit: int | list[int] | str) -> list[int] | None:
    """The sites a fixed ``[evolve] unit`` names; None for the mean of all (``-1``).

    Raises
    ------
    ValueError
        For ``"best"``, which only a probe block resolves.
    """
    if unit == "best":
        raise ValueError('unit "best" is chosen by a probe block')
    if isinstance(unit, list):
        return [int(u) for u in unit]
    return None if int(unit) == -1 else [int(unit)]


def site_fitness(response: np.ndarray, sites: list[int] | None) -> float:
    """The fitness of one response vector: the mean over ``sites`` (all if None).

    Raises
    ------
    IndexError
        A site beyond the vector (the message names it and the vector's length).
    """
    response = np.asarray(response, dtype=np.float64)
    if sites is None:
        return float(response.mean())
    if max(sites) >= response.size:
        raise IndexError(
            f"[evolve] unit names site {max(sites)} but responses have {response.size} sites"
        )
    return float(response[sites].mean())


def probe_scores(responses: np.ndarray) -> dict[str, Any]:
    """Every site's probe response and reliability, and the chosen site.

    Parameters
    ----------
    responses : np.ndarray
        ``(n_trials, n_sites)`` evoked rates (spikes/s) of the probe trials; rows with NaN
        (bad trials) are left out.

    Returns
    -------
    dict
        ``site`` (the chosen index), ``score`` (per site, :data:`METRIC`), ``evoked_hz``
        (per site mean), ``n_trials`` (trials used) and ``metric``.

    Raises
    ------
    ValueError
        Fewer than two usable trials.
    """
    r = np.asarray(responses, dtype=np.float64)
    r = r[np.isfinite(r).all(axis=1)] if r.ndim == 2 else r.reshape(0, 1)
    if r.shape[0] < 2:
        raise ValueError(f"the probe block gave {r.shape[0]} usable trial(s); need at least 2")
    mean = r.mean(axis=0)
    se = r.std(axis=0, ddof=1) / math.sqrt(r.shape[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.where(se > 0, mean / se, np.where(mean > 0, np.inf, 0.0))
    finite = np.where(np.isfinite(score), score, np.where(score > 0, 1e12, -1e12))
    return {
        "site": int(np.argmax(finite)),
        "score": [round(float(s), 3) if math.isfinite(s) else None for s in score],
        "evoked_hz": [round(float(m), 3) for m in mean],
        "n_trials": int(r.shape[0]),
        "metric": METRIC,
    }
