"""The bridge's companion motion stream: each volume's six motion parameters and its FD.

For a participant stream ``NAME`` (source_id ``SID``) the motion stream is ``NAME-motion``
(source_id ``SID-motion``), type ``Motion``, seven float32 channels (:data:`CHANNELS`: the
parameters of :mod:`bci.bridge.motion` then ``fd_mm``), nominal rate ``1/TR``, one sample per
pushed volume with the same time stamp as that volume's sample. A volume whose motion cannot be
estimated (NaN/Inf voxels) is pushed unrealigned and its motion sample is all NaN.
"""

from __future__ import annotations

import logging

import numpy as np
import pylsl

from bci.bridge.motion import PARAMETER_LABELS, MotionCorrector
from bci.bridge.volumes import Volume
from bci.lsl.streams import MOTION_TYPE, make_outlet, motion_stream_name

CHANNELS = (*PARAMETER_LABELS, "fd_mm")

__all__ = ["CHANNELS", "MOTION_TYPE", "MotionOutlet", "motion_stream_name"]

log = logging.getLogger(__name__)


class MotionOutlet:
    """Estimates each volume's motion, realigns it (optionally) and publishes the parameters.

    Parameters
    ----------
    name, source_id : str
        The participant stream's identity (the motion stream appends ``-motion``).
    realign : bool
        Hand back the volume resampled onto the run's reference (else as it came).
    corrector : MotionCorrector or None
        The estimator (default: a new :class:`MotionCorrector`).
    """

    def __init__(
        self, name: str, source_id: str, realign: bool, corrector: MotionCorrector | None = None
    ) -> None:
        self.name, self.source_id, self.realign = name, source_id, realign
        self.corrector = corrector or MotionCorrector()
        self.outlet: pylsl.StreamOutlet | None = None
        self._warned: set[str] = set()

    def open(self, tr_s: float) -> None:
        """Create the LSL outlet (once the participant stream's TR is known)."""
        self.outlet = make_outlet(
            motion_stream_name(self.name),
            MOTION_TYPE,
            len(CHANNELS),
            1.0 / tr_s,
            motion_stream_name(self.source_id),
            labels=list(CHANNELS),
            desc={
                "manufacturer": "bci scanner bridge",
                "tr_s": repr(tr_s),
                "reference": "the first volume of the run",
                "units": "mm and degrees, rotations about the volume's centre; fd_mm: Power FD",
                "realigned": str(self.realign).lower(),
            },
        )

    def process(self, file_name: str, volume: Volume) -> tuple[np.ndarray, np.ndarray]:
        """The volume to mask (realigned or not) and its motion sample ``(7,)``."""
        affine = volume.affine if volume.affine is not None else np.eye(4)
        try:
            motion = self.corrector.correct(volume.data, affine)
        except ValueError as err:
            if str(err) not in self._warned:  # once per kind of problem, not once per volume
                log.warning("%s: %s; pushed unrealigned, motion NaN", file_name, err)
                self._warned.add(str(err))
            return volume.data, np.full(len(CHANNELS), np.nan, dtype=np.float32)
        row = np.array([*motion.params, motion.fd_mm], dtype=np.float32)
        log.debug("%s: motion %s, FD %.3f mm", file_name, np.round(motion.params, 3), motion.fd_mm)
        return (motion.realigned if self.realign else volume.data), row

    def push(self, row: np.ndarray, stamp: float) -> None:
        """Push one motion sample with its volume's time stamp."""
        if self.outlet is not None:
            self.outlet.push_chunk(row.reshape(1, -1), stamp)
