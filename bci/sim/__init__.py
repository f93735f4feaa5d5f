"""Virtual participants: hyperalignable fMRI responses to latents, the HRF, and BOLD streams."""

from bci.sim.bold import BoldStream, cut_trials, simulate_bold, trial_window
from bci.sim.cohort import DEFAULT_SNR, SimulatedCohort
from bci.sim.hrf import SPM_HRF, HrfShape, event_response, hrf, hrf_kernel, peak_time

__all__ = [
    "DEFAULT_SNR",
    "SPM_HRF",
    "BoldStream",
    "HrfShape",
    "SimulatedCohort",
    "cut_trials",
    "event_response",
    "hrf",
    "hrf_kernel",
    "peak_time",
    "simulate_bold",
    "trial_window",
]
