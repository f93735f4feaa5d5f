"""Choosing the evolution's target: fixed sites, their fitness, and the probe block's pick."""

from __future__ import annotations

import numpy as np
import pytest

from bci.evolve.site_choice import probe_scores, site_fitness, target_sites


def test_target_sites_and_fitness():
    assert target_sites(3) == [3] and target_sites([1, 4]) == [1, 4] and target_sites(-1) is None
    with pytest.raises(ValueError, match='unit "best" is chosen by a probe block'):
        target_sites("best")
    r = np.array([1.0, 2.0, 4.0, 8.0])
    assert site_fitness(r, [2]) == 4.0 and site_fitness(r, [1, 3]) == 5.0
    assert site_fitness(r, None) == 3.75
    with pytest.raises(IndexError, match="names site 4 but responses have 4 sites"):
        site_fitness(r, [4])


def test_probe_picks_the_most_reliable_site_not_the_loudest():
    rng = np.random.default_rng(0)
    n = 30
    reliable = 20 + rng.normal(0, 3, n)  # t about 36
    loud_but_erratic = np.where(rng.random(n) < 0.3, 120.0, -20.0)  # mean ~20, t ~2
    silent = np.zeros(n)
    responses = np.stack([loud_but_erratic, silent, reliable], axis=1)
    responses[4] = np.nan  # a bad trial is left out
    result = probe_scores(responses)
    assert result["site"] == 2 and result["n_trials"] == n - 1
    assert result["score"][1] == 0.0
    mean = np.nanmean(np.delete(responses, 4, axis=0)[:, 2])
    assert result["evoked_hz"][2] == pytest.approx(mean, abs=1e-3)
    sd = np.delete(responses, 4, axis=0)[:, 2].std(ddof=1)
    assert result["score"][2] == pytest.approx(mean / (sd / np.sqrt(n - 1)), abs=1e-3)
    with pytest.raises(ValueError, match="the probe block gave 1 usable trial"):
        probe_scores(responses[:1])
