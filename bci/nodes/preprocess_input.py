"""The acquire node's online preprocessing: every participant's volumes, and their motion streams.

One :class:`~bci.nodes.volume_cleaner.StreamCleaner` per fMRI participant (``[preprocess]``;
none with ``method = "none"``, and then volumes reach the trial cutter as they came). A scanner
bridge publishes each participant stream ``NAME``'s head motion on ``NAME-motion`` (type
``Motion``, :mod:`bci.bridge.motion_outlet`); when that stream is there, its samples go to the
participant's cleaner (the GLM's motion regressors, framewise-displacement censoring). The
simulator sends no motion stream, so a live simulated session does not look for one; a replay
does (the replay node re-publishes the motion streams it finds in the recording).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pylsl
from pylsl.util import LostError

from bci.config import SessionConfig
from bci.lsl.streams import DATA_PROCESSING, MOTION_TYPE, open_inlet, pull_volumes
from bci.nodes.runs import plan_runs
from bci.nodes.volume_cleaner import CensoredVolume, StreamCleaner, make_cleaner

MOTION_RESOLVE_S = 1.0
"""How long set-up looks for the participants' motion streams (they open with their streams)."""


def find_motion_streams(
    infos: dict[int, pylsl.StreamInfo], timeout_s: float = MOTION_RESOLVE_S
) -> dict[int, pylsl.StreamInfo]:
    """The motion stream of each participant stream that has one (by name ``NAME-motion``).

    One search for every stream of type ``Motion``, done as soon as each participant's is found.
    """
    if not infos:
        return {}
    found = pylsl.resolve_bypred(f"type='{MOTION_TYPE}'", len(infos), timeout_s)
    by_name: dict[str, pylsl.StreamInfo] = {}
    for info in found:
        by_name.setdefault(info.name(), info)
    out = {}
    for subject, info in infos.items():
        motion = by_name.get(f"{info.name()}-motion")
        if motion is not None and motion.channel_count() >= 6:
            out[subject] = motion
    return out


class Preprocessing:
    """Every fMRI participant's cleaner and motion inlet (see the module docstring).

    Parameters
    ----------
    cleaners : dict of int to StreamCleaner
        Per subject.
    motion : dict of int to pylsl.StreamInlet
        Per subject that has a motion stream.
    log : logging.Logger
        The node's logger.
    """

    def __init__(
        self,
        cleaners: dict[int, StreamCleaner],
        motion: dict[int, pylsl.StreamInlet],
        log: logging.Logger,
    ) -> None:
        self.cleaners, self.motion, self.log = cleaners, motion, log

    @classmethod
    def open(
        cls,
        config: SessionConfig,
        infos: dict[int, pylsl.StreamInfo],
        tolerance_s: float,
        log: logging.Logger,
        max_buflen: int = 360,
    ) -> Preprocessing | None:
        """The session's preprocessing of the participant streams ``infos``, or None if off."""
        if config.preprocess.method == "none" or not infos:
            return None
        look = config.replay is not None or not config.simulate.enabled
        motion_infos = find_motion_streams(infos) if look else {}
        volumes = [p.volumes for p in plan_runs(config)]
        cleaners = {}
        for subject, info in infos.items():
            cleaner = make_cleaner(
                config,
                info.channel_count(),
                volumes,
                with_motion=subject in motion_infos,
                tolerance_s=tolerance_s,
            )
            if cleaner is not None:
                cleaners[subject] = cleaner
        motion = {
            s: open_inlet(i, processing=DATA_PROCESSING, max_buflen=max_buflen)
            for s, i in motion_infos.items()
        }
        settings = config.preprocess
        log.info(
            "preprocessing: %s, cutoff %g s, high-pass %s, scaling %s, censoring at FD %g mm "
            "and intensity z %g; motion streams: %s",
            settings["method"],
            settings["cutoff_s"],
            settings["highpass"],
            settings["scaling"],
            settings["fd_threshold_mm"],
            settings["intensity_z"],
            ", ".join(i.name() for i in motion_infos.values()) or "none",
        )
        return cls(cleaners, motion, log)

    def declare_run(self, start: float) -> None:
        """A run marker: every participant's run begins with the volume stamped ``start``."""
        for cleaner in self.cleaners.values():
            cleaner.declare_run(start)

    def receive(
        self, subject: int, data: np.ndarray, times: np.ndarray, now: float
    ) -> tuple[np.ndarray, np.ndarray, list[CensoredVolume]]:
        """New volumes of ``subject`` in; the volumes ready for the trial cutter out.

        Called every tick, also without new volumes (a volume may be waiting for its motion).
        """
        cleaner = self.cleaners.get(subject)
        if cleaner is None:
            return data, times, []
        inlet = self.motion.get(subject)
        if inlet is not None:
            try:
                rows, stamps = pull_volumes(inlet)
            except LostError:
                self.log.warning("subject %d: the motion stream's source was lost", subject)
                self.motion.pop(subject)
                rows, stamps = np.empty((0, 7)), np.empty(0)
            if stamps.size:
                cleaner.add_motion(rows, stamps)
        if times.size:
            cleaner.add_volumes(data, times, now)
        return cleaner.ready(now)

    def remove_subject(self, subject: int) -> None:
        """Stop preprocessing for ``subject``."""
        self.cleaners.pop(subject, None)
        inlet = self.motion.pop(subject, None)
        if inlet is not None:
            inlet.close_stream()

    def summary(self) -> dict[str, Any]:
        """Per subject: runs, volumes, censored volumes per reason, motion."""
        return {str(s): c.summary() for s, c in sorted(self.cleaners.items())}

    def close(self) -> None:
        """Close the motion inlets."""
        for inlet in self.motion.values():
            inlet.close_stream()
        self.motion = {}
