"""The acquire node: participants' LSL streams in, one response per trial and subject out.

Loop: pull every participant inlet without waiting (the LSL time of the pull is the arrival time
of what it returned) -> pull the display's markers; a stimulus marker opens a trial window
``[onset + delay_s, onset + delay_s + window_s)`` (scanner seconds / time_scale) -> cut every
window that is complete (:mod:`bci.nodes.trial_cutter`) -> publish it on ``responses``.

Published message: topic ``responses``, kind ``response``, one float32 ``(n_voxels,)`` array,
``lsl_time`` = ``arrival_lsl``, and meta::

    trial, stimulus, phase   from the marker
    subject                  the participant's subject index
    onset_lsl                the stimulus flip's LSL time, plus ``[acquire] display_delay_s``
                             (the screen's photon delay, measured with a photodiode)
    arrival_lsl              when the data that completed the window (or the marker, if later)
                             arrived here, LSL clock
    run                      the scanner run the trial belongs to (decode mode; see
                             :mod:`bci.nodes.run_tracker`)
    n_volumes                volumes (samples) averaged
    rate_hz                  the stream's nominal rate (0: irregular); for binned spike counts
                             the response times this rate is a firing rate in spikes/s
    bad                      None, or a one-line reason (the pattern is then zeros)

A stream declared ``kind = "events"`` or ``"broadband"`` in ``[[acquire.streams]]`` is first
turned into spike counts per bin by :mod:`bci.nodes.spike_input` (events binned; broadband
band-passed and threshold-crossed), so every form is cut the same way.
Runs (decode mode). The display's ``run`` markers (and, without them, the pauses in the volumes)
divide the session into scanner runs; a trial is cut from its own run's volumes only. Triggers
are counted per run, from the LSL trigger stream (``[trigger] source = "lsl"``, when it is
there) and from ``trigger`` markers; the heartbeat's ``runs`` gives, per run, the volumes
received per subject, the volumes expected (the triggers; else the volumes the run marker
declares), the trials and the unusable responses with their reasons.

Preprocessing (decode mode). Every participant's volumes are preprocessed online as they arrive
(``[preprocess]``, :mod:`bci.nodes.preprocess_input`): detrended, scaled and censored per run,
with the head motion of a scanner bridge's ``NAME-motion`` stream when it is there. The cutter
leaves censored volumes out of the windows, a trial is bad only when its whole window is
censored, and the heartbeat's ``preprocess`` and ``runs`` count the censored volumes per subject,
run and reason. Meta ``n_censored``: the window's censored volumes left out of the mean.

Buffers. In a replay, every inlet holds the whole replayed stream (its sample count is in the
stream's ``desc``, see :func:`bci.lsl.streams.replay_samples`), so a replay at any speed,
``--speed 0`` included, loses nothing in liblsl's buffers.

Channel counts. A participant stream must have the count the config or the model gives it:
``[[acquire.streams]] channels`` when set, else the simulator's ``n_voxels`` / ``n_units`` when
it is enabled, else the subject's voxel count in the ``[model] path`` model when there is one
(:func:`expected_channels`); never a majority of the streams. A stream with another count is named
in a one-line error and left out; the others go on. The node stops only when no participant is
left. The ``participants`` event (at start and whenever one is left out) tells decode which
subjects are in.

A stream that stops. The scanner clock is read off the streams themselves (the newest stamp of
any participant stream or trigger): a participant whose newest volume is more than
:data:`STOP_TRS` TRs of scanner time behind it is named in a warning, and its trial windows that
the others have passed are given up (published bad, ``"stream stopped"``), so decode need not
wait; it is taken back when it sends again. A stream is only stopped when it has also sent
nothing for those TRs of wall time and its inlet is empty: one that is behind but still sending
(a replay at ``--speed 0``, whose trigger stream can arrive before the volumes) is not, nor is
one that has sent nothing yet. (When every stream stops at once, or one never begins, a window is
given up ``[acquire] resolve_timeout_s`` after its end.)

Out-of-order stamps. Volume inlets are not monotonised by liblsl (which would hide the problem):
a stamp more than :data:`OUT_OF_ORDER_S` before the stream's previous one is counted
(``out_of_order_stamps``, in the summary) and warned about once per stream; the volumes are
cut in time order all the same.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pylsl
from pylsl import local_clock
from pylsl.util import LostError

from bci.config import SessionConfig
from bci.decode.model import load_decoding_model
from bci.lsl.markers import decode_marker
from bci.lsl.streams import (
    DATA_PROCESSING,
    DEFAULT_BUFFER_S,
    MARKER_PROCESSING,
    StreamQuery,
    buffer_seconds,
    find_streams,
    marker_query,
    open_inlet,
    participant_queries,
    pull_markers,
    pull_volumes,
    replay_samples,
    resolve_all,
    sync_clocks,
    trigger_query,
)
from bci.nodes.base import Node, NodeError
from bci.nodes.preprocess_input import Preprocessing
from bci.nodes.run_tracker import RunTracker
from bci.nodes.spike_input import SpikeReader, SpikeStreamError, open_spike_reader, stream_settings
from bci.nodes.trial_cutter import CutResponse, TrialCutter, VolumeBuffer

LATE_MARKER_S = 5.0
"""A marker may arrive this long (LSL seconds) after its window's end and still find its data."""
TOLERANCE_TR = 0.05
"""Window boundary tolerance, as a fraction of a TR (see :mod:`bci.nodes.trial_cutter`)."""
STOP_TRS = 2.0
"""A participant stream this many TRs (scanner time) behind the others has stopped."""
OUT_OF_ORDER_S = 1e-3
"""A stamp this much (LSL seconds) before its stream's previous one is out of order."""
LAST_TRIGGER_WAIT_S = 0.25
"""At the end, how long to wait for the triggers of volumes already received."""
VOLUME_PROCESSING = pylsl.proc_clocksync
"""Volume inlets: clock-synced, not monotonised (out-of-order stamps are reported, see above)."""


@dataclass
class Participant:
    """A participant's stream: where it comes from and its inlet."""

    query: StreamQuery
    inlet: pylsl.StreamInlet
    rate_hz: float = 0.0
    bad_trials: int = 0
    reader: SpikeReader | None = None
    """For ``events`` and ``broadband`` streams: turns them into spike counts per bin."""
    received: int = 0
    last_stamp: float = -math.inf
    last_arrival: float = -math.inf
    """LSL time of the last pull that brought volumes."""
    stopped: bool = False
    out_of_order: int = 0


def model_voxels(config: SessionConfig) -> list[int] | None:
    """Voxels per subject of the ``[model] path`` model, or None (no path, no file, unreadable)."""
    path = config.model.path
    if not path or not Path(path).is_file():
        return None
    try:
        return list(load_decoding_model(path).n_voxels)
    except (OSError, ValueError):
        return None  # decode names the problem


def expected_channels(config: SessionConfig, index: int, subject: int) -> int | None:
    """The channel count participant stream ``index`` (of ``subject``) must have, or None.

    ``[[acquire.streams]] channels`` when set; the simulator's ``n_voxels`` (decode) or
    ``n_units`` (evolve) when it is enabled; the subject's voxels in the ``[model] path`` model;
    otherwise None: nothing says, and the stream's own count is taken.
    """
    streams = config.acquire.streams
    if index < len(streams) and streams[index].channels > 0:
        return int(streams[index].channels)
    if config.simulate.enabled:
        key = "n_units" if config.session.mode == "evolve" else "n_voxels"
        return int(getattr(config.simulate, key))
    voxels = model_voxels(config) if config.session.mode == "decode" else None
    if voxels is not None and 0 <= subject < len(voxels):
        return int(voxels[subject])
    return None


class AcquireNode(Node):
    """Cut one response per trial and subject out of the participants' LSL streams."""

    name = "acquire"
    poll_ms = 10.0

    def setup(self) -> None:
        acq, timing = self.config.acquire, self.config.timing
        scale = float(timing.time_scale)
        queries = participant_queries(self.config)
        if not queries:
            raise NodeError("acquire: [acquire] streams is empty and the simulator is disabled")
        subjects = [q.subject for q in queries]
        if len(set(subjects)) != len(subjects):
            raise NodeError(f"acquire: [[acquire.streams]] repeat a subject: {subjects}")
        infos = resolve_all([*queries, marker_query(self.config)], acq.resolve_timeout_s)
        self.replay = self.config.replay is not None
        self.markers = open_inlet(
            infos[-1],
            processing=MARKER_PROCESSING,
            max_buflen=self._buffer_s(infos[-1]),
            sync=False,
        )
        unsynced = [(infos[-1], self.markers)]  # their clocks are measured at once, below
        self.triggers, trigger_info = self._open_triggers()
        if self.triggers is not None:
            unsynced.append((trigger_info, self.triggers))
        fmri = self.config.session.mode == "decode"
        tr = timing.tr_s / scale
        if fmri and acq.window_s < timing.tr_s:
            self.log.warning("[acquire] window_s is shorter than a TR: windows may hold no volume")
        # Preprocessing first: its motion inlets must be open before a scanner bridge, which
        # holds its volumes (and their motion samples) until the participant inlet connects,
        # starts pushing.
        volume_infos = {
            q.subject: info
            for index, (q, info) in enumerate(zip(queries, infos[:-1], strict=True))
            if stream_settings(self.config, index).kind == "counts"
        }
        self.preprocessing = (
            Preprocessing.open(self.config, volume_infos, TOLERANCE_TR * tr, self.log)
            if fmri
            else None
        )
        self.participants: dict[int, Participant] = {}
        buffers: dict[int, VolumeBuffer] = {}
        for index, (query, info) in enumerate(zip(queries, infos[:-1], strict=True)):
            # -- spike events and broadband voltage (bci.nodes.spike_input) --
            settings = stream_settings(self.config, index)
            expected = expected_channels(self.config, index, query.subject)
            if settings.kind != "counts":
                known = settings.kind == "broadband" or self.config.simulate.enabled
                if expected is None and settings.kind == "broadband":
                    expected = info.channel_count()  # nothing says otherwise
                sites = settings.channels or ((expected or 0) if known else 0)
                try:
                    reader = open_spike_reader(
                        settings, info, sites, local_clock(), self.count, self.log, query.describe()
                    )
                except SpikeStreamError as err:
                    self.log.error(
                        "stream %s %s; subject %d is left out", query.describe(), err, query.subject
                    )
                    self.count("participants_left_out")
                    continue
                inlet = open_inlet(info, processing=DATA_PROCESSING, sync=False)
                unsynced.append((info, inlet))
                self.participants[query.subject] = Participant(
                    query, inlet, rate_hz=reader.rate_hz, reader=reader
                )
                buffers[query.subject] = VolumeBuffer(sites, 1.0 / reader.rate_hz)
                continue
            # -- binned counts (evolve) or volumes (decode) --
            problem = None
            if info.channel_format() == pylsl.cf_string:
                problem = "has string channels, expected numbers"
            elif expected is not None and info.channel_count() != expected:
                problem = f"has {info.channel_count()} channels, expected {expected}"
            if problem:
                self.log.error(
                    "stream %s %s; subject %d is left out",
                    query.describe(),
                    problem,
                    query.subject,
                )
                self.count("participants_left_out")
                continue
            rate = info.nominal_srate()
            if not fmri and rate <= 0:
                self.log.error(
                    "stream %s has no nominal rate; binned spike counts need one; subject %d "
                    "is left out",
                    query.describe(),
                    query.subject,
                )
                self.count("participants_left_out")
                continue
            if fmri and rate > 0 and abs(rate * tr - 1.0) > 0.01:
                self.log.warning(
                    "stream %s has a nominal rate of %.4g Hz; [timing] says a volume every "
                    "%.4g s (tr_s / time_scale)",
                    query.describe(),
                    rate,
                    tr,
                )
            inlet = open_inlet(
                info, processing=VOLUME_PROCESSING, max_buflen=self._buffer_s(info), sync=False
            )
            unsynced.append((info, inlet))
            self.participants[query.subject] = Participant(query, inlet, rate_hz=rate)
            period = 1.0 / rate if rate > 0 else None
            if fmri and period is not None:
                # a nominal rate slower than the stamps would complete windows a volume early
                period = min(period, tr)
            buffers[query.subject] = VolumeBuffer(info.channel_count(), period)
        if not self.participants:
            raise NodeError("acquire: no participant stream is usable (see the errors above)")
        sync_clocks(unsynced)
        # The boundary tolerance is a fraction of a sample: a TR for fMRI, a bin for spikes.
        period = tr if fmri else 1.0 / min(p.rate_hz for p in self.participants.values())
        self.cutter = TrialCutter(
            buffers,
            acq.delay_s / scale,
            acq.window_s / scale,
            tolerance_s=TOLERANCE_TR * period,
            baseline_s=float(acq.baseline_s) / scale,
            # A replay may deliver a whole recording at once (--speed 0): keep all of it.
            retain_s=math.inf
            if self.config.replay is not None
            else (acq.delay_s + acq.window_s) / scale + LATE_MARKER_S,
            stall_s=acq.resolve_timeout_s,
            skip_censored=fmri and self.config.preprocess.method != "none",
        )
        self.display_delay_s = float(acq.display_delay_s)  # wall seconds
        self.scale, self.tr_wall = scale, tr
        self.tracker = (
            RunTracker(sorted(self.participants), tolerance_s=TOLERANCE_TR * tr) if fmri else None
        )
        if self.preprocessing is not None:
            for subject in set(self.preprocessing.cleaners) - set(self.participants):
                self.preprocessing.remove_subject(subject)
        self.counters.update({"volumes": 0, "trials": 0, "bad_trials": 0, "markers": 0})
        self.scanner_now = -math.inf  # the newest stamp of any participant stream or trigger
        self.log.info(
            "subjects %s, channels %s, window %.3g-%.3g s after onset (scanner s)",
            sorted(self.participants),
            [b.n_channels for _, b in sorted(buffers.items())],
            acq.delay_s,
            acq.delay_s + acq.window_s,
        )

    def _buffer_s(self, info: pylsl.StreamInfo) -> int:
        """The inlet buffer for ``info``: the whole replayed stream in a replay (module doc)."""
        if not self.replay:
            return DEFAULT_BUFFER_S
        return buffer_seconds(replay_samples(info), info.nominal_srate())

    def _open_triggers(self) -> tuple[pylsl.StreamInlet | None, pylsl.StreamInfo | None]:
        """The scanner's trigger stream (inlet and info, its clock not measured yet), if the
        config names one and it is there."""
        if self.config.trigger.source != "lsl":
            return None, None
        query = trigger_query(self.config)
        info = find_streams([query], 1.0 if self.replay else 2.0)[0]
        if info is None:
            self.log.warning("no trigger stream %s: volumes expected per run unknown", query)
            return None, None
        inlet = open_inlet(
            info, processing=MARKER_PROCESSING, max_buflen=self._buffer_s(info), sync=False
        )
        return inlet, info

    def start(self) -> None:
        super().start()
        self._announce_participants()

    def _announce_participants(self) -> None:
        self.event("participants", subjects=sorted(self.participants))

    def tick(self) -> None:
        now = local_clock()
        self._receive_volumes(now)
        self._receive_markers(now)
        self._receive_triggers()
        responses = self.cutter.cut(now)
        for subject in self._stopped_streams(now):
            responses += self.cutter.give_up(
                subject, self.scanner_now - STOP_TRS * self.tr_wall, "stream stopped", now
            )
        for response in responses:
            self._publish(response)

    def _stopped_streams(self, now: float) -> list[int]:
        """Participants more than :data:`STOP_TRS` TRs behind the scanner clock (module doc)."""
        if not self.participants or not math.isfinite(self.scanner_now):
            return []
        behind = self.scanner_now - STOP_TRS * self.tr_wall
        out = []
        for subject, p in self.participants.items():
            if p.last_stamp >= behind or p.reader is not None:
                continue
            if not p.received:
                continue  # it has not begun: waited for up to resolve_timeout_s (module doc)
            if now - p.last_arrival < STOP_TRS * self.tr_wall or p.inlet.samples_available():
                continue  # behind, but its volumes still come (a fast replay, a long tick)
            out.append(subject)
            if not p.stopped:
                p.stopped = True
                self.count("stream_stops")
                self.log.warning(
                    "stream %s stopped: no volume for %.3g TRs of scanner time; subject %d's "
                    "trials are given up until it sends again",
                    p.query.describe(),
                    STOP_TRS,
                    subject,
                )
        return out

    def _receive_triggers(self) -> None:
        """Receive: scanner triggers (one per volume), counted per run."""
        if self.triggers is None:
            return
        try:
            triggers = pull_markers(self.triggers)
        except LostError:
            self.log.warning("the trigger stream's LSL source was lost")
            self.triggers = None
            return
        for _, t in triggers:
            if self.tracker is not None:
                self.tracker.add_trigger(t)
            self.count("triggers")
            self.scanner_now = max(self.scanner_now, float(t))

    def _receive_volumes(self, now: float) -> None:
        """Receive: every participant's new volumes, stamped as arrived ``now``."""
        for subject, participant in list(self.participants.items()):
            try:
                if participant.reader is not None:
                    data, times = participant.reader.read(participant.inlet, now)
                else:
                    data, times = pull_volumes(participant.inlet)
            except LostError:
                self._leave_out(subject, "its LSL source was lost")
                continue
            if times.size:
                self._check_order(participant, times)
                if participant.stopped:
                    participant.stopped = False
                    self.log.info("stream %s sends again", participant.query.describe())
                participant.last_stamp = max(participant.last_stamp, float(times.max()))
                participant.last_arrival = now
                self.scanner_now = max(self.scanner_now, participant.last_stamp)
                self.count("volumes", int(times.size))
                participant.received += int(times.size)
                if self.tracker is not None:
                    self.tracker.add_volumes(subject, times)
            if self.preprocessing is not None:
                data, times, censored = self.preprocessing.receive(subject, data, times, now)
                for volume in censored:
                    self.count("censored_volumes")
                    if self.tracker is not None:
                        self.tracker.add_censored(subject, volume.time, volume.reason)
            if times.size:
                self.cutter.buffers[subject].append(data, times, now)

    def _check_order(self, participant: Participant, times: np.ndarray) -> None:
        """Count (and warn once per stream about) stamps that go back in time."""
        previous = np.concatenate([[participant.last_stamp], times[:-1]])
        previous = np.maximum.accumulate(previous)
        n = int(np.count_nonzero(times < previous - OUT_OF_ORDER_S))
        if not n:
            return
        participant.out_of_order += n
        self.count("out_of_order_stamps", n)
        if participant.out_of_order == n:
            self.log.warning(
                "stream %s: time stamps out of order (%d so far; further ones are only "
                "counted); its volumes are used in time order",
                participant.query.describe(),
                n,
            )

    def _receive_markers(self, now: float) -> None:
        """Receive: the display's markers; each stimulus marker opens a trial."""
        try:
            markers = pull_markers(self.markers)
        except LostError:
            raise NodeError("acquire: the marker stream's LSL source was lost") from None
        for text, onset in markers:
            try:
                marker = decode_marker(text)
                if marker["event"] in ("run", "trigger"):
                    self._run_marker(marker, onset)
                    continue
                if marker["event"] != "stimulus":
                    continue
                trial, stimulus = int(marker["trial"]), str(marker["stimulus"])
            except (ValueError, KeyError, TypeError) as err:
                self._foreign_marker(text, err)
                continue
            self.count("markers")
            phase = str(marker.get("phase", ""))
            onset += self.display_delay_s  # the flip's stamp -> when the image is on the screen
            run_end = math.inf
            if self.tracker is not None:
                declared = self.tracker.declared_run_at(onset)
                run_end = declared.end if declared is not None else math.inf
            added = self.cutter.add_trial(
                trial, stimulus, phase, onset, known_at=now, run_end=run_end
            )
            if added is None:
                self.count("repeated_markers")
            elif self.tracker is not None:
                self.tracker.add_trial(onset, phase)

    def _run_marker(self, marker: dict, t: float) -> None:
        """A ``run`` marker (a run began at ``t``) or a ``trigger`` marker (a keyboard trigger)."""
        if self.tracker is None:
            return
        if marker["event"] == "trigger":
            self.tracker.add_trigger(t)
            self.count("triggers")
            return
        volumes = marker.get("volumes")
        tr_s = marker.get("tr_s")
        period = float(tr_s) / self.scale if isinstance(tr_s, int | float) and tr_s > 0 else None
        self.tracker.start_run(
            int(marker["run"]),
            str(marker.get("phase", "")),
            t,
            int(volumes) if isinstance(volumes, int) else None,
            period or self.tr_wall,
        )
        if self.preprocessing is not None:
            self.preprocessing.declare_run(t)
        self.count("runs")

    def _publish(self, r: CutResponse) -> None:
        """Publish: one trial response of one subject."""
        meta = {
            "trial": r.trial.trial,
            "stimulus": r.trial.stimulus,
            "phase": r.trial.phase,
            "subject": r.subject,
            "onset_lsl": r.trial.onset,
            "arrival_lsl": r.arrival,
            "n_volumes": r.n_volumes,
            "n_censored": r.n_censored,
            "run": self.tracker.run_of(r.trial.onset) if self.tracker is not None else 0,
            "rate_hz": self.participants[r.subject].rate_hz
            if r.subject in self.participants
            else 0.0,
            "bad": r.bad,
        }
        self.publish("responses", [r.pattern], kind="response", meta=meta, lsl_time=r.arrival)
        self.count("trials")
        if r.bad is not None:
            self.count("bad_trials")
            if self.tracker is not None:
                self.tracker.add_bad(r.trial.onset, r.bad)
            participant = self.participants.get(r.subject)
            if participant is not None:
                participant.bad_trials += 1
                if participant.bad_trials == 1:
                    self.log.warning(
                        "subject %d, trial %d is bad (%s); further bad trials of this "
                        "subject are only counted",
                        r.subject,
                        r.trial.trial,
                        r.bad,
                    )

    def _foreign_marker(self, text: str, err: Exception) -> None:
        self.count("foreign_markers")
        if self.counters["foreign_markers"] == 1:
            self.log.warning("ignoring a marker that is not ours (%s): %.60r", err, text)

    def _leave_out(self, subject: int, why: str) -> None:
        participant = self.participants.pop(subject)
        query = participant.query
        self._received_left = {
            **getattr(self, "_received_left", {}),
            str(subject): participant.received,
        }
        self.cutter.remove_subject(subject)
        if self.preprocessing is not None:
            self.preprocessing.remove_subject(subject)
        self.count("participants_left_out")
        self.log.error("stream %s: %s; subject %d is left out", query.describe(), why, subject)
        if not self.participants:
            raise NodeError("acquire: no participant stream is left")
        self._announce_participants()

    def status(self) -> dict[str, Any]:
        """Heartbeat payload: counters and, in decode mode, the per-run report."""
        tracker = getattr(self, "tracker", None)  # heartbeats start before setup
        received = {
            str(subject): p.received for subject, p in getattr(self, "participants", {}).items()
        }
        received.update(getattr(self, "_received_left", {}))
        preprocessing = getattr(self, "preprocessing", None)
        return {
            **super().status(),
            "runs": tracker.report() if tracker is not None else [],
            "received": received,
            "out_of_order_stamps": {
                str(s): p.out_of_order for s, p in getattr(self, "participants", {}).items()
            },
            "preprocess": preprocessing.summary() if preprocessing is not None else {},
        }

    def _last_triggers(self) -> None:
        """Receive the triggers of the volumes already received (see :meth:`teardown`).

        A scanner's trigger comes before its volume, but a trigger-box app on another machine,
        or a replay (which interleaves streams by time stamp), can deliver it just after: the
        last tick can then hold the volume and miss its trigger, and the summary said "125 of
        124 expected". Waits at most :data:`LAST_TRIGGER_WAIT_S`.
        """
        latest = max((p.last_stamp for p in self.participants.values()), default=-math.inf)
        deadline = time.monotonic() + LAST_TRIGGER_WAIT_S
        while self.triggers is not None and self.tracker is not None:
            self._receive_triggers()
            counted = max(self.tracker.triggers, default=-math.inf)
            if counted >= latest - OUT_OF_ORDER_S or time.monotonic() >= deadline:
                return
            time.sleep(0.005)

    def teardown(self) -> None:
        if getattr(self, "triggers", None) is not None:
            self._last_triggers()
        for subject, participant in getattr(self, "participants", {}).items():
            if participant.bad_trials:
                self.log.info("subject %d had %d bad trial(s)", subject, participant.bad_trials)
            participant.inlet.close_stream()
        self._received_left = {
            str(s): p.received for s, p in getattr(self, "participants", {}).items()
        }
        self.participants = {}
        if getattr(self, "preprocessing", None) is not None:
            self.preprocessing.close()
        self.markers = None
        self.triggers = None


NODE = AcquireNode
