"""The tables of a session config: one typed class per TOML table, one line per key.

Each line gives a key's type, its default (the one place it is set) and its bounds
(:mod:`bci.config.schema`). The upper bounds keep a config from breaking the session's timing or
memory (a 2 s stimulus at ``time_scale`` 100 already lasts 20 ms, about one frame at 60 Hz; a
million-image population would stall every node); nan and inf are refused. A config reads as
attributes (``config.timing.tr_s``) and, read-only, as nested dicts (``config["timing"]["tr_s"]``).
:meth:`SessionConfig.from_dict` also checks across tables, and reads back what
:meth:`~bci.config.schema.Table.to_dict` wrote (the session file, the bus). Reading a config file,
resuming and replaying are :mod:`bci.session.config`'s.

To add a key, add its line to its table: ``name: float = Key(default, positive, at_most(10.0))``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bci.config.schema import (
    REQUIRED,
    ConfigError,
    Key,
    Table,
    at_most,
    non_negative,
    one_of,
    positive,
    table,
)
from bci.config.schema import build as build_table

MODES = ("decode", "evolve")
NODES = ("simulate", "acquire", "decode", "evolve", "render", "display", "record")
OPTIMIZERS = ("genetic", "cmaes", "random")
TRIGGER_SOURCES = ("none", "lsl", "key")
PHASES = ("train", "test")
MAX_SEED = 2**32 - 1


def _fraction(v: Any) -> str | None:
    return None if 0 <= v <= 1 else f"must be in [0, 1], got {v!r}"


def _below_one(v: Any) -> str | None:
    return None if v < 1 else f"must be < 1 (an AR(1) coefficient), got {v!r}"


def _pair(v: list) -> str | None:
    ok = len(v) == 2 and 0 < v[0] <= v[1]
    return None if ok else "must be [low, high], 0 < low <= high"


def _alphas(v: list) -> str | None:
    ok = bool(v) and all(a > 0 for a in v)
    return None if ok else "must be a non-empty list of numbers > 0"


@table
class Session(Table):
    mode: str = Key("decode", one_of(*MODES))
    seed: int = Key(0, non_negative, at_most(MAX_SEED))
    duration_s: float = Key(0.0, non_negative, at_most(86400.0))  # a day
    heartbeat_s: float = Key(0.25, positive, at_most(5.0))
    heartbeat_timeout_s: float = Key(5.0, positive, at_most(600.0))
    ready_timeout_s: float = Key(60.0, positive, at_most(3600.0))
    restart: list[str] = Key([])
    max_restarts: int = Key(2, non_negative, at_most(100))


@table
class Bus(Table):
    host: str = Key("127.0.0.1")
    # a session with nodes on other machines: the join door's port (the relays use the next
    # ones, see bci.session.remote) and the CURVE keys folder made by bci-keys
    port: int = Key(47100, positive, at_most(65000))
    keys: str = Key("")


@table
class NodeHost(Table):
    """``[nodes.NAME]``: the node runs on that machine and joins with ``bci-node``."""

    host: str = Key(REQUIRED)


@table
class Generator(Table):
    spec: str = Key("default")
    device: str = Key("auto")
    precision: str = Key("auto", one_of("auto", "fp32", "bf16", "fp16"))
    batch_size: int = Key(16, positive, at_most(1024))
    cpu_threads: int = Key(1, non_negative, at_most(256))


@table
class Stimuli(Table):
    path: str = Key(REQUIRED)
    n_train: int = Key(120, non_negative, at_most(10000))
    n_test: int = Key(24, positive, at_most(10000))


@table
class Timing(Table):
    time_scale: float = Key(1.0, positive, at_most(100.0))
    tr_s: float = Key(2.0, positive, at_most(60.0))
    stimulus_s: float = Key(2.0, positive, at_most(60.0))
    isi_s: float = Key(2.0, non_negative, at_most(600.0))
    run_break_s: float = Key(30.0, non_negative, at_most(3600.0))
    # scanner seconds from a run's first trigger to its first stimulus (dummy scans)
    lead_in_s: float = Key(0.0, non_negative, at_most(600.0))


@table
class Trigger(Table):
    # what starts each run: an LSL marker stream (scanner bridge, trigger-box app), the key
    # a trigger box types, or nothing (free-running)
    source: str = Key("none", one_of(*TRIGGER_SOURCES))
    stream: str = Key("bci-triggers")
    key: str = Key("5")
    timeout_s: float = Key(600.0, positive, at_most(86400.0))


@table
class Stream(Table):
    """One ``[[acquire.streams]]`` table: a participant's LSL stream."""

    name: str = Key("")
    type: str = Key("fMRI")
    source_id: str = Key("")
    subject: int = Key(REQUIRED, non_negative, at_most(1023))
    kind: str = Key("counts", one_of("counts", "events", "broadband"))
    channels: int = Key(0, non_negative, at_most(1_000_000))
    channel_base: int = Key(0, non_negative, at_most(1_000_000))


@table
class Acquire(Table):
    marker_stream: str = Key("bci-markers")
    # The display's markers are type "Markers"; a replayed foreign recording may differ.
    marker_type: str = Key("Markers")
    delay_s: float = Key(4.0, non_negative, at_most(60.0))
    window_s: float = Key(4.0, positive, at_most(60.0))
    baseline_s: float = Key(0.0, non_negative, at_most(60.0))
    resolve_timeout_s: float = Key(10.0, positive, at_most(600.0))
    streams: list[Stream] = Key([])
    # rig streams (kind = "events" / "broadband"): see bci.nodes.spike_input
    display_delay_s: float = Key(0.0, non_negative, at_most(10.0))
    bin_hz: float = Key(1000.0, positive, at_most(100_000.0))
    band_hz: list[float] = Key([300.0, 6000.0], _pair)
    filter_order: int = Key(2, positive, at_most(10))
    threshold_k: float = Key(4.5, positive, at_most(100.0))
    dead_time_s: float = Key(0.001, non_negative, at_most(1.0))
    events_lag_s: float = Key(0.1, non_negative, at_most(10.0))


@table
class Model(Table):
    path: str = Key("")
    aligner: str = Key("hyperalignment", one_of("hyperalignment", "srm", "none"))
    alphas: list[float] = Key([1.0, 10.0, 100.0, 1000.0, 10000.0, 100000.0], _alphas)
    n_components: int = Key(0, non_negative, at_most(10000))


@table
class Simulate(Table):
    enabled: bool = Key(True)
    n_voxels: int = Key(1024, positive, at_most(100_000))
    snr: float = Key(1.0, positive, at_most(1000.0))
    ar_rho: float = Key(0.3, non_negative, _below_one)
    seed: int = Key(1, non_negative, at_most(MAX_SEED))
    # evolve mode: in-silico units streaming binned spike counts
    n_units: int = Key(1, positive, at_most(1024))
    rate_hz: float = Key(1000.0, positive, at_most(10_000.0))
    baseline_hz: float = Key(5.0, non_negative, at_most(1000.0))
    peak_hz: float = Key(100.0, positive, at_most(1000.0))
    latency_s: float = Key(0.05, non_negative, at_most(1.0))
    # the in-silico array (bci.sim.array): how diverse its units are, what broadband looks like
    diverse: bool = Key(False)
    broadband_hz: float = Key(30000.0, positive, at_most(100_000.0))
    noise_uv: float = Key(10.0, positive, at_most(10_000.0))
    amplitude_uv: list[float] = Key([50.0, 150.0], _pair)
    sample_format: str = Key("float32", one_of("float32", "int16"))
    # scanner confounds (bci.sim.confounds.Confounds), 0 = off: baseline and drift in evoked
    # standard deviations, run_change and spike_size as fractions of the baseline
    baseline: float = Key(0.0, non_negative, at_most(1000.0))
    drift: float = Key(0.0, non_negative, at_most(1000.0))
    run_change: float = Key(0.0, non_negative, at_most(100.0))
    spike_rate: float = Key(0.0, _fraction)
    spike_size: float = Key(0.0, non_negative, at_most(100.0))
    motion_mm: float = Key(0.0, non_negative, at_most(10.0))
    motion_effect: float = Key(0.0, non_negative, at_most(1000.0))


@table
class Evolve(Table):
    optimizer: str = Key("genetic", one_of(*OPTIMIZERS))
    preset: str = Key("xdream", one_of("xdream", "ponce"))
    population_size: int = Key(0, non_negative, at_most(1000))  # 0: the optimiser's default
    sigma0: float = Key(0.3, positive, at_most(10.0))
    generations: int = Key(20, positive, at_most(10000))
    n_reference: int = Key(2, non_negative, at_most(100))
    unit: int | list[int] | str = Key(0)
    probe_images: int = Key(8, positive, at_most(1000))
    probe_repeats: int = Key(3, positive, at_most(100))
    response_timeout_s: float = Key(2.0, positive, at_most(60.0))
    seed: int = Key(0, non_negative, at_most(MAX_SEED))


@table
class Record(Table):
    xdf: bool = Key(True)
    optional: bool = Key(False)
    # how long LabRecorder may take to start collecting every stream (a process start and its
    # own stream resolution: seconds on a loaded machine, whatever [acquire] resolve_timeout_s)
    start_timeout_s: float = Key(15.0, positive, at_most(3600.0))


@table
class Display(Table):
    width: int = Key(960, positive, at_most(16384))
    height: int = Key(480, positive, at_most(16384))
    fullscreen: bool = Key(False)
    vsync: bool = Key(True)
    fps: float = Key(60.0, positive, at_most(1000.0))


@table
class Preprocess(Table):
    """Online preprocessing of every volume (bci.preprocess.PreprocessSettings: each key)."""

    method: str = Key("glm", one_of("glm", "none"))
    cutoff_s: float = Key(256.0, non_negative, at_most(100_000.0))
    highpass: str = Key("ema", one_of("ema", "none"))
    global_signal: bool = Key(False)
    horizon_s: float = Key(0.0, non_negative, at_most(100_000.0))
    motion_regressors: bool = Key(True)
    ridge: float = Key(1000.0, non_negative, at_most(1e12))
    scaling: str = Key("zscore", one_of("zscore", "psc", "none"))
    fd_threshold_mm: float = Key(0.5, non_negative, at_most(100.0))
    intensity_z: float = Key(5.0, non_negative, at_most(1000.0))


@table
class Run(Table):
    """One ``[[runs]]`` table: a scanner run of calibration (train) or test trials."""

    phase: str = Key(REQUIRED, one_of(*PHASES))
    trials: int = Key(REQUIRED, positive, at_most(10000))
    # 0: just enough volumes for the run's last response window
    volumes: int = Key(0, non_negative, at_most(100_000))


@table
class Replay(Table):
    """Set by ``--replay`` (:func:`with_replay`), never by a config file."""

    path: str = Key(REQUIRED)
    speed: float = Key(1.0, non_negative)
    source_session: str = Key("")


@table
class SessionConfig(Table):
    """A whole validated session config (:func:`load_config`)."""

    session: Session
    bus: Bus
    generator: Generator
    stimuli: Stimuli
    timing: Timing
    trigger: Trigger
    acquire: Acquire
    model: Model
    simulate: Simulate
    evolve: Evolve
    record: Record
    display: Display
    preprocess: Preprocess
    runs: list[Run] = Key([])
    nodes: dict[str, NodeHost] = Key({})
    replay: Replay | None = Key(None, internal=True)
    source: str = Key("<config>", internal=True)
    # the supervisor's id for the session, in the source_id of every LSL stream it creates
    session_id: str = Key("", internal=True)

    @classmethod
    def from_dict(
        cls, data: Any, where: str = "", source: str = "<config>", base: Path = Path()
    ) -> SessionConfig:
        """A validated config from plain data: a parsed TOML file, or :meth:`to_dict`'s output.

        ``source`` names the data in messages (the file); ``config.source`` keeps the one the
        data holds (the session's TOML file), else ``source``. ``base`` is the folder relative
        paths start from. ``where`` is unused: a config is the outermost table.

        ``to_dict`` and ``from_dict`` are the one round trip of a config through the session
        file, the bus (msgpack) and the command line.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: a config must be a table, got {type(data).__name__}")
        return _validated(data, source, base)


FILE_TABLES = tuple(
    f.name for f in dataclasses.fields(SessionConfig) if not f.metadata.get("internal")
)
"""What a config file may hold: the tables and ``[[runs]]`` (not what the session adds)."""


def _check_runs(runs: list[Run], stimuli: Mapping, source: str) -> dict[str, int]:
    """Check the order of the ``[[runs]]`` tables; return the ``[stimuli]`` counts they set."""
    phases = [r.phase for r in runs]
    if "test" not in phases:
        raise ConfigError(f"{source}: [[runs]] needs at least one test run")
    if "train" in phases[phases.index("test") :]:
        raise ConfigError(f"{source}: [[runs]] calibration (train) runs must all come first")
    counts = {}
    for key, phase in (("n_train", "train"), ("n_test", "test")):
        total = sum(r.trials for r in runs if r.phase == phase)
        if key in stimuli and stimuli[key] != total:
            raise ConfigError(
                f"{source}: [stimuli] {key} = {stimuli[key]} but the {phase} [[runs]] have "
                f"{total} trials (leave {key} out: the runs set it)"
            )
        counts[key] = total
    return counts


def _validated(raw: Mapping, source: str, base: Path) -> SessionConfig:
    """Type every table of ``raw`` (:mod:`bci.config.schema`), then check across tables."""
    data = dict(raw)
    runs = data.get("runs")
    if runs is not None and not isinstance(runs, list):
        raise ConfigError(f"{source}: runs must be [[runs]] tables, got {type(runs).__name__}")
    config: SessionConfig = build_table(
        SessionConfig, {**data, "source": str(data.get("source", source))}, "", source
    )
    acquire, stimuli, model = config.acquire, config.stimuli, config.model
    streams = []
    given = (raw.get("acquire") or {}).get("streams") or []
    for i, (stream, given_stream) in enumerate(zip(acquire.streams, given, strict=True), 1):
        if stream.kind != "counts" and "type" not in given_stream:
            # a rig stream is found by name or source_id, whatever its type
            stream = dataclasses.replace(stream, type="")
        if not (stream.name or stream.source_id):
            raise ConfigError(f"{source}: [[acquire.streams]] #{i} needs a name or a source_id")
        streams.append(stream)
    for name in config.nodes:
        if name not in NODES:
            raise ConfigError(
                f"{source}: [nodes.{name}] names unknown node {name!r} (nodes: {', '.join(NODES)})"
            )
    for name in config.session.restart:
        if name not in NODES:
            raise ConfigError(
                f"{source}: [session] restart names unknown node {name!r} "
                f"(nodes: {', '.join(NODES)})"
            )
    if not config.simulate.enabled and not streams:
        raise ConfigError(
            f"{source}: [acquire] streams is empty and [simulate] is disabled: "
            "no participant data would arrive"
        )
    session = config.session
    if session.heartbeat_timeout_s <= session.heartbeat_s:
        raise ConfigError(
            f"{source}: [session] heartbeat_timeout_s = {session.heartbeat_timeout_s:g} must "
            f"exceed heartbeat_s = {session.heartbeat_s:g}"
        )
    counts = _check_runs(config.runs, raw.get("stimuli") or {}, source) if config.runs else {}
    check_unit(config, source)
    stimuli = dataclasses.replace(stimuli, path=str((base / stimuli.path).resolve()), **counts)
    if model.path:
        model = dataclasses.replace(model, path=str((base / model.path).resolve()))
    bus = config.bus
    if bus.keys:
        bus = dataclasses.replace(bus, keys=str((base / bus.keys).resolve()))
    return dataclasses.replace(
        config,
        bus=bus,
        acquire=dataclasses.replace(acquire, streams=streams),
        stimuli=stimuli,
        model=model,
    )


def check_unit(config: SessionConfig, source: str) -> None:
    """Check ``[evolve] unit``: a site, a list of sites, -1 or "best"."""
    unit, n_units = config.evolve.unit, config.simulate.n_units
    limit = n_units if config.simulate.enabled else None
    sites = unit if isinstance(unit, list) else [unit]
    ok = unit == "best" or (
        bool(sites)
        and all(isinstance(u, int) and not isinstance(u, bool) for u in sites)
        and (unit == -1 or all(0 <= u < (limit or u + 1) for u in sites))
    )
    if not ok:
        below = f" below [simulate] n_units = {n_units}" if limit else ""
        raise ConfigError(
            f"{source}: [evolve] unit must be a site index{below}, a list of them, -1 (the "
            f'mean of all) or "best" (chosen by a probe block), got {unit!r}'
        )
