"""How the in-silico array leaves the simulator: the three forms a rig's amplifier app sends.

Each output takes the simulator's spike counts per 1 ms bin and pushes them on its own LSL outlet,
and keeps the ground truth (every spike's time and unit) for ``simulate/ground_truth.npz``:

:class:`CountsOutput` (``kind = "counts"``)
    The bins as they are: float32, one channel per unit, nominal rate ``[simulate] rate_hz``.
:class:`EventsOutput` (``kind = "events"``)
    One irregular int32 sample ``[channel, unit]`` per spike (channel from the stream's
    ``channel_base``, sorted unit 1), stamped at the spike, as a spike-sorting app sends them.
:class:`BroadbandOutput` (``kind = "broadband"``)
    Raw voltage at ``[simulate] broadband_hz`` (:class:`~bci.sim.array.BroadbandSynth`): float32
    microvolts, or int16 at :data:`INT16_UV` microvolts per bit (``sample_format``). A spike's
    time is its trough. Samples lag the bins by the waveform's lead (0.4 ms), so every waveform
    is complete when pushed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pylsl

from bci.lsl.streams import make_outlet
from bci.sim.array import ArrayUnits, BroadbandSynth, spikes_in_bins

INT16_UV = 0.25
"""Microvolts per bit of the int16 broadband form (as a Blackrock front end)."""


class _GroundTruth:
    def __init__(self) -> None:
        self.times: list[np.ndarray] = []
        self.units: list[np.ndarray] = []

    def add(self, times: np.ndarray, units: np.ndarray) -> None:
        if len(times):
            self.times.append(np.asarray(times, np.float64))
            self.units.append(np.asarray(units, np.int64))

    def write(self, folder: Path, units: ArrayUnits, kind: str) -> None:
        """``ground_truth.npz`` (spike ``times`` on the LSL clock, ``units``) and ``units.json``."""
        folder.mkdir(parents=True, exist_ok=True)
        times = np.concatenate(self.times) if self.times else np.empty(0)
        which = np.concatenate(self.units) if self.units else np.empty(0, np.int64)
        np.savez(folder / "ground_truth.npz", times=times, units=which)
        (folder / "units.json").write_text(json.dumps({"kind": kind, **units.to_json()}, indent=1))


class CountsOutput:
    """Spike counts per bin on one float32 channel per unit."""

    kind = "counts"

    def __init__(self, name: str, stream_type: str, source_id: str, n_units: int, rate_hz: float):
        self.outlet = make_outlet(
            name,
            stream_type,
            n_units,
            rate_hz,
            source_id,
            labels=[f"unit-{u:02d}" for u in range(n_units)],
            desc={"manufacturer": "bci simulator", "unit": "spikes per bin"},
        )
        self.truth = _GroundTruth()

    def push(self, bin_times: np.ndarray, counts: np.ndarray) -> int:
        """Push the bins; returns the samples pushed."""
        if not bin_times.size:
            return 0
        self.outlet.push_chunk(counts, timestamp=bin_times.tolist())
        rows, units = np.nonzero(counts)
        reps = counts[rows, units].astype(np.int64)
        self.truth.add(np.repeat(bin_times[rows], reps), np.repeat(units, reps))
        return int(bin_times.size)


class EventsOutput:
    """One ``[channel, unit]`` int32 sample per spike, stamped at the spike."""

    kind = "events"

    def __init__(
        self,
        name: str,
        stream_type: str,
        source_id: str,
        n_units: int,
        bin_s: float,
        channel_base: int,
        seed: np.random.Generator,
    ):
        self.outlet = make_outlet(
            name,
            stream_type,
            2,
            pylsl.IRREGULAR_RATE,
            source_id,
            labels=["channel", "unit"],
            desc={"manufacturer": "bci simulator", "channel_base": channel_base},
            channel_format="int32",
        )
        self.bin_s, self.base, self.rng = bin_s, int(channel_base), seed
        self.last_spike = np.full(n_units, -np.inf)
        self.truth = _GroundTruth()

    def push(self, bin_times: np.ndarray, counts: np.ndarray) -> int:
        times, units = spikes_in_bins(bin_times, counts, self.bin_s, self.rng, self.last_spike)
        if times.size:
            samples = np.stack([units + self.base, np.ones_like(units)], axis=1).astype(np.int32)
            self.outlet.push_chunk(samples, timestamp=times.tolist())
            self.truth.add(times, units)
        return int(times.size)


class BroadbandOutput:
    """Raw voltage with every spike's waveform, one channel per unit."""

    kind = "broadband"

    def __init__(
        self,
        name: str,
        stream_type: str,
        source_id: str,
        units: ArrayUnits,
        rate_hz: float,
        bin_s: float,
        noise_uv: float,
        sample_format: str,
        seed: np.random.Generator,
    ):
        n_units = units.amplitude_uv.size
        per_bin = rate_hz * bin_s
        if abs(per_bin - round(per_bin)) > 1e-6:
            raise ValueError(f"broadband_hz {rate_hz:g} is not a multiple of the bin rate")
        self.per_bin = int(round(per_bin))
        self.rate_hz, self.bin_s, self.rng = float(rate_hz), bin_s, seed
        self.int16 = sample_format == "int16"
        self.synth = BroadbandSynth(units.amplitude_uv, rate_hz, noise_uv, seed=seed)
        scale = INT16_UV if self.int16 else 1.0
        self.outlet = make_outlet(
            name,
            stream_type,
            n_units,
            rate_hz,
            source_id,
            labels=[f"ch-{u:02d}" for u in range(n_units)],
            desc={"manufacturer": "bci simulator", "unit": "microvolts", "scale_uv": scale},
            channel_format="int16" if self.int16 else "float32",
        )
        self.t0: float | None = None
        self.n_bins = 0
        self.last_spike = np.full(n_units, -np.inf)
        self.truth = _GroundTruth()

    def push(self, bin_times: np.ndarray, counts: np.ndarray) -> int:
        if not bin_times.size:
            return 0
        if self.t0 is None:
            self.t0 = float(bin_times[0])
        times, units = spikes_in_bins(bin_times, counts, self.bin_s, self.rng, self.last_spike)
        samples = np.round((times - self.t0) * self.rate_hz).astype(np.int64)
        self.synth.add_spikes(samples, units)
        self.truth.add(self.t0 + samples / self.rate_hz, units)
        self.n_bins += int(bin_times.size)
        n = self.n_bins * self.per_bin - self.synth.trough - self.synth.emitted
        if n <= 0:
            return 0
        last = self.t0 + (self.synth.emitted + n - 1) / self.rate_hz
        x = self.synth.emit(n)
        if self.int16:
            x = np.clip(np.round(x / INT16_UV), -32768, 32767).astype(np.int16)
        self.outlet.push_chunk(x, timestamp=last)
        return n
