"""Online, causal fMRI preprocessing of each volume as it arrives (before the trial cutter).

Modules
-------
settings
    The ``[preprocess]`` settings and their defaults.
drift
    Constant, linear and DCT drift regressors of a run, below the high-pass cutoff.
glm
    The cumulative GLM: detrend each volume against the run so far, constant cost per volume.
highpass
    The exponential high-pass after the GLM: each volume minus its run's local level.
global_signal
    Global signal regression over the run so far: what every voxel shares.
scaling
    Per-run scaling: running z-score or percent signal change.
framewise
    Framewise displacement of rigid-body motion parameters.
censor
    Which volumes to leave out (non-finite, motion, global intensity jumps).
preprocessor
    :class:`VolumePreprocessor`, the per-volume API the acquire node, bci-train and replay use.
"""

from bci.preprocess.framewise import framewise_displacement
from bci.preprocess.preprocessor import CleanVolume, VolumePreprocessor
from bci.preprocess.settings import PreprocessSettings

__all__ = ["CleanVolume", "PreprocessSettings", "VolumePreprocessor", "framewise_displacement"]
