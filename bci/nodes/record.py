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

LabRecorder runs in its own process, so recording never blocks the loop. Its input is a named
pipe that the supervisor holds open too (:meth:`RecordNode._fifo`): if this node dies, LabRecorder
records on; a restarted record node records into ``recording-2.xdf`` and, once its LabRecorder
has collected for :data:`OVERLAP_S`, presses Enter on the old one, which closes its file, so no
sample falls between the two files; if the node is not restarted, the supervisor lets go of the
pipe at the stop and LabRecorder, its input closed, finishes the file. A stream that does not
appear in time is logged and left out. LabRecorder failing to start, or dying during the
session, ends the session with a one-line error, unless ``[record] optional = true`` (then it is
logged and the session goes on with the bus log alone).

At the end the supervisor quiets the sources (they stop pushing, their outlets stay open), stops
the pipeline, then this node, then the sources: it handles what is still arriving
(:attr:`drain_on_stop_ms`), then watches the file until it holds every sample sent (its own
streams' counts, and the sources' from their heartbeats) and ends LabRecorder at once
(:meth:`bci.io.labrecorder.LabRecorder.close_once_recorded`: the ``recording_end`` entry on
``bci-pipeline`` makes LabRecorder write its buffer out); only if the file does not get there
within :data:`LABRECORDER_VERIFY_S` is LabRecorder told to close the file itself (up to 5 s).
Its own outlets stay open until LabRecorder has exited; the supervisor stops the sources only
then. The session's recording report then checks that the file holds every sample that was sent.
"""

from __future__ import annotations

import signal
import time
import uuid
from pathlib import Path

import pylsl

from bci.bus import Message
from bci.bus.log import BusLogWriter
from bci.io.labrecorder import LabRecorder, press_enter
from bci.lsl.counting_outlet import samples_sent
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
LABRECORDER_VERIFY_S = 3.0
"""How long the node watches the file at the end for every sample sent (about 0.5 s is usual:
LabRecorder pulls every half second)."""
LABRECORDER_PULL_S = 1.0
"""When the file does not get every sample in time: LabRecorder misses samples pushed less than
about 0.4 s before it is told to close (measured in :mod:`bci.io.labrecorder`), so it is given
this long more before Enter."""
OVERLAP_S = 1.5
"""A restarted node's LabRecorder and the one of the node that died both record this long (the
old one stops at its next pull after Enter, without that pull; the new one's first sample came
0.5 s after it announced collecting, measured), so that nothing falls between their files."""
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
        self.recorded: set[str] = set()
        self.sources_sent: dict[str, dict[str, int]] = {}  # node -> stream -> samples
        self.sources_before: dict[str, dict[str, int]] = {}  # ... before this file began
        self.recording_since = float("inf")  # wall time LabRecorder began collecting
        self.end_earlier_at = float("inf")  # when to end earlier parts' LabRecorders
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
            path,
            streams + self.outlets.streams,
            log_path=self.out / "logs" / "labrecorder.log",
            stdin_fifo=self._fifo(path),
        )
        # A SIGTERM now (the session failing to start) ends the start, and LabRecorder with it.
        signal.signal(signal.SIGTERM, _stopped_while_starting)
        try:
            names = self.recorder.start(timeout_s=self.config.record.start_timeout_s)
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
        self.recording_since = time.time()
        self.end_earlier_at = time.monotonic() + OVERLAP_S
        self.recorded = {i.name() for _, i in found} | set(samples_sent())
        self.count("xdf_streams", len(names))
        self.log.info("record: %d LSL streams into %s", len(names), path.name)

    def _fifo(self, path: Path) -> Path | None:
        """LabRecorder's input pipe for ``path``, in the session's private (0700) socket
        directory (None when this node's bus is not ipc://, e.g. it runs on another machine).

        The supervisor holds it open too, so a LabRecorder outlives this node if it dies: a
        restarted record node starts its own, then ends the old one (:meth:`_end_earlier_parts`),
        and nothing goes unrecorded in between.
        """
        endpoint = str(getattr(self.publisher, "endpoint", ""))
        if not endpoint.startswith("ipc://"):
            return None
        return Path(endpoint[len("ipc://") :]).parent / f"{path.stem}.labrecorder-stdin"

    def _end_earlier_parts(self, path: Path) -> None:
        """Press Enter on the LabRecorders of earlier parts that still record (this node died and
        was restarted): this one has collected for :data:`OVERLAP_S`, so they can close their
        files."""
        for k in range(1, int(path.stem.rsplit("-", 1)[-1]) if "-" in path.stem else 1):
            earlier = XDF_NAME if k == 1 else f"{XDF_NAME}-{k}"
            fifo = self._fifo(path.with_name(f"{earlier}.xdf"))
            if fifo is not None and press_enter(fifo):
                self.log.warning(
                    "record: the LabRecorder of %s.xdf recorded on while this node restarted; "
                    "it closes its file now",
                    earlier,
                )

    def _find_streams(self, timeout_s: float) -> list[tuple[int, pylsl.StreamInfo]]:
        """The participants' streams (subject, info), the marker stream (-1, info) and the
        scanner's trigger stream (-2, info: with ``[trigger] source = "lsl"``, and always from the
        fMRI simulator, which sends a trigger per volume as a scanner does; the rig's simulator
        in evolve sends none) in time, and the participants' head-motion streams (-3, info) from
        a scanner bridge."""
        queries = participant_queries(self.config)
        subjects = [q.subject for q in queries] + [-1]
        queries.append(marker_query(self.config))
        # a replay sends the recorded triggers only with [trigger] source = "lsl" (as acquire
        # reads them), whatever the recorded session's simulator did
        simulated_scanner = (
            self.config.simulate.enabled
            and self.config.session.mode == "decode"
            and self.config.replay is None
        )
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
        if msg.topic.startswith("heartbeat."):
            self._note_sent(msg.meta)
            return
        if msg.topic == "control":
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

    def _note_sent(self, meta: dict) -> None:
        """Keep another node's samples sent per recorded stream (from its heartbeat).

        Its first heartbeat from after LabRecorder began is what it had sent before this file:
        a restarted record node's file holds only what came after (``recording-2.xdf``).
        """
        node, sent, when = meta.get("node"), meta.get("lsl_sent"), meta.get("time")
        if not isinstance(node, str) or node == self.name or not isinstance(sent, dict):
            return
        counts = {k: v for k, v in sent.items() if k in self.recorded and type(v) is int and v >= 0}
        if node not in self.sources_before:
            if not isinstance(when, float) or when < self.recording_since:
                return  # from before this file began (queued while the node set up)
            self.sources_before[node] = counts
        self.sources_sent[node] = counts

    def expected(self) -> dict[str, int]:
        """Samples sent per recorded stream since this file began: this node's own, and the
        others' (their last heartbeat's counts less their first one's)."""
        out = {k: v for k, v in samples_sent().items() if k in self.recorded}
        for node, sent in self.sources_sent.items():
            before = self.sources_before.get(node, {})
            for name, n in sent.items():
                out[name] = out.get(name, 0) + n - before.get(name, 0)
        return out

    def tick(self) -> None:
        self.writer.maybe_flush()
        if time.monotonic() >= self.end_earlier_at and self.xdf_path is not None:
            self.end_earlier_at = float("inf")
            self._end_earlier_parts(self.xdf_path)
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
        fifo = recorder.stdin_fifo if recorder else None
        return {
            **super().status(),
            "labrecorder_pid": recorder.pid if recorder else None,
            "labrecorder_stdin": str(fifo) if fifo else None,
            "xdf": path.name if path else None,
        }

    def teardown(self) -> None:
        self.writer.close()
        if self.recorder is not None and self.outlets is not None:
            outlets = self.outlets
            if self.recorder.close_once_recorded(
                self.expected,
                lambda: outlets.push_end(self.expected()),
                timeout_s=LABRECORDER_VERIFY_S,
            ):
                self.outlets = None
                return
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
