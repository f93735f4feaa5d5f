"""Re-publish a recording's streams as LSL outlets, as if their sources were live.

Each replayed stream gets an outlet with the recorded name (or a new one, see ``rename``),
type, source_id, channel count, channel format, nominal rate and channel labels, so the
session's stream queries find it exactly as they would find the live source.

Time stamps
-----------
A sample recorded at ``t`` is pushed at, and stamped with, its replay time::

    t_start + (t - t_first) / speed

where ``t_first`` is the time stamp of the recording's earliest sample over all replayed
streams and ``t_start`` the LSL time given to :meth:`ReplayPlayer.start`. The stamps are the
recording's own time stamps shifted by a constant and divided by ``speed``: intervals within
and across streams are the recorded ones scaled by ``1 / speed``. With ``speed=0`` everything
is pushed at once (or paced, see below), stamped ``t_start + (t - t_first)`` (the recorded
spacing, speed 1).

An outlet's nominal rate is the recorded one times ``speed`` (the rate its stamps have; the
recorded rate at ``speed=0``), so a consumer that relies on it, as the trial cutter does to
complete a window one sample early, sees the replayed stream as it is.

LSL orders samples within a stream only (each stream is its own connection), so each stream's
samples are pushed in order, and the streams are interleaved in time order in blocks of at most
:data:`BLOCK` samples. Each outlet buffers the whole stream for an inlet that falls behind
(liblsl's default, 360 s of the nominal rate, lost most of a 0.5 Hz recording pushed at
``speed=0``), and announces its sample count in ``desc/replay_samples`` so that an inlet can
size its own buffer (:func:`bci.lsl.streams.buffer_seconds`).

Other consumers keep liblsl's default inlet buffer: LabRecorder, recording the replaying
session, holds 360 s of the nominal rate, only 180 volumes of a TR-2 s stream, and lost 262 of
a run's 444 volumes pushed at once. So at ``speed=0`` a stream longer than half that buffer is
paced: at most a quarter of the buffer per second (:func:`paced_offsets`; 45 volumes a second at
TR 2 s), the other streams in step with it; shorter streams still go at once.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pylsl

from bci.io.recording import read_recording
from bci.io.streams import RecordedStream, Recording
from bci.lsl.streams import (
    REPLAY_SAMPLES_KEY,
    base_source_id,
    buffer_seconds,
    default_buffer_samples,
    make_outlet,
)

__all__ = ["BLOCK", "ReplayPlayer", "paced_offsets"]

log = logging.getLogger(__name__)

BLOCK = 1024
"""Samples (over all streams) handled per interleaving step of :meth:`ReplayPlayer.push_due`."""


def paced_offsets(which: np.ndarray, streams: Sequence[RecordedStream]) -> np.ndarray:
    """Wall seconds after the start at which a ``speed=0`` replay pushes each sample.

    Parameters
    ----------
    which : ndarray of int
        The stream of each sample, in push order (recorded time order).
    streams : sequence of RecordedStream
        The replayed streams.

    Returns
    -------
    ndarray of float
        Non-decreasing offsets: 0 for every sample when each stream fits in half of a default
        inlet buffer; else a stream that does not goes at a quarter of that buffer per second,
        and every sample waits for those before it.
    """
    offsets = np.zeros(len(which))
    for k, stream in enumerate(streams):
        budget = default_buffer_samples(stream.nominal_srate)
        if stream.n_samples * 2 <= budget:
            continue
        mine = which == k
        offsets[mine] = np.arange(int(mine.sum())) / (budget / 4.0)
    return np.maximum.accumulate(offsets) if offsets.size else offsets


def _outlet_desc(stream: RecordedStream) -> dict[str, str]:
    """The recorded ``<desc>`` entries that are plain top-level text (e.g. ``manufacturer``)."""
    out = {}
    for key, value in stream.desc.items():
        if not key.startswith("desc/") or not isinstance(value, str):
            continue
        name = key[len("desc/") :]
        if name and "/" not in name and "[" not in name:
            out[name] = value
    return out


def _source_id(recorded: str, session: str) -> str:
    return f"{base_source_id(recorded)}@{session}" if session else recorded


class ReplayPlayer:
    """Replay a recording's streams on LSL, stamped with their recorded timing.

    Creating the player creates the outlets (the streams are visible at once, so consumers
    can connect before :meth:`start`); :meth:`start` fixes the replay clock; each
    :meth:`push_due` pushes what is due by then; :meth:`close` withdraws the outlets.

    Parameters
    ----------
    recording : Recording or str or Path
        A recording, or a file to read with :func:`bci.io.read_recording`.
    speed : float
        Replay speed: 1 in real time, 2 twice as fast, 0 everything at once.
    streams : sequence of str, optional
        Names of the streams to replay (default: all usable streams of the recording).
    rename : mapping of str to str, optional
        New outlet names for some of the replayed streams (old name -> new name).
    session : str
        The replaying session's id: each outlet's source_id becomes the recorded one (without
        the recording session's id) ``@<session>`` (:data:`bci.lsl.streams.SESSION_ID_KEY`).

    Raises
    ------
    ValueError
        If ``speed`` is negative or not finite, ``rename`` names a stream that is not
        replayed, or there is nothing to replay.
    KeyError
        If ``streams`` names a stream the recording does not have.
    """

    def __init__(
        self,
        recording: Recording | str | Path,
        *,
        speed: float = 1.0,
        streams: Sequence[str] | None = None,
        rename: Mapping[str, str] | None = None,
        session: str = "",
    ) -> None:
        speed = float(speed)
        if not math.isfinite(speed) or speed < 0:
            raise ValueError(f"speed must be a finite number >= 0 (0: all at once), got {speed}")
        self.recording = (
            recording if isinstance(recording, Recording) else read_recording(recording)
        )
        self.speed = speed
        if streams is None:
            chosen = list(self.recording.streams)
        else:
            chosen = [self.recording.stream(name) for name in streams]
        if not chosen:
            raise ValueError(f"{self.recording.path.name} has no usable stream to replay")
        rename = dict(rename or {})
        unknown = sorted(set(rename) - {s.name for s in chosen})
        if unknown:
            raise ValueError(
                f"rename names streams that are not replayed: {', '.join(map(repr, unknown))}"
            )
        self.streams: list[RecordedStream] = chosen
        self.names: list[str] = [rename.get(s.name, s.name) for s in chosen]
        if len(set(self.names)) < len(self.names):
            log.warning("several replayed streams share a name: %s", ", ".join(self.names))

        self.t_first = float(min(s.time_stamps[0] for s in chosen))
        self.t_last = float(max(s.time_stamps[-1] for s in chosen))
        # The global push order: every sample of every stream, by recorded time (ties: in
        # stream order, then sample order, as the sort is stable).
        times = np.concatenate([s.time_stamps for s in chosen])
        which = np.concatenate(
            [np.full(s.n_samples, k, dtype=np.int32) for k, s in enumerate(chosen)]
        )
        order = np.argsort(times, kind="stable")
        self._offsets = times[order] - self.t_first
        self._which = which[order]
        self._paced = paced_offsets(self._which, chosen) if self.speed == 0 else None
        self._next = np.zeros(len(chosen), dtype=np.int64)
        self._cursor = 0
        self._t_start: float | None = None
        self._stamps: list[np.ndarray] = []
        self._due: np.ndarray | None = None
        self._outlets: list[pylsl.StreamOutlet] = []
        self._closed = False
        for stream, name in zip(chosen, self.names, strict=True):
            # Samples come `speed` times as often; at speed 0 their stamps keep the recorded
            # spacing, so the recorded rate describes them.
            rate = stream.nominal_srate * (self.speed if self.speed > 0 else 1.0)
            self._outlets.append(
                make_outlet(
                    name,
                    stream.type,
                    stream.n_channels,
                    rate,
                    _source_id(stream.source_id, session),
                    labels=stream.channel_labels,
                    desc={**_outlet_desc(stream), REPLAY_SAMPLES_KEY: str(stream.n_samples)},
                    channel_format=stream.channel_format,
                    max_buffered=buffer_seconds(stream.n_samples, rate),
                )
            )
            log.info("replaying %s as %r", stream.describe(), name)

    # -- state --------------------------------------------------------------------------------

    @property
    def n_samples(self) -> int:
        """Samples to replay, over all streams."""
        return len(self._which)

    @property
    def n_pushed(self) -> int:
        """Samples pushed so far."""
        return self._cursor

    def pushed_per_stream(self) -> dict[str, int]:
        """Samples pushed so far, per replayed stream (by outlet name)."""
        return {name: int(n) for name, n in zip(self.names, self._next, strict=True)}

    @property
    def done(self) -> bool:
        """Whether every sample has been pushed."""
        return self._cursor >= self.n_samples

    @property
    def started(self) -> bool:
        """Whether :meth:`start` was called."""
        return self._t_start is not None

    @property
    def t_start(self) -> float | None:
        """The LSL time of the first sample's replay (None before :meth:`start`)."""
        return self._t_start

    @property
    def duration_s(self) -> float:
        """Seconds the replay takes at this speed (at ``speed=0``: its pacing, often 0)."""
        if self._paced is not None:
            return float(self._paced[-1]) if self._paced.size else 0.0
        return (self.t_last - self.t_first) / self.speed

    @property
    def next_due(self) -> float | None:
        """The LSL time at which the next sample is due (None before start and when done)."""
        if self._due is None or self.done:
            return None
        return float(self._due[self._cursor])

    def replay_time(self, t: float | np.ndarray) -> float | np.ndarray:
        """The replay stamp of recorded time(s) ``t``: ``t_start + (t - t_first) / speed``."""
        if self._t_start is None:
            raise RuntimeError("the replay has not started; call start() first")
        scale = 1.0 if self.speed == 0 else self.speed
        return self._t_start + (np.asarray(t, dtype=np.float64) - self.t_first) / scale

    # -- replay -------------------------------------------------------------------------------

    def start(self, t_start: float | None = None) -> None:
        """Fix the replay clock: the recording's earliest sample is due at ``t_start``.

        Parameters
        ----------
        t_start : float, optional
            LSL time (:func:`pylsl.local_clock`) of the first sample; default now.
        """
        if self._closed:
            raise RuntimeError("the player is closed")
        if self._t_start is not None:
            raise RuntimeError("the replay has already started")
        self._t_start = float(pylsl.local_clock() if t_start is None else t_start)
        scale = 1.0 if self.speed == 0 else self.speed
        self._stamps = [
            self._t_start + (s.time_stamps - self.t_first) / scale for s in self.streams
        ]
        self._due = self._t_start + (
            self._paced if self._paced is not None else self._offsets / scale
        )
        log.info(
            "replay of %s started at %.3f, speed %g, %.1f s",
            self.recording.path.name,
            self._t_start,
            self.speed,
            self.duration_s,
        )

    def push_due(self, now: float | None = None) -> int:
        """Push every sample due by ``now`` (with ``speed=0``: as fast as its pacing allows).

        Parameters
        ----------
        now : float, optional
            LSL time; default :func:`pylsl.local_clock`.

        Returns
        -------
        int
            Samples pushed by this call.
        """
        if self._due is None:
            raise RuntimeError("the replay has not started; call start() first")
        if self._closed:
            raise RuntimeError("the player is closed")
        now = pylsl.local_clock() if now is None else float(now)
        end = int(np.searchsorted(self._due, now, side="right"))
        begin = self._cursor
        for a in range(begin, end, BLOCK):
            b = min(a + BLOCK, end)
            counts = np.bincount(self._which[a:b], minlength=len(self.streams))
            for k in np.flatnonzero(counts):
                self._push(int(k), int(counts[k]))
            self._cursor = b
        return end - begin

    def _push(self, k: int, count: int) -> None:
        i0 = int(self._next[k])
        i1 = i0 + count
        stream = self.streams[k]
        stamps = self._stamps[k][i0:i1]
        if stream.is_numeric:
            chunk = np.ascontiguousarray(stream.data[i0:i1])
        else:
            chunk = stream.data[i0:i1]
        self._outlets[k].push_chunk(chunk, stamps.tolist())
        self._next[k] = i1

    def play(
        self,
        *,
        t_start: float | None = None,
        stop: threading.Event | None = None,
        on_push: Callable[[int], None] | None = None,
        max_wait_s: float = 0.05,
    ) -> int:
        """Replay until done (or ``stop`` is set), sleeping until each sample is due.

        Parameters
        ----------
        t_start : float, optional
            For :meth:`start`, if the replay has not started yet.
        stop : threading.Event, optional
            Set it (from another thread) to end the replay early.
        on_push : callable, optional
            Called with the number of samples pushed, after each push (for progress bars).
        max_wait_s : float
            Longest sleep between two checks of ``stop``.

        Returns
        -------
        int
            Samples pushed by this call.
        """
        if not self.started:
            self.start(t_start)
        pushed = 0
        while not self.done:
            if stop is not None and stop.is_set():
                break
            n = self.push_due()
            pushed += n
            if n and on_push is not None:
                on_push(n)
            if self.done:
                break
            wait = min(max(self.next_due - pylsl.local_clock(), 0.0), max_wait_s)
            if stop is not None:
                stop.wait(wait)
            else:
                time.sleep(wait)
        return pushed

    def close(self) -> None:
        """Withdraw the outlets (idempotent)."""
        if not self._closed:
            log.info("replay closed after %d of %d samples", self.n_pushed, self.n_samples)
        self._closed = True
        self._outlets.clear()

    def __enter__(self) -> ReplayPlayer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"ReplayPlayer({self.recording.path.name!r}, {len(self.streams)} streams, "
            f"speed={self.speed:g}, {self.n_pushed}/{self.n_samples} pushed)"
        )
