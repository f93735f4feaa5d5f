"""A decode session's scanner runs: what each run presents and how many volumes it lasts.

A session is a sequence of runs (calibration runs, phase ``"train"``, then test runs, phase
``"test"``), declared in the config as ``[[runs]]`` tables; a config without them has one
calibration run of ``[stimuli] n_train`` trials and one test run of ``n_test`` trials. Each run
starts on the scanner's first trigger (:mod:`bci.nodes.trigger`); its times are scanner seconds
from that trigger:

* trial ``k`` of the run begins at ``lead_in_s + k * (stimulus_s + isi_s)``;
* the run lasts ``volumes`` volumes, ``volumes * tr_s``; by default enough for the last trial's
  response window (``delay_s + window_s`` after its onset) to be acquired, plus two volumes.

Trial numbers and stimuli run on over the session's runs (run 0 shows stimuli ``0 .. n - 1``,
run 1 the next ones, ...), as the markers write them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from bci.config import SessionConfig
from bci.config.tables import Run
from bci.nodes.schedule import Schedule, Trial

_EPS = 1e-9


@dataclass(frozen=True)
class RunPlan:
    """One scanner run of a session.

    Attributes
    ----------
    index : int
        Run number, from 0.
    phase : str
        ``"train"`` (calibration) or ``"test"``.
    first_trial : int
        Session trial number (and stimulus row) of the run's first trial.
    n_trials : int
        Trials presented in the run.
    volumes : int
        Volumes the scanner acquires in the run (one trigger each).
    """

    index: int
    phase: str
    first_trial: int
    n_trials: int
    volumes: int


def default_volumes(n_trials: int, config: SessionConfig) -> int:
    """Volumes a run of ``n_trials`` needs: until its last response window has been acquired."""
    timing, acquire = config.timing, config.acquire
    trial_s = timing.stimulus_s + timing.isi_s
    last_onset = timing.lead_in_s + (n_trials - 1) * trial_s
    end = max(last_onset + acquire.delay_s + acquire.window_s, n_trials * trial_s)
    # + 2: the volume that ends the last window, and one TR of slack for a free-running start
    return int(math.ceil(end / timing.tr_s - _EPS)) + 2


def declared_runs(config: SessionConfig) -> list[Run]:
    """The ``[[runs]]`` of a config, or the two runs a config without them has."""
    if config.runs:
        return list(config.runs)
    stimuli = config.stimuli
    out = [Run(phase="train", trials=stimuli.n_train)] if stimuli.n_train else []
    return [*out, Run(phase="test", trials=stimuli.n_test)]


def plan_runs(config: SessionConfig) -> list[RunPlan]:
    """The session's runs, in order (see the module docstring)."""
    plans, first = [], 0
    for k, run in enumerate(declared_runs(config)):
        volumes = run.volumes or default_volumes(run.trials, config)
        plans.append(RunPlan(k, run.phase, first, run.trials, volumes))
        first += run.trials
    return plans


def run_schedule(plan: RunPlan, ids: Sequence[str], config: SessionConfig) -> Schedule:
    """The display's schedule of one run, in wall seconds from the run's first trigger.

    Raises
    ------
    ValueError
        The stimulus set has fewer stimuli than the runs present.
    """
    end = plan.first_trial + plan.n_trials
    if len(ids) < end:
        raise ValueError(
            f"the stimulus set has {len(ids)} stimuli but the runs present {end} "
            f"(run {plan.index} ends with trial {end - 1})"
        )
    timing = config.timing
    scale = float(timing.time_scale)
    trial_s = timing.stimulus_s + timing.isi_s
    lead = timing.lead_in_s
    trials = []
    for k in range(plan.n_trials):
        onset = (lead + k * trial_s) / scale
        i = plan.first_trial + k
        trials.append(
            Trial(i, i, str(ids[i]), plan.phase, onset, onset + timing.stimulus_s / scale)
        )
    duration = max(plan.volumes * timing.tr_s, lead + plan.n_trials * trial_s)
    return Schedule(trials, duration / scale)
