"""Scanner confounds of the BOLD simulator: exact on top of the same noise, runs, spikes, motion."""

from __future__ import annotations

import numpy as np
import pytest

from bci.sim import BoldStream, SimulatedCohort
from bci.sim.confounds import REALISTIC, Confounds


def stream(**kwargs: object) -> BoldStream:
    return BoldStream(200, 2.0, noise_std=1.0, drift_std=0.0, baseline=0.0, seed=3, **kwargs)


def test_confounds_add_to_the_same_noise() -> None:
    clean = stream().volumes_until(398.0)
    confounded = stream(spike_rate=0.1, spike_size=0.03, motion_std=0.5, motion_effect=2.0)
    again = BoldStream(
        200,
        2.0,
        noise_std=1.0,
        drift_std=0.0,
        baseline=1000.0,
        seed=3,
        spike_rate=0.1,
        spike_size=0.03,
    )
    vols = again.volumes_until(398.0)
    diff = vols.astype(np.float64) - clean
    spikes = again.spikes[0]
    assert 8 <= len(spikes) <= 35  # 10 % of 200
    expected = np.full(200, 1000.0)
    expected[spikes] += 30.0
    np.testing.assert_allclose(diff, np.repeat(expected[:, None], 200, axis=1), atol=2e-3)
    confounded.volumes_until(398.0)
    motion = confounded.motion(0)
    assert motion.shape == (200, 6) and np.all(motion[0] == 0)
    assert 0.2 < motion[50:].std() < 1.0


def test_runs_change_the_baseline_and_reset_the_head() -> None:
    bold = BoldStream(
        5000,
        2.0,
        noise_std=0.0,
        drift_std=0.0,
        baseline=100.0,
        seed=0,
        run_change=0.02,
        motion_std=0.3,
    )
    first = bold.volumes_until(18.0)
    assert np.all(first == first[0])  # no noise, no drift: one level per run
    bold.start_run()
    second = bold.volumes_until(38.0)
    change = second[0].astype(np.float64) / first[0] - 1.0
    assert change.std() == pytest.approx(0.02 * np.sqrt(2), rel=0.05)  # two independent draws
    assert bold.run_start == 10 and np.all(bold.motion()[10] == 0) and bold.motion()[9].any()


def test_confound_levels_scale_with_the_evoked_response() -> None:
    cohort = SimulatedCohort(2, 64, 8, snr=0.1, random_state=0)
    evoked = [cohort.evoked_std(i) for i in range(2)]
    np.testing.assert_allclose(evoked[0] ** 2, 0.1 * cohort.noise_var[0])
    kwargs = REALISTIC.bold_kwargs(evoked)
    np.testing.assert_allclose(kwargs["baseline"][1], 100.0 * evoked[1])
    np.testing.assert_allclose(kwargs["drift_std"][0], 4.0 * evoked[0])
    assert (kwargs["run_change"], kwargs["spike_rate"], kwargs["spike_size"]) == (0.02, 0.02, 0.03)
    assert not Confounds().any and REALISTIC.any
    assert Confounds.from_config({"baseline": 100, "drift": 4.0, "snr": 1.0}).baseline == 100.0
    with pytest.raises(ValueError, match="confound drift must be a finite number >= 0, got -1"):
        Confounds(drift=-1)
    with pytest.raises(ValueError, match="need run_change >= 0, 0 <= spike_rate <= 1"):
        BoldStream(3, 2.0, spike_rate=2.0)
