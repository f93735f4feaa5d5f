"""The replay node: a recording's streams re-published on LSL in place of the live sources.

``bci-session --replay FILE --speed X`` starts this node instead of the simulator and the display;
acquire, decode or evolve, render and record run as they do live, on the replayed streams.

* Set-up reads the recording (:func:`bci.io.read_recording`: XDF through pyxdf with clock
  synchronisation, stamps within 1 ms of the recorded ones, or any file MNE reads) and its
  continuations (``recording-2.xdf``, ... beside ``recording.xdf``: a restarted record node's or
  a resumed session's; :func:`bci.io.recording.read_recording_parts`) as one, checks that
  every stream the session needs is in it (the participants' streams and the marker stream, by
  name / type / source_id as configured; a missing one is a one-line error; several recorded
  streams that match one query, e.g. a scanner bridge restarted for each run, are merged into
  one), adds the scanner's trigger stream when the config names one and the recording has it,
  and each participant's head-motion stream (``NAME-motion``, type ``Motion``, from a scanner
  bridge) when the recording has it (acquire's preprocessing uses it as it did live),
  lists what it will not replay (unusable streams with the reason, streams the session does not
  use, the pipeline's own derived streams of a recorded bci session), and opens the outlets
  (:class:`bci.replay.ReplayPlayer`), each buffering its whole stream. A recording whose
  markers hold nothing the pipeline would answer (decode: no test-phase stimulus marker;
  evolve: no stimulus marker), e.g. a truncated one or another program's markers, is a
  one-line error: the session stops with a non-zero exit instead of replaying to no end.
* Its heartbeat's ``pushed`` counts the samples pushed per stream, which the summary sets
  against what acquire received (``replay.samples``: pushed, received, lost).
* From the session's start it pushes every sample when its time comes (``--speed 0``: all at
  once, a long slow stream paced, :mod:`bci.replay.player`), stamped with the recorded timing
  scaled by ``1 / speed``.
* When everything is pushed it waits until the pipeline has answered every recorded trial
  (decode: a latent for each test-phase stimulus marker; evolve: fitness for each generation
  shown), or until nothing has come for :data:`IDLE_S` (a model being fitted is not idle), and
  then ends the session (``schedule_done``).
"""

from __future__ import annotations

import time
from pathlib import Path

from pylsl import local_clock

from bci.bus import Message
from bci.bus.topics import EVENTS, FITNESS, LATENTS
from bci.io.recording import read_recording_parts
from bci.io.streams import RecordedStream, Recording, merge_streams
from bci.lsl.markers import decode_marker
from bci.lsl.streams import (
    MOTION_TYPE,
    StreamQuery,
    base_source_id,
    marker_query,
    motion_stream_name,
    participant_queries,
    session_id,
    trigger_query,
)
from bci.nodes.base import Node, NodeError
from bci.nodes.pipeline_streams import is_derived
from bci.replay import ReplayPlayer

IDLE_S = 10.0
"""After the last sample, the session ends when the pipeline has been quiet this long (wall s)."""
SETTLE_S = 1.0
"""The session ends no sooner than this after the last push (wall s), so that acquire has
pulled every sample before it stops and the summary's lost-sample count is true."""


def matches(stream: RecordedStream, query: StreamQuery) -> bool:
    """Whether a recorded stream is the one ``query`` looks for (empty fields match anything)."""
    return all(
        not want or have == want
        for want, have in (
            (query.name, stream.name),
            (query.type, stream.type),
            # a session's own streams carry its id (bci.lsl.streams.SESSION_ID_KEY)
            (base_source_id(query.source_id), base_source_id(stream.source_id)),
        )
    )


def expected_answers(markers: RecordedStream, mode: str) -> int:
    """What the pipeline will answer for a recording: test trials (decode), generations (evolve)."""
    count, generations = 0, set()
    for sample in markers.data:
        try:
            marker = decode_marker(sample[0])
        except ValueError:
            continue
        if marker["event"] != "stimulus":
            continue
        if mode == "decode" and marker.get("phase") == "test":
            count += 1
        elif mode == "evolve":
            generations.add(str(marker.get("stimulus", "")).split("-", 1)[0])
    return count if mode == "decode" else len(generations)


class ReplayNode(Node):
    """Re-publish a recording's streams on LSL (see the module docstring)."""

    name = "replay"
    topics = (LATENTS, FITNESS, EVENTS)
    poll_ms = 5.0

    def setup(self) -> None:
        replay = self.config.replay
        path, self.speed = Path(replay.path), float(replay.speed)
        try:
            recording = read_recording_parts(path)
        except (OSError, ValueError) as err:
            raise NodeError(f"replay: {err}") from None
        participants = participant_queries(self.config)
        wanted = [*participants, marker_query(self.config)]
        chosen: list[RecordedStream] = []
        used: list[RecordedStream] = []
        for query in wanted:
            found = [s for s in recording.streams if matches(s, query) and s not in used]
            if not found:
                have = ", ".join(repr(s.name) for s in recording.streams) or "none"
                raise NodeError(
                    f"replay: {path.name} has no stream with {query.describe()} "
                    f"(usable streams: {have})"
                )
            used += found
            chosen.append(self._merged(found))
        self.subjects = {s.name: q.subject for s, q in zip(chosen, participants, strict=False)}
        triggers = self._trigger_stream(recording, used)
        if triggers is not None:
            used.append(triggers)
        motion = []
        for stream in chosen[: len(participants)]:
            query = StreamQuery(motion_stream_name(stream.name), MOTION_TYPE)
            found = [s for s in recording.streams if matches(s, query) and s not in used]
            if found:
                used += found
                motion.append(self._merged(found))
        for what, why in recording.skipped:
            self.log.warning("replay: not replayed: %s: %s", what, why)
        for stream in recording.streams:
            if stream not in used:
                why = "the pipeline's own output" if is_derived(stream.name) else "not used"
                self.log.info("replay: not replayed: %s (%s)", stream.describe(), why)
        mode = self.config.session.mode
        self.expected = expected_answers(chosen[-1], mode)
        if not self.expected:
            what = "test-phase stimulus markers" if mode == "decode" else "stimulus markers"
            raise NodeError(
                f"replay: {path.name}: nothing to replay, {chosen[-1].describe()} has no {what} "
                "(a truncated recording?)"
            )
        if triggers is not None:
            chosen.append(triggers)
        chosen += motion
        replayed = Recording(path=recording.path, streams=chosen, info=recording.info)
        # the replayed streams are this session's: their source ids carry its id
        self.player = ReplayPlayer(replayed, speed=self.speed, session=session_id(self.config))
        self.answers = 0
        self.done = False
        self.fitting = False
        self.last_activity = self.last_push = time.monotonic()
        self.counters.update({"samples": 0, "answers": 0})
        self.log.info(
            "replay: %s at speed %g: %s; %d samples over %.1f s of recording; expecting %d answers",
            path.name,
            self.speed,
            ", ".join(s.name for s in chosen),
            self.player.n_samples,
            recording.duration_s,
            self.expected,
        )

    def _merged(self, found: list[RecordedStream]) -> RecordedStream:
        """The one stream to replay for several recorded streams that match one query."""
        if len(found) == 1:
            return found[0]
        try:
            merged = merge_streams(found)
        except ValueError as err:
            self.log.warning("replay: %s; replaying the longest stream only", err)
            return max(found, key=lambda s: s.n_samples)
        self.log.info(
            "replay: %d recorded streams %s merged into one (%d samples)",
            len(found),
            ", ".join(repr(s.source_id or s.name) for s in found),
            merged.n_samples,
        )
        return merged

    def _trigger_stream(
        self, recording: Recording, used: list[RecordedStream]
    ) -> RecordedStream | None:
        """The recorded trigger stream, when the config names one and the recording has it."""
        if self.config.trigger.source != "lsl":
            return None
        query = trigger_query(self.config)
        found = [s for s in recording.streams if matches(s, query) and s not in used]
        if not found:
            self.log.info("replay: no trigger stream %s in the recording", query.describe())
            return None
        return self._merged(found)

    def start(self) -> None:
        super().start()
        self.player.start()
        self.last_activity = time.monotonic()

    def handle(self, msg: Message) -> None:
        """Count the pipeline's answers: decoded latents (decode) or fitness (evolve)."""
        if msg.topic == EVENTS:  # the decode node fits its model: busy, not idle
            if msg.kind in ("model_fitting", "model_ready"):
                self.fitting = msg.kind == "model_fitting"
                self.last_activity = time.monotonic()
            return
        mode = self.config.session.mode
        if (mode == "decode" and msg.kind == "latent") or (
            mode == "evolve" and msg.kind == "fitness"
        ):
            self.answers += 1
            self.count("answers")
            self.last_activity = time.monotonic()

    def tick(self) -> None:
        if not self.started or self.done:
            return
        pushed = self.player.push_due()
        if pushed:
            self.count("samples", pushed)
            self.last_activity = self.last_push = time.monotonic()
        if not self.player.done:
            next_due = self.player.next_due
            if next_due is not None:
                self.poll_ms = min(20.0, max(0.0, (next_due - local_clock()) * 1000.0))
            return
        self.poll_ms = 20.0
        idle = 0.0 if self.fitting else time.monotonic() - self.last_activity
        if time.monotonic() - self.last_push < SETTLE_S:
            return
        if self.answers >= self.expected or idle > IDLE_S:
            self.done = True
            self.event(
                "schedule_done",
                replayed=self.player.n_pushed,
                answers=self.answers,
                expected=self.expected,
            )
            how = "all answered" if self.answers >= self.expected else f"quiet for {IDLE_S:g} s"
            self.log.info(
                "replay: done, %d samples, %d of %d answers (%s)",
                self.player.n_pushed,
                self.answers,
                self.expected,
                how,
            )

    def status(self) -> dict:
        """Heartbeat payload: counters, and whether everything has been pushed."""
        player = getattr(self, "player", None)  # heartbeats start before setup
        return {
            **super().status(),
            "pushed_all": bool(player and player.done),
            "pushed": player.pushed_per_stream() if player else {},
            "subjects": getattr(self, "subjects", {}),
        }

    def teardown(self) -> None:
        if hasattr(self, "player"):
            self.player.close()


NODE = ReplayNode
