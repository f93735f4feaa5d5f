"""LSL plumbing shared by the nodes: find streams, open inlets and outlets, pull chunks.

Time stamps
-----------
Every time here is on the LSL clock (:func:`pylsl.local_clock`). Inlets are opened with
``proc_clocksync`` (each sample's time is mapped onto this machine's clock) and
``proc_monotonize``. ``proc_dejitter`` is off by default for data: it fits a regular sampling
grid to the stream by recursive least squares, which is right for an amplifier but wrong as soon
as a volume is missing: after a 5-sample gap in a 10 Hz stream the dejittered time stamps were
measured up to 0.41 s (4 samples) off, recovering only over the following seconds. A scanner
bridge stamps each volume at its trigger, which is what we want to keep.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pylsl
from pylsl.util import LostError
from pylsl.util import TimeoutError as LslTimeoutError

from bci.config import SessionConfig
from bci.lsl.counting_outlet import CountingOutlet
from bci.lsl.markers import MARKER_STREAM_TYPE

log = logging.getLogger(__name__)

DATA_PROCESSING = pylsl.proc_clocksync | pylsl.proc_monotonize
"""Post-processing of data inlets (see the module docstring for why not ``proc_dejitter``)."""
MARKER_PROCESSING = pylsl.proc_clocksync | pylsl.proc_monotonize
"""Post-processing of marker inlets (irregular streams cannot be dejittered)."""
SIM_PREFIX = "bci-sim-"
SPIKES_TYPE = "Spikes"
"""LSL type of binned spike-count streams (one channel per unit, counts per bin)."""
MOTION_TYPE = "Motion"
"""LSL type of a scanner bridge's companion motion stream (six parameters and the FD)."""
MIN_RESOLVE_S = 0.5
"""Each stream gets at least this long to answer, even when the shared deadline has passed."""
SESSION_ID_KEY = "session_id"
"""Top-level config entry the supervisor sets: the session's id. Every stream the session creates
(the display's markers, the simulator's participant and trigger streams, the recorder's derived
streams, a replay's streams) carries it in its source_id, ``<base>@<id>``, and the session looks
for its own streams by it, so two sessions on one LSL network never take each other's streams.
Foreign streams (a scanner bridge, a rig's LSL app) keep their own source_ids and are found by
the name / type / source_id the config gives."""


class StreamError(RuntimeError):
    """An LSL stream could not be found or opened; the message names it in one line."""


class StreamNotFoundError(StreamError):
    """An LSL stream did not appear in time; the message names it in one line."""


@dataclass(frozen=True)
class StreamQuery:
    """What identifies a stream: any of name, type and source_id (empty: any value).

    Attributes
    ----------
    name, type, source_id : str
        LSL stream properties to match exactly.
    subject : int
        Participant index the stream belongs to (for participant streams).
    """

    name: str = ""
    type: str = ""
    source_id: str = ""
    subject: int = 0
    session: str = ""
    """A session id: the stream's source_id must contain ``@<session>`` (see
    :data:`SESSION_ID_KEY`); empty: any source_id."""

    def _fields(self) -> list[tuple[str, str]]:
        pairs = [("name", self.name), ("type", self.type), ("source_id", self.source_id)]
        return [(k, v) for k, v in pairs if v]

    def predicate(self) -> str:
        """The XPath predicate for :func:`pylsl.resolve_bypred`, e.g. ``name='x' and type='y'``."""
        for value in [v for _, v in self._fields()] + [self.session]:
            if "'" in value:
                raise ValueError(f"LSL stream properties cannot contain a quote: {value!r}")
        terms = [f"{k}='{v}'" for k, v in self._fields()]
        if self.session:
            terms.append(f"contains(source_id,'@{self.session}')")
        return " and ".join(terms)

    def describe(self) -> str:
        """``name='bci-sim-02' type='fMRI'``: how the stream is named in messages."""
        fields = [*self._fields(), *([("session", self.session)] if self.session else [])]
        return " ".join(f"{k}={v!r}" for k, v in fields)


def session_id(config: SessionConfig) -> str:
    """The session's id (:data:`SESSION_ID_KEY`; empty outside a supervised session)."""
    return config.session_id


def session_source_id(base: str, config: SessionConfig) -> str:
    """The source_id of a stream this session creates: ``<base>@<session id>``."""
    sid = session_id(config)
    return f"{base}@{sid}" if sid else base


def base_source_id(source_id: str) -> str:
    """``source_id`` without a session's ``@<id>`` suffix (a stream recorded by a session)."""
    return re.sub(r"@[0-9a-f]{12}$", "", source_id)


def own_sources(config: SessionConfig) -> bool:
    """Whether the participant and trigger streams are the session's own (simulator, replay)."""
    return bool(config.simulate.enabled or config.replay)


def participant_queries(config: SessionConfig) -> list[StreamQuery]:
    """The participant streams of a session.

    ``[[acquire.streams]]`` when configured; otherwise, with the simulator enabled, its default
    streams: in decode mode ``bci-sim-01`` and ``bci-sim-02`` (type ``fMRI``, subjects 0 and 1),
    in evolve mode ``bci-sim-units`` (type ``Spikes``: binned spike counts, subject 0).

    Parameters
    ----------
    config : SessionConfig
        A validated session config.

    Returns
    -------
    list of StreamQuery
        One per participant, in config order.
    """
    streams = config.acquire.streams
    sid = session_id(config) if own_sources(config) else ""
    if streams:
        return [
            StreamQuery(
                s.name,
                s.type,
                f"{s.source_id}@{sid}" if sid and s.source_id else s.source_id,
                int(s.subject),
                sid,
            )
            for s in streams
        ]
    if config.simulate.enabled and config.session.mode == "evolve":
        return [StreamQuery(f"{SIM_PREFIX}units", SPIKES_TYPE, "", 0, sid)]
    if config.simulate.enabled:
        return [StreamQuery(f"{SIM_PREFIX}{i + 1:02d}", "fMRI", "", i, sid) for i in range(2)]
    return []


def motion_stream_name(name: str) -> str:
    """The companion motion stream's name (or source_id) for a participant stream's."""
    return f"{name}-motion"


def motion_query(info: pylsl.StreamInfo) -> StreamQuery:
    """The motion stream that goes with the participant stream ``info`` (name and type)."""
    return StreamQuery(motion_stream_name(info.name()), MOTION_TYPE)


def marker_query(config: SessionConfig) -> StreamQuery:
    """The session's marker stream (``[acquire] marker_stream`` and ``marker_type``).

    Live, that is the display's stream (type ``Markers``); a replayed recording from another
    tool may carry its markers under another type.
    """
    acquire = config.acquire
    return StreamQuery(acquire.marker_stream, acquire.marker_type, session=session_id(config))


def trigger_query(config: SessionConfig) -> StreamQuery:
    """The scanner's trigger stream (``[trigger] stream``, any type; the session's own when the
    simulator or a replay sends it)."""
    sid = session_id(config) if own_sources(config) else ""
    return StreamQuery(config.trigger.stream, session=sid)


def resolve(query: StreamQuery, timeout_s: float) -> pylsl.StreamInfo:
    """Find one stream matching ``query``.

    Parameters
    ----------
    query : StreamQuery
        What to look for.
    timeout_s : float
        How long to wait for it.

    Returns
    -------
    pylsl.StreamInfo
        The stream (the first one if several match; a warning names how many).

    Raises
    ------
    StreamNotFoundError
        ``no LSL stream with name='x' type='fMRI' appeared within 10.0 s``.
    """
    return resolve_all([query], timeout_s)[0]


def find_streams(queries: Sequence[StreamQuery], timeout_s: float) -> list[pylsl.StreamInfo | None]:
    """Look for one stream per query, all within one deadline ``timeout_s`` from now.

    Returns
    -------
    list of pylsl.StreamInfo or None
        Per query, the stream found (the first one if several match; a warning names how
        many), or None if none appeared in time.
    """
    deadline = time.monotonic() + timeout_s
    found: list[pylsl.StreamInfo | None] = []
    for query in queries:
        wait = max(deadline - time.monotonic(), MIN_RESOLVE_S)
        infos = pylsl.resolve_bypred(query.predicate(), 1, wait)
        if len(infos) > 1:
            log.warning(
                "%d LSL streams match %s; using the one with source_id=%r",
                len(infos),
                query.describe(),
                infos[0].source_id(),
            )
        found.append(infos[0] if infos else None)
    return found


def resolve_all(queries: Sequence[StreamQuery], timeout_s: float) -> list[pylsl.StreamInfo]:
    """Find one stream per query, all within one deadline ``timeout_s`` from now.

    Raises
    ------
    StreamNotFoundError
        Naming the first query that found nothing.
    """
    found = find_streams(queries, timeout_s)
    for query, info in zip(queries, found, strict=True):
        if info is None:
            raise StreamNotFoundError(
                f"no LSL stream with {query.describe()} appeared within {float(timeout_s)} s"
            )
    return found


def open_inlet(
    info: pylsl.StreamInfo,
    *,
    processing: int = DATA_PROCESSING,
    max_buflen: int = 360,
    timeout_s: float = 5.0,
    sync: bool = True,
) -> pylsl.StreamInlet:
    """Open an inlet now (so no sample pushed from now on is missed) and sync its clock once.

    Parameters
    ----------
    info : pylsl.StreamInfo
        A resolved stream.
    processing : int
        pylsl post-processing flags (:data:`DATA_PROCESSING` or :data:`MARKER_PROCESSING`).
    max_buflen : int
        Seconds of data liblsl keeps for us (x100 samples for irregular streams).
    timeout_s : float
        For opening the stream and the first clock offset measurement.
    sync : bool
        Take the first clock offset measurement now (it blocks for about 0.6 s: liblsl's
        probes; keep it out of a node's loop). False: the caller does it, for several inlets at
        once, with :func:`sync_clocks`.

    Returns
    -------
    pylsl.StreamInlet
    """
    inlet = pylsl.StreamInlet(info, max_buflen=max_buflen, processing_flags=processing)
    try:
        inlet.open_stream(timeout_s)
        if sync:
            inlet.time_correction(timeout_s)
    except (LslTimeoutError, LostError):
        raise _no_answer(info, timeout_s) from None
    return inlet


def sync_clocks(
    inlets: Sequence[tuple[pylsl.StreamInfo, pylsl.StreamInlet]], timeout_s: float = 5.0
) -> None:
    """The first clock offset measurement of several inlets, at once (threads: liblsl's calls
    release the GIL), so a node with many streams starts in 0.6 s rather than 0.6 s each.

    Parameters
    ----------
    inlets : sequence of (pylsl.StreamInfo, pylsl.StreamInlet)
        Inlets opened with ``open_inlet(..., sync=False)``, and their streams (for the error).
    timeout_s : float
        For each measurement.

    Raises
    ------
    StreamError
        Naming the first stream that did not answer.
    """

    def measure(pair: tuple[pylsl.StreamInfo, pylsl.StreamInlet]) -> StreamError | None:
        info, inlet = pair
        try:
            inlet.time_correction(timeout_s)
        except (LslTimeoutError, LostError):
            return _no_answer(info, timeout_s)
        return None

    if not inlets:
        return
    with ThreadPoolExecutor(max_workers=len(inlets)) as pool:
        errors = [e for e in pool.map(measure, inlets) if e is not None]
    if errors:
        raise errors[0]


def _no_answer(info: pylsl.StreamInfo, timeout_s: float) -> StreamError:
    return StreamError(
        f"LSL stream {info.name()!r} (source_id={info.source_id()!r}) was found but did not "
        f"answer within {timeout_s} s"
    )


REPLAY_SAMPLES_KEY = "replay_samples"
"""``desc`` entry of a replayed stream: how many samples the replay will push on it."""
DEFAULT_BUFFER_S = 360
"""liblsl's default buffer: seconds of the nominal rate (x100 samples for irregular streams)."""


def buffer_samples_per_second(rate_hz: float) -> float:
    """Samples one second of an LSL buffer holds: the nominal rate, 100 for an irregular stream."""
    return rate_hz if rate_hz > 0 else 100.0


def default_buffer_samples(rate_hz: float) -> int:
    """Samples liblsl's default buffer (:data:`DEFAULT_BUFFER_S`) holds at nominal ``rate_hz``;
    a consumer that keeps it (LabRecorder does) loses the oldest beyond them."""
    return int(DEFAULT_BUFFER_S * buffer_samples_per_second(rate_hz))


def buffer_seconds(n_samples: int, rate_hz: float) -> int:
    """An LSL ``max_buflen`` / ``max_buffered`` that holds ``n_samples`` at ``rate_hz``.

    liblsl counts its buffers in seconds of the stream's nominal rate (hundreds of samples for
    an irregular stream); a replay at ``--speed 0`` pushes a whole recording at once, so its
    outlets and the inlets reading them must hold all of it. Never below the default.
    """
    per_second = buffer_samples_per_second(rate_hz)
    return max(DEFAULT_BUFFER_S, int(math.ceil(n_samples / per_second)) + 1)


def replay_samples(info: pylsl.StreamInfo, timeout_s: float = 5.0) -> int:
    """The sample count a replayed stream announces in its ``desc`` (0 for a live stream).

    The short stream info that discovery returns has no ``desc``; a short-lived inlet fetches
    the full one.
    """
    probe = pylsl.StreamInlet(info, max_buflen=1)
    try:
        full = probe.info(timeout_s)
        text = full.desc().child_value(REPLAY_SAMPLES_KEY)
    except (LslTimeoutError, LostError):
        return 0
    finally:
        probe.close_stream()
    try:
        return max(int(text), 0)
    except ValueError:
        return 0


def pull_volumes(
    inlet: pylsl.StreamInlet, max_samples: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """Everything the inlet holds now, without waiting.

    Returns
    -------
    data : np.ndarray
        ``(n, n_channels)`` float32.
    times : np.ndarray
        ``(n,)`` float64 clock-corrected LSL time stamps.
    """
    blocks, stamps = [], []
    while True:
        data, times = inlet.pull_chunk(timeout=0.0, max_samples=max_samples, as_numpy=True)
        if len(times) == 0:
            break
        blocks.append(np.asarray(data, dtype=np.float32))
        stamps.append(np.asarray(times, dtype=np.float64))
        if len(times) < max_samples:
            break
    if not blocks:
        return np.empty((0, inlet.channel_count), np.float32), np.empty(0, np.float64)
    return np.concatenate(blocks), np.concatenate(stamps)


def pull_markers(inlet: pylsl.StreamInlet) -> list[tuple[str, float]]:
    """The marker strings waiting in a one-channel string inlet, with their LSL times."""
    out: list[tuple[str, float]] = []
    while True:
        samples, times = inlet.pull_chunk(timeout=0.0, max_samples=256)
        out.extend((sample[0], float(t)) for sample, t in zip(samples, times, strict=True))
        if len(times) < 256:
            return out


def make_outlet(
    name: str,
    stream_type: str,
    n_channels: int,
    rate_hz: float,
    source_id: str,
    *,
    labels: Sequence[str] | None = None,
    desc: dict[str, str] | None = None,
    channel_format: str = "float32",
    max_buffered: int = DEFAULT_BUFFER_S,
) -> pylsl.StreamOutlet:
    """Create an outlet (the stream becomes visible at once).

    Parameters
    ----------
    name, stream_type, source_id : str
        The stream's identity.
    n_channels : int
        Channels per sample.
    rate_hz : float
        Nominal rate (0 for irregular streams).
    labels : sequence of str, optional
        Channel labels, written to ``desc/channels/channel/label``.
    desc : dict, optional
        Extra ``desc`` entries (key -> text).
    channel_format : str
        ``"float32"``, ``"string"``, ...
    max_buffered : int
        What the outlet keeps for a slow inlet (see :func:`buffer_seconds`).
    """
    info = pylsl.StreamInfo(name, stream_type, n_channels, rate_hz, channel_format, source_id)
    for key, value in (desc or {}).items():
        info.desc().append_child_value(key, str(value))
    if labels is not None:
        channels = info.desc().append_child("channels")
        for label in labels:
            channels.append_child("channel").append_child_value("label", label)
    return CountingOutlet(info, max_buffered=max_buffered)


def make_marker_outlet(name: str, node: str = "display", session: str = "") -> pylsl.StreamOutlet:
    """The display's marker outlet: type ``Markers``, one string channel of JSON, irregular rate.

    Parameters
    ----------
    name : str
        Stream name (``[acquire] marker_stream``).
    node : str
        Name of the node that sends the markers; the source id is ``bci-markers-<node>``.
    session : str
        The session's id, appended to the source id as ``@<session>`` (:data:`SESSION_ID_KEY`).
    """
    return make_outlet(
        name,
        MARKER_STREAM_TYPE,
        1,
        pylsl.IRREGULAR_RATE,
        f"bci-markers-{node}" + (f"@{session}" if session else ""),
        desc={"format": "json", "node": node},
        channel_format="string",
    )
