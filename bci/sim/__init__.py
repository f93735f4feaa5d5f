"""Virtual participants: fMRI responses to latents, the HRF, BOLD streams, in-silico neurons."""

from bci.sim.bold import BoldStream, cut_trials, simulate_bold, trial_window
from bci.sim.cohort import DEFAULT_SNR, SimulatedCohort
from bci.sim.hrf import SPM_HRF, HrfShape, event_response, hrf, hrf_kernel, peak_time
from bci.sim.neurons import InSilicoPopulation, InSilicoUnit, spike_train

__all__ = [
    "DEFAULT_SNR",
    "SPM_HRF",
    "BoldStream",
    "HrfShape",
    "InSilicoPopulation",
    "InSilicoUnit",
    "SimulatedCohort",
    "cut_trials",
    "event_response",
    "hrf",
    "hrf_kernel",
    "peak_time",
    "simulate_bold",
    "spike_train",
    "trial_window",
]
