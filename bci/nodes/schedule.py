"""The display's trial schedule: when each stimulus, blank and phase change is due.

Pure timing logic, no pygame and no bus, so it can be tested on its own. A session presents
``n_train`` calibration trials (stimuli ``0 .. n_train - 1``, phase ``"train"``) and then ``n_test``
test trials (the next ``n_test`` stimuli, phase ``"test"``). A trial shows its stimulus for
``stimulus_s`` and then a blank (fixation cross) for ``isi_s``. Durations in the config are in
scanner seconds; wall time is scanner time divided by ``time_scale``.

Onsets are offsets in wall seconds from the moment the schedule starts; the display adds its
own start time (on the LSL clock). Events that share an onset are one frame: a phase change is
due together with the first stimulus of the phase, so both markers carry that flip's stamp.

Example
-------
>>> s = Schedule.from_config(config, ids)  # doctest: +SKIP
>>> frame = s.pop_frame(elapsed)  # the events due now (one flip), or []  # doctest: +SKIP
>>> s.next_onset  # when the next frame is due; None when done  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

PHASES = ("train", "test")
KINDS = ("phase", "stimulus", "blank")
_EPS = 1e-9


@dataclass(frozen=True)
class Trial:
    """One trial of the schedule.

    Attributes
    ----------
    index : int
        Trial number over the whole session (0, 1, ...), as written in the markers.
    stimulus_index : int
        Row of the stimulus in the stimulus set.
    stimulus : str
        Stimulus id (as written in the markers).
    phase : str
        ``"train"`` or ``"test"``.
    onset : float
        Stimulus onset, wall seconds from the start of the schedule.
    blank_onset : float
        Blank (fixation) onset, wall seconds from the start of the schedule.
    """

    index: int
    stimulus_index: int
    stimulus: str
    phase: str
    onset: float
    blank_onset: float


@dataclass(frozen=True)
class ScheduledEvent:
    """One thing the display does at a given time.

    Attributes
    ----------
    onset : float
        Wall seconds from the start of the schedule.
    kind : str
        ``"phase"`` (a phase begins), ``"stimulus"`` or ``"blank"``.
    trial : int
        Trial number (for a phase event: the first trial of the phase).
    stimulus : str
        Stimulus id of the trial.
    phase : str
        ``"train"`` or ``"test"``.
    """

    onset: float
    kind: str
    trial: int
    stimulus: str
    phase: str


def _event(trial: Trial, kind: str, onset: float) -> ScheduledEvent:
    return ScheduledEvent(onset, kind, trial.index, trial.stimulus, trial.phase)


class Schedule:
    """The ordered events of a session and a cursor over them.

    Parameters
    ----------
    trials : sequence of Trial
        The trials, in presentation order.
    duration : float
        Wall seconds from the first onset to the end of the last trial's blank.

    Attributes
    ----------
    trials : tuple of Trial
    events : tuple of ScheduledEvent
        Sorted by onset; at equal onsets a phase event comes before the stimulus.
    duration : float
    """

    def __init__(self, trials: Sequence[Trial], duration: float) -> None:
        self.trials = tuple(trials)
        self.duration = float(duration)
        events: list[ScheduledEvent] = []
        last_phase = None
        for k, trial in enumerate(self.trials):
            if trial.phase != last_phase:
                events.append(_event(trial, "phase", trial.onset))
                last_phase = trial.phase
            events.append(_event(trial, "stimulus", trial.onset))
            # A blank of zero length would never be seen; only the final one is always kept
            # (the screen must not stay on the last stimulus).
            next_onset = self.trials[k + 1].onset if k + 1 < len(self.trials) else None
            if next_onset is None or trial.blank_onset < next_onset - _EPS:
                events.append(_event(trial, "blank", trial.blank_onset))
        self.events = tuple(events)
        self._cursor = 0

    @classmethod
    def from_config(cls, config: Mapping[str, Any], ids: Sequence[str]) -> Schedule:
        """Build the session's schedule from a validated config and the stimulus ids.

        Parameters
        ----------
        config : Mapping
            Validated session config; uses ``[stimuli] n_train, n_test`` and
            ``[timing] stimulus_s, isi_s, time_scale, run_break_s``.
        ids : sequence of str
            The stimulus set's ids, in order.

        Returns
        -------
        Schedule

        Raises
        ------
        ValueError
            The stimulus set has fewer stimuli than the schedule presents.
        """
        n_train = int(config.stimuli.n_train)
        n_test = int(config.stimuli.n_test)
        timing = config.timing
        return cls.build(
            ids,
            n_train=n_train,
            n_test=n_test,
            stimulus_s=float(timing.stimulus_s),
            isi_s=float(timing.isi_s),
            time_scale=float(timing.time_scale),
            run_break_s=float(timing.run_break_s),
        )

    @classmethod
    def build(
        cls,
        ids: Sequence[str],
        *,
        n_train: int,
        n_test: int,
        stimulus_s: float,
        isi_s: float,
        time_scale: float = 1.0,
        run_break_s: float = 0.0,
    ) -> Schedule:
        """Build a schedule from explicit numbers (see :meth:`from_config`).

        Parameters
        ----------
        ids : sequence of str
            Stimulus ids; the first ``n_train + n_test`` are presented.
        n_train, n_test : int
            Trials per phase.
        stimulus_s, isi_s : float
            Stimulus and blank durations in scanner seconds.
        time_scale : float
            Scanner seconds per wall second (> 0).
        run_break_s : float
            Pause between the calibration run and the test run, in scanner seconds (the decode
            node fits the model from the calibration data then).

        Returns
        -------
        Schedule
        """
        n = n_train + n_test
        if n_train < 0 or n_test < 0:
            raise ValueError(f"n_train and n_test must be >= 0, got {n_train} and {n_test}")
        if len(ids) < n:
            raise ValueError(
                f"the stimulus set has {len(ids)} stimuli but the schedule presents {n} "
                f"(n_train {n_train} + n_test {n_test})"
            )
        if time_scale <= 0 or stimulus_s <= 0 or isi_s < 0:
            raise ValueError(
                f"need time_scale > 0, stimulus_s > 0, isi_s >= 0; got {time_scale}, "
                f"{stimulus_s}, {isi_s}"
            )
        stimulus_wall = stimulus_s / time_scale
        trial_wall = (stimulus_s + isi_s) / time_scale
        pause = run_break_s / time_scale if n_train and n_test else 0.0
        onsets = [k * trial_wall + (pause if k >= n_train else 0.0) for k in range(n)]
        trials = [
            Trial(
                index=k,
                stimulus_index=k,
                stimulus=str(ids[k]),
                phase="train" if k < n_train else "test",
                onset=onsets[k],
                blank_onset=onsets[k] + stimulus_wall,
            )
            for k in range(n)
        ]
        return cls(trials, n * trial_wall + pause)

    @classmethod
    def block(
        cls,
        ids: Sequence[str],
        *,
        first_trial: int,
        phase: str,
        stimulus_s: float,
        isi_s: float,
        time_scale: float = 1.0,
    ) -> Schedule:
        """A block of trials presented back to back (evolve mode: one generation).

        Parameters
        ----------
        ids : sequence of str
            Stimulus ids, in presentation order (``Trial.stimulus_index`` is the position here).
        first_trial : int
            Trial number of the first trial (trial numbers run on over the session's blocks).
        phase : str
            Phase written in every trial's markers.
        stimulus_s, isi_s, time_scale : float
            As in :meth:`build`.

        Returns
        -------
        Schedule
            Onsets from 0; ``duration`` ends with the last blank.
        """
        if not len(ids):
            raise ValueError("a block needs at least one stimulus")
        if time_scale <= 0 or stimulus_s <= 0 or isi_s < 0:
            raise ValueError(
                f"need time_scale > 0, stimulus_s > 0, isi_s >= 0; got {time_scale}, "
                f"{stimulus_s}, {isi_s}"
            )
        trial_wall = (stimulus_s + isi_s) / time_scale
        trials = [
            Trial(
                index=first_trial + k,
                stimulus_index=k,
                stimulus=str(sid),
                phase=phase,
                onset=k * trial_wall,
                blank_onset=k * trial_wall + stimulus_s / time_scale,
            )
            for k, sid in enumerate(ids)
        ]
        return cls(trials, len(trials) * trial_wall)

    # -- the cursor ------------------------------------------------------------------------------
    @property
    def next_onset(self) -> float | None:
        """Onset of the next event not yet popped, or None when every event has been popped."""
        return self.events[self._cursor].onset if self._cursor < len(self.events) else None

    @property
    def next_event(self) -> ScheduledEvent | None:
        """The next event not yet popped, or None when every event has been popped."""
        return self.events[self._cursor] if self._cursor < len(self.events) else None

    @property
    def done(self) -> bool:
        """True once every event has been popped."""
        return self._cursor >= len(self.events)

    @property
    def remaining(self) -> int:
        """Events not yet popped."""
        return len(self.events) - self._cursor

    def pop_frame(self, elapsed: float) -> list[ScheduledEvent]:
        """Return the next frame's events if they are due at ``elapsed``, else an empty list.

        A frame is the run of consecutive events that share one onset (e.g. a phase change and
        its first stimulus). When the caller is late, the frames still come one at a time, in
        order, so each gets its own flip and its own stamp.

        Parameters
        ----------
        elapsed : float
            Wall seconds since the schedule started.

        Returns
        -------
        list of ScheduledEvent
        """
        onset = self.next_onset
        if onset is None or onset > elapsed:
            return []
        frame = []
        while self._cursor < len(self.events) and self.events[self._cursor].onset == onset:
            frame.append(self.events[self._cursor])
            self._cursor += 1
        return frame

    def due(self, elapsed: float) -> list[ScheduledEvent]:
        """Pop and return every event due at ``elapsed`` (all frames, in order)."""
        events: list[ScheduledEvent] = []
        while frame := self.pop_frame(elapsed):
            events.extend(frame)
        return events

    def reset(self) -> None:
        """Put the cursor back at the first event."""
        self._cursor = 0

    @property
    def stimulus_ids(self) -> tuple[str, ...]:
        """Ids of the presented stimuli, in presentation order."""
        return tuple(t.stimulus for t in self.trials)
