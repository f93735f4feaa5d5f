"""The simulate node: virtual participants in a virtual scanner, answering the display's markers.

Loop: pull the display's stimulus markers (LSL) -> add each stimulus's response pattern to a
:class:`~bci.sim.bold.BoldStream` -> push every volume whose acquisition time has passed on one
LSL outlet per participant, stamped with that time. It is a real LSL source: acquire cannot tell
it from a scanner bridge.

It behaves as a scanner does. Volumes are acquired only during runs: a run starts on the
display's ``run_request`` event (the operator pressing start), at the next volume of the scanner's
clock, and lasts the ``volumes`` the request names; between runs nothing is sent. Every volume
comes with a trigger on the LSL marker stream ``[trigger] stream`` (a ``trigger`` marker with
``run`` and ``volume``), stamped with the volume's acquisition time, as a scanner's trigger
output through a trigger-box app would be.

Clocks. The scanner clock starts at :meth:`SimulateNode.start`: ``t_scan = (t_lsl - t0) *
time_scale``, volume ``v`` is acquired at ``t_scan = v * tr_s`` and stamped ``t0 + v * tr_s /
time_scale`` on the LSL clock.

Signal and noise. A stimulus's pattern for subject ``i`` is ``cohort.trial_responses`` of its
latent: ``s + e`` with per-voxel SNR ``var(s) / var(e) = [simulate] snr``. Acquire averages the
volumes in ``[onset + delay_s, onset + delay_s + window_s)``; that mean is what the SNR must
describe. So the noise variance ``var(e)`` is split between the trial pattern (share
``1 - SCANNER_NOISE_SHARE``: trial-to-trial variability of the brain) and the scanner's AR(1) noise
(share ``SCANNER_NOISE_SHARE``, ``ar_rho`` from the config), whose per-volume std is chosen so
that its *window mean* has exactly that share of the variance. The pattern is divided by the mean
HRF weight ``w`` of the window's volumes (averaged over onset phases), so the window mean of a
lone trial is ``s + noise`` with the cohort's scale and SNR: a decoder fitted on
``cohort.trial_responses`` applies to these responses as they are; the neighbouring trials' HRF
tails overlap the window as they would in a scanner.

Confounds. The ``[simulate]`` keys ``baseline``, ``drift``, ``run_change``, ``spike_rate``,
``spike_size``, ``motion_mm`` and ``motion_effect`` (:class:`bci.sim.confounds.Confounds`, in
units of each voxel's evoked standard deviation or fractions of the baseline; all 0, the clean
scanner, by default) add a real scanner's baseline, slow drift, run-to-run baseline change,
intensity spikes and residual head motion. Each run the display asks for begins a new run of the
BOLD stream (:meth:`bci.sim.bold.BoldStream.start_run`: new baseline factors and drift). The
confounds draw from their own random stream, so a session with confounds has the same noise as
the confound-free session of the same seed.
"""

from __future__ import annotations

import math

import numpy as np
from pylsl import IRREGULAR_RATE, local_clock

from bci.bus import Message
from bci.bus.topics import EVENTS
from bci.config import SessionConfig
from bci.lsl.markers import MARKER_STREAM_TYPE, decode_marker, encode_marker
from bci.lsl.streams import (
    MARKER_PROCESSING,
    SIM_PREFIX,
    StreamQuery,
    make_outlet,
    marker_query,
    open_inlet,
    participant_queries,
    pull_markers,
    resolve,
    session_source_id,
)
from bci.nodes.base import Node, NodeError
from bci.sim import BoldStream, SimulatedCohort, event_response
from bci.sim.confounds import Confounds
from bci.stimulus_set import load_stimulus_set

SCANNER_NOISE_SHARE = 0.5
"""Share of the per-trial noise variance that is scanner (AR(1)) noise rather than trial noise."""
N_PHASES = 64
"""Onset phases within a TR averaged over to compute the window's mean HRF weight."""


def simulated_streams(config: SessionConfig) -> list[StreamQuery]:
    """The streams the simulator serves: the configured ones, or ``bci-sim-01``, ``-02``.

    A configured stream without a name is named ``bci-sim-NN``; without a source_id it gets
    ``bci-sim-<name>``; either way with the session id (``@<id>``, see
    :data:`bci.lsl.streams.SESSION_ID_KEY`).
    """
    out = []
    for i, query in enumerate(participant_queries(config)):
        name = query.name or f"{SIM_PREFIX}{i + 1:02d}"
        source_id = session_source_id(query.source_id or f"{SIM_PREFIX}{name}", config)
        out.append(StreamQuery(name, query.type or "fMRI", source_id, query.subject))
    return out


def window_weight(
    tr_s: float, stimulus_s: float, delay_s: float, window_s: float
) -> tuple[float, float]:
    """Mean HRF weight and mean number of the volumes in a trial's window.

    Averaged over the onset's phase within a TR (onsets are not locked to volumes).

    Parameters
    ----------
    tr_s, stimulus_s, delay_s, window_s : float
        Scanner seconds, as in the config.

    Returns
    -------
    weight : float
        Mean of :func:`bci.sim.hrf.event_response` over the window's volumes (1.0 if a window
        can hold no volume, i.e. ``window_s`` is much shorter than a TR).
    n_volumes : float
        Mean number of volumes in the window.
    """
    weights, counts = [], []
    for phase in np.arange(N_PHASES) * tr_s / N_PHASES:
        first = math.ceil((phase + delay_s) / tr_s - 1e-9)
        last = math.ceil((phase + delay_s + window_s) / tr_s - 1e-9)
        taus = np.arange(first, last) * tr_s - phase
        counts.append(taus.size)
        if taus.size:
            weights.append(float(np.mean(event_response(taus, stimulus_s))))
    return (float(np.mean(weights)) if weights else 1.0), float(np.mean(counts))


def ar1_mean_variance(n: int, rho: float) -> float:
    """Variance of the mean of ``n`` consecutive unit-variance AR(1) samples."""
    n = max(int(n), 1)
    lags = np.arange(1, n)
    return float((n + 2.0 * np.sum((n - lags) * rho**lags)) / n**2)


class VirtualScanner:
    """A simulated cohort in a scanner: stimulus latents in, BOLD volumes out (no LSL, no clock).

    Times are scanner seconds from the first volume (volume ``v`` at ``v * tr_s``). See the module
    docstring for how signal and noise are scaled.

    Parameters
    ----------
    n_subjects, n_voxels, latent_dim : int
        The cohort (:class:`~bci.sim.cohort.SimulatedCohort`).
    snr : float
        Per-voxel SNR of a trial response (the window mean acquire cuts).
    ar_rho : float
        AR(1) coefficient of the scanner noise.
    seed : int
        Seeds the cohort (``random_state=seed``) and, separately, the scanner noise.
    tr_s, stimulus_s, delay_s, window_s : float
        Timing in scanner seconds (``[timing]`` and ``[acquire]`` of the config).
    confounds : Confounds or None
        The scanner's confounds (None: none).
    """

    def __init__(
        self,
        n_subjects: int,
        n_voxels: int,
        latent_dim: int,
        *,
        snr: float,
        ar_rho: float,
        seed: int,
        tr_s: float,
        stimulus_s: float,
        delay_s: float,
        window_s: float,
        confounds: Confounds | None = None,
    ) -> None:
        self.cohort = SimulatedCohort(
            n_subjects=n_subjects,
            n_voxels=n_voxels,
            latent_dim=latent_dim,
            snr=snr,
            random_state=seed,
        )
        self.weight, self.n_window = window_weight(tr_s, stimulus_s, delay_s, window_s)
        window_var = ar1_mean_variance(round(self.n_window), ar_rho)
        scanner_var = [SCANNER_NOISE_SHARE * v / window_var for v in self.cohort.noise_var]
        self.bold = BoldStream(
            self.cohort.n_voxels,
            tr_s,
            duration_s=stimulus_s,
            noise_std=[np.sqrt(v) for v in scanner_var],
            ar_rho=ar_rho,
            seed=np.random.default_rng([int(seed), 1]),
            **(confounds or Confounds()).bold_kwargs(
                [self.cohort.evoked_std(i) for i in range(n_subjects)]
            ),
        )
        #: Runs begun (the first run is the stream's own start).
        self.n_runs = 0

    @classmethod
    def from_config(cls, config: SessionConfig, n_subjects: int, latent_dim: int) -> VirtualScanner:
        """The scanner a session config describes."""
        sim, timing, acq = config.simulate, config.timing, config.acquire
        return cls(
            n_subjects,
            int(sim.n_voxels),
            latent_dim,
            snr=sim.snr,
            ar_rho=sim.ar_rho,
            seed=sim.seed,
            tr_s=timing.tr_s,
            stimulus_s=timing.stimulus_s,
            delay_s=acq.delay_s,
            window_s=acq.window_s,
            confounds=Confounds.from_config(sim),
        )

    def start_run(self) -> None:
        """The scanner starts a run at its next volume (the BOLD stream's confounds start anew)."""
        if self.n_runs:
            self.bold.start_run()
        self.n_runs += 1

    def add_stimulus(self, onset_s: float, latent: np.ndarray) -> None:
        """Present a stimulus: every subject's response (fresh trial noise) enters the volumes."""
        z = np.asarray(latent, dtype=np.float64).reshape(1, -1)
        clean = self.cohort.signal(z)
        noisy = self.cohort.trial_responses(z)
        keep = math.sqrt(1.0 - SCANNER_NOISE_SHARE)
        patterns = [
            (c[0] + keep * (x[0] - c[0])) / self.weight for c, x in zip(clean, noisy, strict=True)
        ]
        self.bold.add_event(onset_s, patterns)

    def volumes_until(self, t_s: float) -> tuple[np.ndarray, list[np.ndarray]]:
        """The volumes acquired by ``t_s`` not returned yet.

        Returns
        -------
        times : np.ndarray
            ``(n,)`` their acquisition times, scanner seconds.
        volumes : list of np.ndarray
            ``(n, n_voxels)`` float32 per subject.
        """
        volumes = self.bold.volumes_until(t_s)
        n = int(volumes[0].shape[0])
        index = np.arange(self.bold.n_emitted - n, self.bold.n_emitted)
        return np.asarray(self.bold.volume_time(index), dtype=np.float64), volumes


class SimulateNode(Node):
    """Stream a simulated cohort's BOLD responses to the display's stimuli over LSL."""

    name = "simulate"
    topics = (EVENTS,)
    poll_ms = 10.0

    def setup(self) -> None:
        sim, timing = self.config.simulate, self.config.timing
        if not sim.enabled:
            raise NodeError("simulate: [simulate] enabled is false, there is nothing to simulate")
        self.time_scale = float(timing.time_scale)
        try:
            self.stimuli = load_stimulus_set(self.config.stimuli.path)
        except (OSError, ValueError) as err:
            raise NodeError(f"simulate: {err}") from None
        self.streams = simulated_streams(self.config)
        n_voxels = int(sim.n_voxels)
        try:
            self.scanner = VirtualScanner.from_config(
                self.config, len(self.streams), self.stimuli.latent_dim
            )
        except ValueError as err:
            raise NodeError(f"simulate: bad [simulate] settings: {err}") from None
        rate = self.time_scale / timing.tr_s
        labels = [f"voxel-{v:05d}" for v in range(n_voxels)]
        self.outlets = []
        for s in self.streams:
            desc = {
                "manufacturer": "bci simulator",
                "subject": s.subject,
                "tr_s": timing.tr_s,
                "time_scale": self.time_scale,
            }
            self.outlets.append(
                make_outlet(s.name, s.type, n_voxels, rate, s.source_id, labels=labels, desc=desc)
            )
        self.trigger_outlet = make_outlet(
            self.config.trigger.stream,
            MARKER_STREAM_TYPE,
            1,
            IRREGULAR_RATE,
            session_source_id(f"{SIM_PREFIX}triggers", self.config),
            channel_format="string",
        )
        self.runs: list[tuple[int, int]] = []  # requested (run, volumes), not started yet
        self.run: tuple[int, int, int] | None = None  # (run, first volume index, volumes)
        self.markers = open_inlet(
            resolve(marker_query(self.config), self.config.acquire.resolve_timeout_s),
            processing=MARKER_PROCESSING,
        )
        self.t0 = math.nan
        self.unknown: set[str] = set()
        names = ", ".join(s.name for s in self.streams)
        self.log.info(
            "%d subjects x %d voxels on %s; TR %.3g s (%.3g s wall); per-voxel SNR "
            "%.3g for the mean of %.3g volumes (HRF weight %.3f)",
            len(self.streams),
            n_voxels,
            names,
            timing.tr_s,
            timing.tr_s / self.time_scale,
            sim.snr,
            self.scanner.n_window,
            self.scanner.weight,
        )

    def start(self) -> None:
        super().start()
        self.t0 = local_clock()

    def handle(self, msg: Message) -> None:
        """The display asks for a run: start it at the scanner's next volume."""
        if msg.kind == "run_request":
            try:
                self.runs.append((int(msg.meta["run"]), int(msg.meta["volumes"])))
            except (KeyError, TypeError, ValueError):
                self.count("bad_messages")

    def tick(self) -> None:
        if not self.started:
            return
        for text, t in pull_markers(self.markers):
            self._on_marker(text, t)
        self._emit(local_clock())
        if self.run is None and self.runs:
            run, volumes = self.runs.pop(0)
            self.scanner.start_run()
            self.run = (run, self.scanner.bold.n_emitted, volumes)
            self.log.info("run %d: %d volumes from volume %d", run, volumes, self.run[1])

    def _on_marker(self, text: str, t_lsl: float) -> None:
        """Receive: one marker; a stimulus adds its response patterns to the BOLD stream."""
        try:
            marker = decode_marker(text)
        except ValueError as err:
            self.count("foreign_markers")
            self.log.debug("%s", err)
            return
        if marker["event"] != "stimulus":
            return
        stimulus = str(marker.get("stimulus"))
        try:
            latent = self.stimuli.latents[self.stimuli.index_of(stimulus)]
        except KeyError:
            self.count("unknown_stimuli")
            if stimulus not in self.unknown:
                self.unknown.add(stimulus)
                self.log.warning("marker names unknown stimulus %r; ignored", stimulus)
            return
        self.scanner.add_stimulus((t_lsl - self.t0) * self.time_scale, latent)
        self.count("stimuli")

    def _emit(self, now: float) -> None:
        """Publish: the run's volumes acquired by ``now``, stamped with their acquisition time.

        Volumes outside a run are computed (the BOLD response goes on) but not acquired.
        """
        times, volumes = self.scanner.volumes_until((now - self.t0) * self.time_scale)
        if not times.size or self.run is None:
            return
        run, first, n = self.run
        index = np.arange(self.scanner.bold.n_emitted - times.size, self.scanner.bold.n_emitted)
        keep = (index >= first) & (index < first + n)
        if keep.any():
            stamps = (self.t0 + times[keep] / self.time_scale).tolist()
            # A scanner's trigger pulse starts a volume's acquisition; the reconstructed volume
            # comes after it.
            for v, t in zip(index[keep], stamps, strict=True):
                marker = encode_marker("trigger", run=run, volume=int(v - first))
                self.trigger_outlet.push_sample([marker], t)
            for outlet, block in zip(self.outlets, volumes, strict=True):
                outlet.push_chunk(block[keep], timestamp=stamps)
            self.count("volumes", int(keep.sum()))
            self.count("triggers", int(keep.sum()))
        if index[-1] >= first + n - 1:
            self.log.info("run %d done: %d volumes", run, n)
            self.run = None

    def quiet(self) -> None:
        """Close the marker inlet before the display's outlet goes (see :meth:`Node.quiet`)."""
        self.markers = None

    def teardown(self) -> None:
        self.outlets = []  # liblsl withdraws a stream when its outlet is destroyed
        self.trigger_outlet = None
        self.markers = None


NODE = SimulateNode
