"""The simulate node in evolve mode: in-silico neurons answering the images the display shows.

Loop: receive each generation's images (``images``, kind ``stimuli``) and compute every unit's
firing rate to each image (:class:`~bci.sim.neurons.InSilicoPopulation`: the rate depends on the
pixels, not on the latent) -> pull the display's stimulus markers (LSL); each onset raises the
units' rates to the image's rates from ``onset + latency_s`` for as long as the image is on
(``[timing] stimulus_s``) -> push every 1 ms bin whose time has passed as Poisson counts on one LSL
stream (type ``Spikes``, one channel per unit, nominal rate ``[simulate] rate_hz``), stamped
with the bin's start. It is a real LSL source: acquire cannot tell it from an amplifier's
spike-sorted output.

The units prefer images the session's generator renders from random latents
(:meth:`~bci.sim.neurons.InSilicoPopulation.from_generator`, seeded by ``[simulate] seed``), so a
good optimiser can find them; ``baseline_hz`` and ``peak_hz`` set the tuning's floor and height.
With ``[simulate] diverse`` they form an in-silico array (:func:`bci.sim.array.array_units`):
each unit has its own gain, baseline and tuning width, and one is clearly the most responsive.

The stream's form is the first ``[[acquire.streams]]`` entry's ``kind`` (counts, spike events,
or broadband voltage; :mod:`bci.nodes.unit_outputs`). The units' parameters are written to
``simulate/units.json`` at start-up and every spike's time and unit to
``simulate/ground_truth.npz`` at the end, so detection can be checked against them.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
from pylsl import local_clock

from bci.bus import Message
from bci.bus.topics import IMAGES
from bci.generators import load
from bci.lsl.markers import decode_marker
from bci.lsl.streams import (
    MARKER_PROCESSING,
    marker_query,
    open_inlet,
    participant_queries,
    pull_markers,
    resolve,
    session_source_id,
)
from bci.nodes.base import Node, NodeError
from bci.nodes.spike_input import stream_settings
from bci.nodes.unit_outputs import BroadbandOutput, CountsOutput, EventsOutput
from bci.sim.array import array_units
from bci.sim.neurons import InSilicoPopulation

PENDING_MARKER_S = 1.0
"""A marker for an image not received yet is retried for this long (wall s), then dropped."""
MAX_CHUNK_BINS = 2000
"""At most this many bins are pushed per tick (keeps the loop responsive after a stall)."""


class SpikeGenerator:
    """Binned Poisson spikes of units whose rates step up while a stimulus is on.

    Pure logic on one clock (no LSL): bin ``k`` covers ``[t0 + k / rate_hz, t0 + (k+1) / rate_hz)``
    and its rate is ``baseline_hz`` plus, for every response interval that contains the bin's
    start, that response's rate above baseline.

    Parameters
    ----------
    n_units : int
        Channels.
    rate_hz : float
        Bins per second.
    baseline_hz : float or array_like
        Rate with no stimulus (one for all units, or one per unit).
    seed : int or numpy Generator
        Spike noise.
    """

    def __init__(
        self,
        n_units: int,
        rate_hz: float,
        baseline_hz: float | np.ndarray,
        seed: int | np.random.Generator,
    ) -> None:
        self.n_units = int(n_units)
        self.bin_s = 1.0 / float(rate_hz)
        self.baseline = np.broadcast_to(np.asarray(baseline_hz, np.float64), (n_units,)).copy()
        self.rng = np.random.default_rng(seed)
        self.t0 = math.nan
        self.next_bin = 0
        self.responses: deque[tuple[float, float, np.ndarray]] = deque()

    def start(self, t0: float) -> None:
        """Bin 0 starts at ``t0``."""
        self.t0, self.next_bin = float(t0), 0

    def add_response(self, start: float, end: float, rates: np.ndarray) -> None:
        """From ``start`` to ``end`` the units fire at ``rates`` (Hz, ``(n_units,)``)."""
        self.responses.append((float(start), float(end), np.asarray(rates, dtype=np.float64)))

    def bins_until(self, t: float, max_bins: int = MAX_CHUNK_BINS) -> tuple[np.ndarray, np.ndarray]:
        """The bins that have ended by ``t`` and were not returned yet.

        Returns
        -------
        times : np.ndarray
            ``(n,)`` bin start times.
        counts : np.ndarray
            ``(n, n_units)`` float32 spike counts.
        """
        last = min(int(math.floor((t - self.t0) / self.bin_s)), self.next_bin + max_bins)
        n = max(0, last - self.next_bin)
        times = self.t0 + (self.next_bin + np.arange(n)) * self.bin_s
        rate = np.broadcast_to(self.baseline, (n, self.n_units)).copy()
        for start, end, rates in self.responses:
            inside = (times >= start) & (times < end)
            if inside.any():
                rate[inside] += np.maximum(rates - self.baseline, 0.0)
        while self.responses and self.responses[0][1] <= (times[-1] if n else -math.inf):
            self.responses.popleft()
        self.next_bin += n
        counts = self.rng.poisson(rate * self.bin_s).astype(np.float32)
        return times, counts


class SimulateUnitsNode(Node):
    """Stream in-silico neurons' spike counts in answer to the display's images over LSL."""

    name = "simulate"
    topics = (IMAGES,)
    poll_ms = 5.0

    def setup(self) -> None:
        sim, timing = self.config.simulate, self.config.timing
        if not sim.enabled:
            raise NodeError("simulate: [simulate] enabled is false, there is nothing to simulate")
        spec = self.config.generator.spec
        try:
            generator = load(spec, device="cpu")
        except (OSError, ValueError, RuntimeError) as err:
            raise NodeError(f"simulate: cannot load generator {spec!r}: {err}") from None
        self.units = array_units(
            sim.n_units,
            sim.baseline_hz,
            tuple(sim.amplitude_uv),
            diverse=sim.diverse,
            seed=np.random.default_rng([sim.seed, 2]),
        )
        # Tuning in [0, 1] per unit; each unit's rate is its baseline + peak_hz * gain * tuning.
        self.population = InSilicoPopulation.from_generator(
            generator, n_units=sim.n_units, seed=sim.seed, baseline_hz=0.0, peak_hz=1.0
        )
        self.population.widths = self.population.widths * self.units.width_factor
        self.peak_hz = float(sim.peak_hz)
        self.spikes = SpikeGenerator(
            sim.n_units,
            sim.rate_hz,
            self.units.baseline_hz,
            np.random.default_rng([sim.seed, 1]),
        )
        self.latency_s = sim.latency_s / timing.time_scale
        self.on_s = timing.stimulus_s / timing.time_scale
        query = participant_queries(self.config)[0]
        name = query.name or "bci-sim-units"
        self.output = self._make_output(name, query.type or "Spikes", query.source_id)
        self.output.truth.write(self.out / "simulate", self.units, self.output.kind)
        self.markers = open_inlet(
            resolve(marker_query(self.config), self.config.acquire.resolve_timeout_s),
            processing=MARKER_PROCESSING,
        )
        self.rates: dict[str, np.ndarray] = {}
        self.waiting: deque[tuple[str, float, float]] = deque()  # (stimulus, onset, since)
        self.log.info(
            "%d in-silico unit(s) on %s at %g Hz; %g Hz baseline, %g Hz peak, latency %g ms",
            sim.n_units,
            name,
            sim.rate_hz,
            sim.baseline_hz,
            sim.peak_hz,
            1000 * self.latency_s,
        )

    def start(self) -> None:
        super().start()
        self.spikes.start(local_clock())

    def handle(self, msg: Message) -> None:
        """Receive: images; compute each unit's rate to each (by stimulus id)."""
        ids = msg.meta.get("ids")
        if msg.kind != "stimuli" or len(msg.arrays) != 1 or not isinstance(ids, list):
            self.count("ignored")
            return
        try:
            rates = self.units.rates(self.population.rates(msg.arrays[0]), self.peak_hz)
        except ValueError as err:
            self.count("bad_images")
            self.log.warning("simulate: cannot respond to images %s...: %s", ids[:1], err)
            return
        for sid, rate in zip(map(str, ids), rates, strict=True):
            self.rates[sid] = rate
        self.count("images", len(ids))

    def tick(self) -> None:
        if not self.started:
            return
        now = local_clock()
        for text, onset in pull_markers(self.markers):
            try:
                marker = decode_marker(text)
            except ValueError:
                self.count("foreign_markers")
                continue
            if marker["event"] == "stimulus":
                self.waiting.append((str(marker.get("stimulus")), onset, now))
        self._respond(now)
        times, counts = self.spikes.bins_until(local_clock())
        if times.size:
            self.count("bins", int(times.size))
            self.count("samples", self.output.push(times, counts))

    def _respond(self, now: float) -> None:
        """Turn the markers whose image is known into response intervals."""
        keep: deque[tuple[str, float, float]] = deque()
        for stimulus, onset, since in self.waiting:
            rates = self.rates.get(stimulus)
            if rates is not None:
                start = onset + self.latency_s
                self.spikes.add_response(start, start + self.on_s, rates)
                self.count("stimuli")
            elif now - since < PENDING_MARKER_S:
                keep.append((stimulus, onset, since))
            else:
                self.count("unknown_stimuli")
                self.log.warning("simulate: no image for stimulus %r; no response", stimulus)
        self.waiting = keep

    def _make_output(
        self, name: str, stream_type: str, source_id: str
    ) -> CountsOutput | EventsOutput | BroadbandOutput:
        """The outlet of the stream's form (the first ``[[acquire.streams]]`` entry's kind)."""
        sim = self.config.simulate
        settings = stream_settings(self.config, 0)
        source_id = session_source_id(source_id or f"bci-sim-{name}", self.config)
        rng = np.random.default_rng([sim.seed, 4])
        if settings.kind == "events":
            return EventsOutput(
                name,
                stream_type,
                source_id,
                sim.n_units,
                self.spikes.bin_s,
                settings.channel_base,
                rng,
            )
        if settings.kind == "broadband":
            try:
                return BroadbandOutput(
                    name,
                    stream_type,
                    source_id,
                    self.units,
                    sim.broadband_hz,
                    self.spikes.bin_s,
                    sim.noise_uv,
                    sim.sample_format,
                    rng,
                )
            except ValueError as err:
                raise NodeError(f"simulate: {err} ([simulate] rate_hz)") from None
        return CountsOutput(name, stream_type, source_id, sim.n_units, sim.rate_hz)

    def quiet(self) -> None:
        """Close the marker inlet before the display's outlet goes (see :meth:`Node.quiet`)."""
        self.markers = None

    def teardown(self) -> None:
        output = getattr(self, "output", None)
        if output is not None:
            output.truth.write(self.out / "simulate", self.units, output.kind)
        self.output = None
        self.markers = None


NODE = SimulateUnitsNode
