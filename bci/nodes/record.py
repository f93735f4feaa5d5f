"""The record node: the session into its folder, as a bus log and as one XDF file.

* Every bus message except heartbeats goes to the session's bus log (``bus/``, flushed at least
  every half second; see :mod:`bci.bus.log`).
* At set-up the node finds the session's LSL streams (the participants' data and the display's
  markers), opens the pipeline's derived streams (:mod:`bci.nodes.pipeline_streams`) and starts
  LabRecorder on all of them (:mod:`bci.io.labrecorder`) into ``recording.xdf``; it reports
  ready once LabRecorder collects, so nothing the session does is missing from the file. During
  the session it pushes each derived bus message onto its LSL stream, so the XDF holds the
  whole session: read it with pyxdf, MNE (:func:`bci.io.to_mne`) or replay it
  (``bci-session --replay``).

LabRecorder runs in its own process, so recording never blocks the loop; if this node dies,
LabRecorder sees its input close and finishes the file. A stream that does not appear in time is
logged and left out. LabRecorder failing to start, or dying during the session, ends the session
with a one-line error, unless ``[record] optional = true`` (then it is logged and the session
goes on with the bus log alone).

At the end the supervisor quiets the sources (they stop pushing, their outlets stay open), stops
the pipeline, then this node, then the sources: it handles what is still arriving
(:attr:`drain_on_stop_ms`) and lets LabRecorder pull for :data:`LABRECORDER_PULL_S` before it
closes the file, and keeps its own outlets open until LabRecorder has exited; the supervisor
stops the sources only then. The session's recording report then checks that the file holds
every sample that was sent.
"""

from __future__ import annotations

import signal
import time
import uuid
from pathlib import Path

import pylsl

from bci.bus import Message
from bci.bus.log import BusLogWriter
from bci.io.labrecorder import LabRecorder
from bci.lsl.streams import (
    find_streams,
    marker_query,
    participant_queries,
    session_id,
    trigger_query,
)
from bci.nodes.base import Node, NodeError
from bci.nodes.pipeline_streams import PipelineOutlets
from bci.nodes.preprocess_input import find_motion_streams
from bci.stimulus_set import load_stimulus_set

XDF_NAME = "recording"
LABRECORDER_PULL_S = 1.0
"""LabRecorder misses samples pushed less than about 0.4 s before it is told to close (measured
in :mod:`bci.io.labrecorder`); at the end it is given this long after the bus has gone quiet
(the sources are quiet already, their outlets still open)."""
LABRECORDER_CLOSE_S = 6.0
"""How long the node waits, after Enter, for LabRecorder to close the file (it takes up to 5 s,
see :mod:`bci.io.labrecorder`) before its own outlets go."""


def next_xdf_path(folder: Path, name: str = XDF_NAME) -> Path:
    """``recording.xdf``, or ``recording-2.xdf``, ... when a resumed session records again."""
    path, k = folder / f"{name}.xdf", 2
    while path.exists():
        path, k = folder / f"{name}-{k}.xdf", k + 1
    return path


class RecordNode(Node):
    """Write the bus log; record the session's LSL streams and derived streams into XDF."""

    name = "record"
    topics = ("",)
    poll_ms = 100.0
    drain_on_stop_ms = 200.0

    def setup(self) -> None:
        self.writer = BusLogWriter(self.out / "bus")
        self.outlets: PipelineOutlets | None = None
        self.recorder: LabRecorder | None = None
        self.xdf_path: Path | None = None
        self.optional = bool(self.config.record.optional)
        if not self.config.record.xdf:
            self.log.info("record: XDF recording is off ([record] xdf = false)")
            return
        found = self._find_streams(self.config.acquire.resolve_timeout_s)
        channels = {subject: info.channel_count() for subject, info in found if subject >= 0}
        latent_dim = load_stimulus_set(self.config.stimuli.path).latent_dim
        evolve = self.config.session.mode == "evolve"
        sid = session_id(self.config) or uuid.uuid4().hex[:8]
        self.outlets = PipelineOutlets(sid, latent_dim, channels, fitness=evolve)
        streams = [{"name": i.name(), "source_id": i.source_id()} for _, i in found]
        path = next_xdf_path(self.out)
        self.recorder = LabRecorder(
            path, streams + self.outlets.streams, log_path=self.out / "logs" / "labrecorder.log"
        )
        # A SIGTERM now (the session failing to start) ends the start, and LabRecorder with it.
        signal.signal(signal.SIGTERM, _stopped_while_starting)
        try:
            names = self.recorder.start(timeout_s=self.config.acquire.resolve_timeout_s)
        except (OSError, RuntimeError) as err:
            self.recorder = None
            if not self.optional:
                raise NodeError(
                    f"record: no XDF recording: {err} ([record] optional = true goes on without)"
                ) from None
            self.log.error("record: no XDF recording ([record] optional = true): %s", err)
            return
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the runner's, until set-up is done
        self.xdf_path = path
        self.count("xdf_streams", len(names))
        self.log.info("record: %d LSL streams into %s", len(names), path.name)

    def _find_streams(self, timeout_s: float) -> list[tuple[int, pylsl.StreamInfo]]:
        """The participants' streams (subject, info), the marker stream (-1, info) and the
        scanner's trigger stream (-2, info: with ``[trigger] source = "lsl"``, and always from the
        fMRI simulator, which sends a trigger per volume as a scanner does; the rig's simulator
        in evolve sends none) in time, and the participants' head-motion streams (-3, info) from
        a scanner bridge."""
        queries = participant_queries(self.config)
        subjects = [q.subject for q in queries] + [-1]
        queries.append(marker_query(self.config))
        simulated_scanner = self.config.simulate.enabled and self.config.session.mode == "decode"
        if self.config.trigger.source == "lsl" or simulated_scanner:
            subjects.append(-2)
            queries.append(trigger_query(self.config))
        found = []
        for subject, query, info in zip(
            subjects, queries, find_streams(queries, timeout_s), strict=True
        ):
            if info is None:
                self.log.warning(
                    "record: no LSL stream with %s within %g s; not in the XDF file",
                    query.describe(),
                    timeout_s,
                )
            else:
                found.append((subject, info))
        if self.config.replay is not None or not self.config.simulate.enabled:
            # a scanner bridge's head-motion streams (the simulator sends none)
            motion = find_motion_streams({s: i for s, i in found if s >= 0})
            found += [(-3, info) for info in motion.values()]
        return found

    def handle(self, msg: Message) -> None:
        if msg.topic.startswith("heartbeat.") or msg.topic == "control":
            return
        self.writer.write(msg)
        self.count("messages")
        if self.outlets is not None:
            try:
                self.outlets.push(msg)
            except (ValueError, TypeError, IndexError, OverflowError) as err:
                if not self.counters.get("unstreamable"):
                    self.log.warning("record: %r message not streamed to LSL: %s", msg.topic, err)
                self.count("unstreamable")

    def tick(self) -> None:
        self.writer.maybe_flush()
        recorder = self.recorder
        if recorder is not None and recorder.proc is not None and recorder.proc.poll() is not None:
            what = (
                f"record: LabRecorder exited with code {recorder.proc.returncode} during the "
                f"session; {recorder.path.name} ends there"
            )
            self.recorder = None
            if not self.optional:
                raise NodeError(what)
            self.log.error("%s ([record] optional = true: the session goes on)", what)
            self.count("labrecorder_died")

    def status(self) -> dict:
        """Heartbeat payload; with LabRecorder's pid, which the supervisor waits for at the end,
        and the XDF file this node records into."""
        recorder = getattr(self, "recorder", None)  # heartbeats start before setup
        path = getattr(self, "xdf_path", None)
        return {
            **super().status(),
            "labrecorder_pid": recorder.pid if recorder else None,
            "xdf": path.name if path else None,
        }

    def teardown(self) -> None:
        self.writer.close()
        if self.recorder is not None:
            # Let LabRecorder pull the last samples (ours and the quiet sources'), then close.
            time.sleep(LABRECORDER_PULL_S)
            self.recorder.finish()
            # Our derived outlets stay open until LabRecorder has closed its inlets (an outlet
            # that goes first is a broken stream to liblsl, an ERR line and 2 s more to close).
            if not self.recorder.wait_closed(LABRECORDER_CLOSE_S):
                self.log.warning(
                    "record: LabRecorder still closing %s after %g s",
                    self.recorder.path.name,
                    LABRECORDER_CLOSE_S,
                )
        self.outlets = None


NODE = RecordNode


def _stopped_while_starting(*_: object) -> None:
    raise NodeError("record: stopped while LabRecorder was starting")
