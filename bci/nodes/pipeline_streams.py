"""What the pipeline derives, published as LSL streams, so one XDF file holds the whole session.

The record node pushes every derived bus message onto these outlets (and LabRecorder records
them beside the participants' data and the display's markers):

``bci-pipeline`` (string, 1 channel, irregular)
    One JSON object per derived message: ``{"topic", "kind", "seq", "meta"}`` (responses,
    latents, generations, fitness, events), stamped with the message's LSL time; last, the
    record node's ``{"topic": "record", "kind": "recording_end", "meta": {"samples_sent":
    ...}}`` (samples sent per stream until then), padded with spaces to
    :data:`~bci.io.labrecorder.FLUSH_BYTES` so that LabRecorder writes it, and everything before
    it, to disk at once (one more follows every half second while the file is short).
``bci-latents`` (float32, ``latent_dim`` channels, irregular)
    Decoded latents (decode mode); each generation's latents and its best latent (evolve).
``bci-responses-NN`` (float32, one channel per voxel or unit, irregular)
    Every trial response of subject ``NN`` that acquire published.
``bci-fitness`` (float32, 1 channel, irregular)
    Each generation's fitness values, population then references (evolve mode only: a decode
    session has no such stream).

Every sample of a message carries the message's LSL time; the matching ``bci-pipeline`` entry
(same stamp) says what the sample is. Source ids carry the session's id, so two sessions on one
network never mix their streams.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping

import numpy as np
import pylsl

from bci.bus import Message
from bci.bus.topics import EVENTS, FITNESS, GENERATIONS, LATENTS, RESPONSES
from bci.io.labrecorder import FLUSH_BYTES
from bci.lsl.streams import make_outlet

log = logging.getLogger(__name__)

PIPELINE = "bci-pipeline"
DERIVED_PREFIXES = ("bci-pipeline", "bci-latents", "bci-responses-", "bci-fitness")
"""Names of the derived streams: a replay re-publishes every other stream of a recording."""
TOPICS = (RESPONSES, LATENTS, GENERATIONS, FITNESS, EVENTS)


def is_derived(name: str) -> bool:
    """True for the name of a stream this module publishes (not neural data, not markers)."""
    return name.startswith(DERIVED_PREFIXES)


class PipelineOutlets:
    """The derived streams of one session (see the module docstring).

    Parameters
    ----------
    session_id : str
        Distinguishes this session's streams (in their source ids).
    latent_dim : int
        Channels of ``bci-latents``.
    response_channels : mapping of int to int
        Subject -> channels of its responses (one ``bci-responses-NN`` stream each).
    fitness : bool
        Open ``bci-fitness`` (evolve sessions).
    """

    def __init__(
        self,
        session_id: str,
        latent_dim: int,
        response_channels: Mapping[int, int],
        *,
        fitness: bool = True,
    ) -> None:
        def outlet(name: str, n: int, fmt: str = "float32") -> pylsl.StreamOutlet:
            return make_outlet(
                name,
                "bci-derived",
                n,
                pylsl.IRREGULAR_RATE,
                f"{name}@{session_id}",
                desc={"session": session_id},
                channel_format=fmt,
            )

        self.latent_dim = int(latent_dim)
        self.pipeline = outlet(PIPELINE, 1, "string")
        self.latents = outlet("bci-latents", self.latent_dim)
        self.fitness = outlet("bci-fitness", 1) if fitness else None
        self.responses = {
            int(s): (outlet(f"bci-responses-{int(s):02d}", int(n)), int(n))
            for s, n in response_channels.items()
        }
        self.streams = [
            {"source_id": o.get_info().source_id()}
            for o in (self.pipeline, self.latents, self.fitness)
            if o is not None
        ] + [{"source_id": o.get_info().source_id()} for o, _ in self.responses.values()]
        self.skipped: dict[str, int] = {}

    def push_end(self, samples_sent: Mapping[str, int]) -> None:
        """Push the ``recording_end`` entry (see the module docstring), stamped now."""
        entry = {"topic": "record", "kind": "recording_end", "seq": None}
        entry["meta"] = {"samples_sent": dict(samples_sent)}
        text = json.dumps(entry)
        self.pipeline.push_sample([text.ljust(FLUSH_BYTES)], pylsl.local_clock())

    def push(self, msg: Message) -> None:
        """Push one bus message: its JSON entry, and its arrays on the stream they belong to."""
        if msg.topic not in TOPICS:
            return
        stamp = msg.lsl_time if msg.lsl_time is not None else pylsl.local_clock()
        entry = {"topic": msg.topic, "kind": msg.kind, "seq": msg.seq, "meta": msg.meta}
        self.pipeline.push_sample([json.dumps(entry, default=str)], stamp)
        if not msg.arrays:
            return
        if msg.topic == RESPONSES:
            target = self.responses.get(int(msg.meta.get("subject", -1)))
            if target is not None and msg.arrays[0].size == target[1]:
                target[0].push_sample(np.asarray(msg.arrays[0], np.float32).ravel(), stamp)
                return
        elif msg.topic in (LATENTS, GENERATIONS):
            z = np.asarray(msg.arrays[0], np.float32).reshape(-1, msg.arrays[0].shape[-1])
            if z.shape[1] == self.latent_dim:
                self.latents.push_chunk(z, [stamp] * len(z))
                return
        elif msg.topic == FITNESS and self.fitness is not None:
            values = np.concatenate([np.ravel(a) for a in msg.arrays]).astype(np.float32)
            self.fitness.push_chunk(values[:, None], [stamp] * len(values))
            return
        else:
            return
        key = f"{msg.topic}/{msg.kind}"
        self.skipped[key] = self.skipped.get(key, 0) + 1
        if self.skipped[key] == 1:
            log.warning("record: %s arrays of an unexpected shape are not streamed to LSL", key)
