"""The scanner bridge: a scanner's real-time export folder in, one LSL sample per volume out.

``bci-scanner-bridge --watch DIR --mask MASK.nii.gz`` (see :mod:`bci.bridge.cli`).

Modules
-------
volumes
    Read one NIfTI or DICOM file into a 3-D float32 volume; load and apply the ROI mask.
folder
    Watch the export folder: file completeness, acquisition order, duplicates, gaps (no LSL).
cli
    Argument parsing, logging and the loop that pushes the volumes to LSL.
"""

from bci.bridge.folder import FolderWatcher, ReadyVolume
from bci.bridge.volumes import Mask, Volume, VolumeError, load_mask, read_volume

__all__ = [
    "FolderWatcher",
    "Mask",
    "ReadyVolume",
    "Volume",
    "VolumeError",
    "load_mask",
    "read_volume",
]
