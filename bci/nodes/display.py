"""The display node: presents the trial schedule, shows live reconstructions, marks every flip.

Data flow
---------
``images`` (kind ``stimuli``, from render)
    Stimulus images in chunks, ``arrays=[uint8 (k, H, W, 3)]``, ``meta={"ids": [...]}``; each
    scheduled stimulus is converted once to surfaces and kept.
``images.display`` (kind ``reconstruction``, LATEST)
    ``arrays=[uint8 (H, W, 3)]``, ``meta={"trial", "stimulus", "arrival_lsl", ...}``: drawn at once
    beside its stimulus in the experimenter's panel, and flipped without waiting for a frame.
LSL marker stream ``[acquire] marker_stream`` (type ``Markers``, one string channel)
    A JSON marker (:mod:`bci.lsl.markers`) for every flip: ``phase``, ``stimulus``, ``blank``,
    ``reconstruction``, stamped with :func:`pylsl.local_clock` read right after the flip.
    (Flips that only refresh text, the "waiting" message or the panel's status lines, are not
    marked.)
``events``
    The same flips as bus events (kind ``flip`` or ``phase``, ``lsl_time`` = the marker's stamp),
    then ``schedule_done``; ``abort`` when the experimenter presses ESC or closes the window.

``events`` kind ``run_request`` (``run``, ``phase``, ``trials``, ``volumes``, ``tr_s``)
    Before each scanner run (:mod:`bci.nodes.runs`): the operator's "start the sequence" (the
    simulator starts its run on it). The run then starts on its first trigger
    (:mod:`bci.nodes.trigger`), marked ``run`` with that trigger's stamp, and its stimuli are
    scheduled from it; a trigger that arrives after the first stimulus was due (a bridge's,
    stamped at acquisition) moves the whole schedule on by that much, with a warning. A keyboard
    trigger is also marked (``trigger``).

The runs begin when the supervisor has sent ``start`` and every scheduled stimulus is buffered.
Between runs the display waits ``run_break_s`` after the run's last volume, and a test run
waits for the decoding model. Between frames the node waits on the bus socket with a timeout
that ends at the next deadline (``poll_ms`` is recomputed every tick), so it reacts to a
reconstruction as soon as it arrives and to a deadline within about a millisecond.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import deque
from pathlib import Path
from typing import Any

import pygame
from pylsl import StreamOutlet, local_clock

from bci.bus import Message, Publisher
from bci.bus.topics import EVENTS, IMAGES, IMAGES_DISPLAY
from bci.config import SessionConfig
from bci.lsl.markers import encode_marker
from bci.lsl.streams import make_marker_outlet, session_id
from bci.nodes.base import Node, NodeError
from bci.nodes.runs import RunPlan, plan_runs, run_schedule
from bci.nodes.schedule import Schedule, ScheduledEvent
from bci.nodes.screen import Screen, open_window
from bci.nodes.trigger import TriggerListener
from bci.stimulus_set import load_stimulus_set

IDLE_POLL_MS = 20.0
"""Longest wait on the bus between ticks (window events and heartbeats need a tick)."""
GRACE_EXTRA_S = 2.0
"""Wall seconds added to the acquisition window when waiting for the last reconstructions."""
TRIGGER_POLL_MS = 1.0
"""Wait on the bus while a run waits for its first trigger (the stimuli are scheduled from it)."""
FREE_RUN_MARGIN_S = 0.05
"""Free-running (``[trigger] source = "none"``): a run starts a TR and this long after its
request."""
DROP_FRAMES = 1.5
"""A scheduled flip later than this many frame periods counts as a dropped frame."""
LATENCY_WINDOW = 1000
HOLD_ANNOUNCE_S = 1.0
"""While a test run waits for the model, the calibration run's ``run_end`` is said again this
often (wall seconds), for a decode node that was restarted after it."""
"""Reconstruction flip latencies kept for the status (the most recent ones)."""


class DisplayNode(Node):
    """Shows stimuli to the participant and reconstructions to the experimenter (see module doc).

    Parameters
    ----------
    config : SessionConfig
        Validated session config; uses ``[display]``, ``[timing]``, ``[stimuli]``,
        ``[acquire] marker_stream, delay_s, window_s`` and ``[session] ready_timeout_s``.
    out : Path
        Session folder.
    publisher : Publisher
        This node's bus socket.
    """

    name = "display"
    topics = (IMAGES, IMAGES_DISPLAY, EVENTS)

    def __init__(self, config: SessionConfig, out: Path, publisher: Publisher) -> None:
        super().__init__(config, out, publisher)
        self.poll_ms = IDLE_POLL_MS
        self.frame_s = 1.0 / float(config.display.fps)
        self.mode = config.session.mode
        self.model_ready = False
        self.announced_at = 0.0  # when the held test run last re-announced the run_end
        self.holding = False
        acquire, timing = config.acquire, config.timing
        self.grace_s = (acquire.delay_s + acquire.window_s) / timing.time_scale
        self.grace_s += GRACE_EXTRA_S
        self.counters = {
            "dropped_frames": 0,
            "flips": 0,
            "reconstructions": 0,
            "late_run_starts": 0,
        }
        self.schedule: Schedule | None = None
        self.needed: frozenset[str] = frozenset()
        self.surfaces: dict[str, tuple[pygame.Surface, pygame.Surface]] = {}
        self.screen: Screen | None = None
        self.outlet: StreamOutlet | None = None
        self.vsync = False
        self.driver = ""
        self.lead_s = 0.0  # with vsync, flip half a frame early: the flip lands on the vblank
        self.start_time: float | None = None  # LSL time of start()
        self.t0: float | None = None  # LSL time the current run's schedule started (its trigger)
        self.plans: list[RunPlan] = []
        self.schedules: list[Schedule] = []
        self.run = -1  # the current run's index
        self.run_state = "buffering"  # then "between", "trigger", "running", "done"
        self.requested_at = 0.0  # LSL time the current run was asked for
        self.run_end = 0.0  # LSL time the current run's last volume ends
        self.next_request_at = 0.0
        self.buffered = False
        self.triggers: TriggerListener | None = None
        self.run_triggers: list[int] = []
        self.done_at: float | None = None  # LSL time schedule_done is due
        self.schedule_done = False
        self.current: ScheduledEvent | None = None
        self.latencies_ms: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self.worst_late_ms = 0.0
        self._shown_waiting = ""

    # -- life cycle --------------------------------------------------------------------------
    def setup(self) -> None:
        """Load the stimulus ids, plan the runs, open the window, the marker outlet, the trigger."""
        path = self.config.stimuli.path
        try:
            ids = load_stimulus_set(path).ids
            self.plans = plan_runs(self.config)
            self.schedules = [run_schedule(plan, ids, self.config) for plan in self.plans]
        except (FileNotFoundError, ValueError) as err:
            raise NodeError(f"display: {err}") from None
        self.schedule = self.schedules[0]
        self.run_triggers = [0] * len(self.plans)
        self.needed = frozenset(i for s in self.schedules for i in s.stimulus_ids)
        self._open_screen()
        self._draw_waiting()
        self.triggers = TriggerListener(self.config)
        self.triggers.open()
        self.log.info(
            "%d trials (%d train, %d test) in %d runs (%s); trigger: %s; stimuli from %s",
            self.n_trials,
            self.config.stimuli.n_train,
            self.config.stimuli.n_test,
            len(self.plans),
            ", ".join(f"{p.phase} {p.n_trials} trials {p.volumes} volumes" for p in self.plans),
            self.triggers.source,
            path,
        )

    @property
    def n_trials(self) -> int:
        """Trials over all runs."""
        return sum(len(s.trials) for s in self.schedules)

    def _open_screen(self) -> None:
        """Open the window (vsync where the platform has it) and the marker outlet."""
        cfg = self.config.display
        window = open_window(cfg.width, cfg.height, fullscreen=cfg.fullscreen, vsync=cfg.vsync)
        self.vsync, self.driver = window.vsync, window.driver
        self.lead_s = 0.5 * self.frame_s if self.vsync else 0.0
        self.screen = Screen(window.surface)
        self.screen.clear()
        self.outlet = self._open_outlet()

    def _open_outlet(self) -> StreamOutlet:
        marker_stream = self.config.acquire.marker_stream
        return make_marker_outlet(marker_stream, self.name, session_id(self.config))

    def start(self) -> None:
        """The session has started: wait for the stimuli, then run the schedule."""
        super().start()
        self.start_time = local_clock()

    def quiet(self) -> None:
        """Close the trigger inlet before the simulator's outlet goes (see :meth:`Node.quiet`)."""
        if self.triggers is not None:
            self.triggers.close()

    def teardown(self) -> None:
        """Close the marker stream, the trigger inlet and the window."""
        self.outlet = None
        if self.triggers is not None:
            self.triggers.close()
        pygame.font.quit()
        pygame.display.quit()

    def status(self) -> dict[str, Any]:
        """Heartbeat payload: counters, schedule position, recent reconstruction flip latencies."""
        lat = self.latencies_ms
        return {
            **super().status(),
            "phase": self.current.phase if self.current else None,
            "run": self.run,
            "run_state": self.run_state,
            "triggers": list(self.run_triggers),
            "trial": self.current.trial if self.current else None,
            "buffered": len(self.surfaces),
            "needed": len(self.needed),
            "vsync": self.vsync,
            "driver": self.driver,
            "worst_late_ms": round(self.worst_late_ms, 3),
            "latency_ms": {
                "n": len(lat),
                "last": lat[-1] if lat else None,
                "median": statistics.median(lat) if lat else None,
                "max": max(lat) if lat else None,
            },
        }

    # -- messages ------------------------------------------------------------------------------
    def handle(self, msg: Message) -> None:
        """Buffer stimulus images; show reconstructions at once."""
        if msg.topic == IMAGES and msg.kind == "stimuli":
            self._buffer(msg)
        elif msg.topic == IMAGES_DISPLAY and msg.kind == "reconstruction":
            self._show_reconstruction(msg)
        elif msg.topic == EVENTS:
            if msg.kind == "model_ready" and not self.model_ready:
                self.model_ready = True
                self.log.info("the decoding model is ready")
        else:
            self.count("ignored_messages")

    def _buffer(self, msg: Message) -> None:
        ids = msg.meta.get("ids")
        images = msg.arrays[0] if len(msg.arrays) == 1 else None
        shape_ok = images is not None and images.ndim == 4
        if not shape_ok or not isinstance(ids, list) or len(ids) != len(images):
            self.count("bad_messages")
            self.log.warning("ignoring a malformed 'stimuli' message (seq %d)", msg.seq)
            return
        for sid, image in zip(map(str, ids), images, strict=True):
            if sid not in self.needed or sid in self.surfaces:
                continue
            try:
                self.surfaces[sid] = self.screen.prepare_stimulus(image)
            except ValueError as err:
                self.count("bad_messages")
                self.log.warning("stimulus %s: %s", sid, err)

    def _show_reconstruction(self, msg: Message) -> None:
        received = time.time()
        meta = msg.meta
        trial, stimulus = meta.get("trial"), meta.get("stimulus")
        try:
            tile = self.screen.prepare_reconstruction(msg.arrays[0])
        except (IndexError, ValueError) as err:
            self.count("bad_messages")
            self.log.warning("ignoring a reconstruction for trial %s: %s", trial, err)
            return
        thumb = self.surfaces.get(str(stimulus), (None, None))[1]
        self.screen.draw_pair(f"trial {trial} · {stimulus}", thumb, tile)
        pygame.display.flip()
        t = local_clock()
        arrival = meta.get("arrival_lsl")
        latency = None
        if isinstance(arrival, int | float) and math.isfinite(arrival):
            latency = (t - arrival) * 1000.0
            self.latencies_ms.append(latency)
        self.count("reconstructions")
        self._mark(t, "reconstruction", trial=trial, stimulus=stimulus)
        self._flip_event(
            t,
            what="reconstruction",
            trial=trial,
            stimulus=stimulus,
            latency_ms=latency,
            # From the render node's send to here, and from here to the flip (wall clock).
            bus_ms=round((received - msg.wall_time) * 1000.0, 3),
            draw_ms=round((time.time() - received) * 1000.0, 3),
        )
        self.screen.draw_status(self._status_lines())  # shown with the next flip

    # -- time ----------------------------------------------------------------------------------
    def tick(self) -> None:
        """Window events, readiness, runs and their triggers, due frames; then the next wait."""
        self._pump_window()
        if self.finished:
            return
        if not self.buffered and not self._ready():
            self.poll_ms = IDLE_POLL_MS
            return
        triggers = self.triggers.poll()
        now = local_clock()
        if self.run_state == "between" and now >= self.next_request_at:
            if not self._hold_for_model():
                self._request_run(now)
        if self.run_state == "trigger":
            self._await_trigger(triggers, now)
        elif self.run_state == "running":
            self.run_triggers[self.run] += len(triggers)
        if self.run_state == "running":
            while frame := self.schedule.pop_frame(local_clock() - self.t0 + self.lead_s):
                self._present(frame)
            now = local_clock()
            if self.schedule.done and now >= self.run_end:
                self._end_run()
        if self.done_at is not None and not self.schedule_done and now >= self.done_at:
            self.schedule_done = True
            dropped = self.counters["dropped_frames"]
            self.event(
                "schedule_done",
                trials=self.n_trials,
                runs=len(self.plans),
                triggers=self.run_triggers,
                dropped_frames=dropped,
                reconstructions=self.counters["reconstructions"],
            )
            self.log.info("schedule done: %d trials, %d dropped frames", self.n_trials, dropped)
            self.screen.draw_status(self._status_lines())
            pygame.display.flip()  # the experimenter's panel only: not a marked flip
        if self.run_state == "trigger":
            self.poll_ms = TRIGGER_POLL_MS
        else:
            self.poll_ms = self._wait_ms(now, None if self.schedule_done else self.done_at)

    def _hold_for_model(self) -> bool:
        """In decode mode a test run waits for the decoding model (fitted in the run break)."""
        plan = self.plans[self.run + 1]
        if self.model_ready or self.mode != "decode" or plan.phase != "test":
            return False
        now = time.monotonic()
        if not self.holding:
            self.holding = True
            self.log.info("run %d (test) waits for the decoding model", plan.index)
            self.screen.draw_status([*self._status_lines(), "waiting for the decoding model"])
            pygame.display.flip()  # the experimenter's panel only: not a marked flip
            self.announced_at = now
        elif now - self.announced_at >= HOLD_ANNOUNCE_S:
            # A decode node restarted after the calibration run's end never saw its run_end,
            # and would wait for it for ever: say it again while the test run is held.
            self.announced_at = now
            self.event("run_end", run=self.plans[self.run].index, again=True)
        return True

    def _request_run(self, now: float) -> None:
        """Ask for the next run (the operator starts the scanner) and wait for its trigger."""
        self.run += 1
        plan = self.plans[self.run]
        self.schedule = self.schedules[self.run]
        self.run_state, self.requested_at = "trigger", now
        timing = self.config.timing
        self.event(
            "run_request",
            run=plan.index,
            phase=plan.phase,
            trials=plan.n_trials,
            volumes=plan.volumes,
            tr_s=timing.tr_s,
        )
        source = self.triggers.source
        self.log.info(
            "run %d/%d (%s, %d volumes): %s",
            plan.index + 1,
            len(self.plans),
            plan.phase,
            plan.volumes,
            "starts now" if source == "none" else f"waiting for the scanner trigger ({source})",
        )
        self.screen.draw_message(f"run {plan.index + 1} of {len(self.plans)}: get ready")
        lines = self._status_lines()
        self.screen.draw_status([*lines, f"waiting for the scanner trigger ({source})"])
        pygame.display.flip()  # not a marked flip
        if source == "none":
            # free-running: a scanner started now has its first volume within a TR
            timing = self.config.timing
            self._start_run(now + timing.tr_s / timing.time_scale + FREE_RUN_MARGIN_S)

    def _await_trigger(self, triggers: list[float], now: float) -> None:
        """Start the run on its first trigger; give up after ``[trigger] timeout_s``."""
        fresh = [t for t in triggers if t >= self.requested_at]
        if fresh:
            self._start_run(fresh[0])
            self.run_triggers[self.run] += len(fresh)
            return
        timeout = float(self.config.trigger.timeout_s)
        if now - self.requested_at > timeout:
            source = self.triggers.source
            where = self.triggers.query.describe() if source == "lsl" else repr(self.triggers.key)
            raise NodeError(
                f"display: no scanner trigger ({source} {where}) within [trigger] timeout_s = "
                f"{timeout:g} s for run {self.run + 1}"
            )

    def _start_run(self, t0: float) -> None:
        """The run's first trigger came at ``t0``: mark it and schedule the run from it."""
        plan, timing = self.plans[self.run], self.config.timing
        self.t0 = t0
        self.run_state = "running"
        self.run_end = t0 + plan.volumes * timing.tr_s / timing.time_scale
        self._mark(
            t0,
            "run",
            run=plan.index,
            phase=plan.phase,
            trials=plan.n_trials,
            volumes=plan.volumes,
            tr_s=timing.tr_s,
        )
        self.publish(
            EVENTS,
            kind="run_start",
            meta={"node": self.name, "run": plan.index, "phase": plan.phase},
            lsl_time=t0,
        )
        self.log.info("run %d started (trigger at %.3f)", plan.index + 1, t0)
        # A trigger stamped at its volume's acquisition (a scanner bridge's) arrives late; if the
        # first stimulus is already due, the whole schedule moves on rather than flipping the
        # stimuli due so far back to back (the run stays marked at its trigger, and every
        # stimulus at its own flip, which is what the trial windows are cut by).
        delay = local_clock() - t0
        first = self.schedule.next_onset
        late = delay + self.lead_s - first if first is not None else 0.0
        if late > DROP_FRAMES * self.frame_s:  # what would count as a dropped frame
            self.t0 = t0 + late
            self.count("late_run_starts")
            self.log.warning(
                "run %d: its trigger reached the display %.2f s after its time stamp, %.2f s "
                "after the first stimulus was due: the run's stimuli are shown that much later; "
                "make [timing] lead_in_s (%g s) longer than the trigger's delay",
                plan.index + 1,
                delay,
                late,
                timing.lead_in_s,
            )

    def _end_run(self) -> None:
        """The run's last volume is in: the next run after the break, or the session's end."""
        plan, timing = self.plans[self.run], self.config.timing
        self.log.info(
            "run %d done: %d triggers for %d volumes",
            plan.index + 1,
            self.run_triggers[self.run],
            plan.volumes,
        )
        self.event("run_end", run=plan.index, triggers=self.run_triggers[self.run])
        if self.run + 1 < len(self.plans):
            self.run_state = "between"
            self.next_request_at = self.run_end + timing.run_break_s / timing.time_scale
        else:
            self.run_state = "done"
            self.done_at = self.run_end + self.grace_s

    def _wait_ms(self, now: float, end: float | None = None) -> float:
        """How long to wait on the bus: until the next frame is due, or ``end`` if sooner."""
        deadlines = [end] if end is not None else []
        # (the evolve display runs its blocks without runs: its state stays "buffering")
        running = self.t0 is not None and self.run_state not in ("between", "trigger")
        if self.schedule is not None and self.schedule.next_onset is not None and running:
            deadlines.append(self.t0 + self.schedule.next_onset - self.lead_s)
        if self.run_state == "running":
            deadlines.append(self.run_end)
        elif self.run_state == "between":
            deadlines.append(self.next_request_at)
        if not deadlines:
            return IDLE_POLL_MS
        return min(IDLE_POLL_MS, max(0.0, (min(deadlines) - now) * 1000.0))

    def _ready(self) -> bool:
        """Start the schedule once started and buffered; show progress; enforce the timeout."""
        have, need = len(self.surfaces), len(self.needed)
        if self.started and have == need:
            self.buffered = True
            self.run_state = "between"
            self.next_request_at = local_clock()
            self.log.info(
                "all %d stimuli buffered %.2f s after start; schedule begins (run 1 is asked for)",
                need,
                self.next_request_at - self.start_time,
            )
            return True
        self._draw_waiting()
        timeout = float(self.config.session.ready_timeout_s)
        if self.started and local_clock() - self.start_time > timeout:
            missing = next(s for s in sorted(self.needed) if s not in self.surfaces)
            raise NodeError(
                f"display: only {have} of {need} stimulus images arrived within "
                f"ready_timeout_s = {timeout:g} s (first missing: {missing})"
            )
        return False

    def _draw_waiting(self) -> None:
        text = f"waiting for stimuli ({len(self.surfaces)}/{len(self.needed)})"
        if text != self._shown_waiting:
            self._shown_waiting = text
            self.screen.draw_message(text)
            self.screen.draw_status(self._status_lines())
            pygame.display.flip()

    # -- flips ---------------------------------------------------------------------------------
    def _present(self, frame: list[ScheduledEvent]) -> None:
        """Draw one scheduled frame, flip, stamp, then mark every event of the frame."""
        visual = next(e for e in frame if e.kind != "phase")
        if visual.kind == "stimulus":
            self.screen.draw_stimulus(self.surfaces[visual.stimulus][0])
        else:
            self.screen.draw_blank()
        pygame.display.flip()
        t = local_clock()
        late = t - (self.t0 + visual.onset)
        self.count("flips")
        self.worst_late_ms = max(self.worst_late_ms, late * 1000.0)
        if late > DROP_FRAMES * self.frame_s:
            self.count("dropped_frames")
            self.log.warning(
                "%s of trial %d flipped %.1f ms late", visual.kind, visual.trial, late * 1000.0
            )
        self.current = visual
        for e in frame:
            if e.kind == "phase":
                self._mark(t, "phase", phase=e.phase)
                self.publish(
                    EVENTS, kind="phase", meta={"node": self.name, "phase": e.phase}, lsl_time=t
                )
            else:
                self._mark(t, e.kind, trial=e.trial, stimulus=e.stimulus, phase=e.phase)
                self._flip_event(
                    t,
                    what=e.kind,
                    trial=e.trial,
                    stimulus=e.stimulus,
                    phase=e.phase,
                    late_ms=late * 1000.0,
                )
        self.screen.draw_status(self._status_lines())  # shown with the next flip

    def _mark(self, t: float, event: str, **fields: Any) -> None:
        self.outlet.push_sample([encode_marker(event, **fields)], t)

    def _flip_event(self, t: float, **meta: Any) -> None:
        self.publish(EVENTS, kind="flip", meta={"node": self.name, **meta}, lsl_time=t)

    def _pump_window(self) -> None:
        """Handle window events: ESC or closing the window aborts the session."""
        for event in pygame.event.get():
            if event.type == pygame.KEYDOWN and self.triggers is not None:
                t = local_clock()
                if self.triggers.key_pressed(getattr(event, "unicode", ""), t):
                    self._mark(t, "trigger", run=self.run, source="key")
            escape = event.type == pygame.KEYDOWN and event.key == pygame.K_ESCAPE
            if event.type == pygame.QUIT or escape:
                reason = "escape" if escape else "window closed"
                self.log.warning("abort requested by the experimenter (%s)", reason)
                self.event("abort", reason=reason)
                self.finished = True
                return
            if event.type == pygame.WINDOWEXPOSED:
                pygame.display.flip()

    def _status_lines(self) -> list[str]:
        lines = []
        if self.current is not None:
            n = self.n_trials
            lines.append(
                f"run {self.run + 1}/{len(self.plans)} · {self.current.phase} · "
                f"trial {self.current.trial + 1}/{n}"
            )
        else:
            lines.append("session started" if self.started else "waiting for the session start")
        c = self.counters
        lines.append(f"flips {c['flips']} · dropped frames {c['dropped_frames']}")
        if self.latencies_ms:
            lines.append(
                f"latency {self.latencies_ms[-1]:.1f} ms "
                f"(median {statistics.median(self.latencies_ms):.1f}, n {len(self.latencies_ms)})"
            )
        lines.append(f"vsync {'on' if self.vsync else 'off'} · {self.driver}")
        if self.schedule_done:
            lines.append("schedule done: waiting for the supervisor to stop")
        return lines


NODE = DisplayNode
