"""Session configs: read a TOML file, check every key, fill defaults, resolve paths.

Paths in a config are relative to the config file's folder, so a config works from any working
directory. Every problem is reported as one line naming the file, the table and the key.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bci.session.schema import ConfigError, Key, non_negative, one_of, positive, validate_table

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MODES = ("decode", "evolve")
NODES = ("simulate", "acquire", "decode", "evolve", "render", "display", "record")
OPTIMIZERS = ("genetic", "cmaes", "random")
TRIGGER_SOURCES = ("none", "lsl", "key")
PHASES = ("train", "test")


def _fraction(v: Any) -> str | None:
    return None if 0 <= v <= 1 else f"must be in [0, 1], got {v!r}"


SCHEMA: dict[str, dict[str, Key]] = {
    "session": {
        "mode": Key(str, "decode", one_of(*MODES)),
        "seed": Key(int, 0),
        "duration_s": Key(float, 0.0, non_negative),
        "heartbeat_s": Key(float, 0.25, positive),
        "heartbeat_timeout_s": Key(float, 5.0, positive),
        "ready_timeout_s": Key(float, 60.0, positive),
        "restart": Key(list, []),
        "max_restarts": Key(int, 2, non_negative),
    },
    "bus": {
        "host": Key(str, "127.0.0.1"),
        # a session with nodes on other machines: the join door's port (the relays use the next
        # ones, see bci.session.remote) and the CURVE keys folder made by bci-keys
        "port": Key(int, 47100, positive),
        "keys": Key(str, ""),
    },
    "generator": {
        "spec": Key(str, "default"),
        "device": Key(str, "auto"),
        "precision": Key(str, "auto", one_of("auto", "fp32", "bf16", "fp16")),
        "batch_size": Key(int, 16, positive),
        "cpu_threads": Key(int, 1, non_negative),
    },
    "stimuli": {
        "path": Key(str, required=True),
        "n_train": Key(int, 120, non_negative),
        "n_test": Key(int, 24, positive),
    },
    "timing": {
        "time_scale": Key(float, 1.0, positive),
        "tr_s": Key(float, 2.0, positive),
        "stimulus_s": Key(float, 2.0, positive),
        "isi_s": Key(float, 2.0, non_negative),
        "run_break_s": Key(float, 30.0, non_negative),
        # scanner seconds from a run's first trigger to its first stimulus (dummy scans)
        "lead_in_s": Key(float, 0.0, non_negative),
    },
    "trigger": {
        # what starts each run: an LSL marker stream (scanner bridge, trigger-box app), the key
        # a trigger box types, or nothing (free-running)
        "source": Key(str, "none", one_of(*TRIGGER_SOURCES)),
        "stream": Key(str, "bci-triggers"),
        "key": Key(str, "5"),
        "timeout_s": Key(float, 600.0, positive),
    },
    "acquire": {
        "marker_stream": Key(str, "bci-markers"),
        # The display's markers are type "Markers"; a replayed foreign recording may differ.
        "marker_type": Key(str, "Markers"),
        "delay_s": Key(float, 4.0, non_negative),
        "window_s": Key(float, 4.0, positive),
        "baseline_s": Key(float, 0.0, non_negative),
        "resolve_timeout_s": Key(float, 10.0, positive),
        "streams": Key(list, []),
        # rig streams (kind = "events" / "broadband"): see bci.nodes.spike_input
        "display_delay_s": Key(float, 0.0, non_negative),
        "bin_hz": Key(float, 1000.0, positive),
        "band_hz": Key(list, [300.0, 6000.0]),
        "filter_order": Key(int, 2, positive),
        "threshold_k": Key(float, 4.5, positive),
        "dead_time_s": Key(float, 0.001, non_negative),
        "events_lag_s": Key(float, 0.1, non_negative),
    },
    "model": {
        "path": Key(str, ""),
        "aligner": Key(str, "hyperalignment", one_of("hyperalignment", "srm", "none")),
        "alphas": Key(list, [1.0, 10.0, 100.0, 1000.0, 10000.0, 100000.0]),
        "n_components": Key(int, 0, non_negative),
    },
    "simulate": {
        "enabled": Key(bool, True),
        "n_voxels": Key(int, 1024, positive),
        "snr": Key(float, 1.0, positive),
        "ar_rho": Key(float, 0.3, non_negative),
        "seed": Key(int, 1),
        # evolve mode: in-silico units streaming binned spike counts
        "n_units": Key(int, 1, positive),
        "rate_hz": Key(float, 1000.0, positive),
        "baseline_hz": Key(float, 5.0, non_negative),
        "peak_hz": Key(float, 100.0, positive),
        "latency_s": Key(float, 0.05, non_negative),
        # the in-silico array (bci.sim.array): how diverse its units are, what broadband looks like
        "diverse": Key(bool, False),
        "broadband_hz": Key(float, 30000.0, positive),
        "noise_uv": Key(float, 10.0, positive),
        "amplitude_uv": Key(list, [50.0, 150.0]),
        "sample_format": Key(str, "float32", one_of("float32", "int16")),
        # scanner confounds (bci.sim.confounds.Confounds), 0 = off: baseline and drift in evoked
        # standard deviations, run_change and spike_size as fractions of the baseline
        "baseline": Key(float, 0.0, non_negative),
        "drift": Key(float, 0.0, non_negative),
        "run_change": Key(float, 0.0, non_negative),
        "spike_rate": Key(float, 0.0, _fraction),
        "spike_size": Key(float, 0.0, non_negative),
        "motion_mm": Key(float, 0.0, non_negative),
        "motion_effect": Key(float, 0.0, non_negative),
    },
    "evolve": {
        "optimizer": Key(str, "genetic", one_of(*OPTIMIZERS)),
        "preset": Key(str, "xdream", one_of("xdream", "ponce")),
        "population_size": Key(int, 0, non_negative),
        "sigma0": Key(float, 0.3, positive),
        "generations": Key(int, 20, positive),
        "n_reference": Key(int, 2, non_negative),
        "unit": Key((int, list, str), 0),
        "probe_images": Key(int, 8, positive),
        "probe_repeats": Key(int, 3, positive),
        "response_timeout_s": Key(float, 2.0, positive),
        "seed": Key(int, 0),
    },
    "record": {
        "xdf": Key(bool, True),
        "optional": Key(bool, False),
    },
    "display": {
        "width": Key(int, 960, positive),
        "height": Key(int, 480, positive),
        "fullscreen": Key(bool, False),
        "vsync": Key(bool, True),
        "fps": Key(float, 60.0, positive),
    },
    # online preprocessing of every volume (bci.preprocess.PreprocessSettings documents each key)
    "preprocess": {
        "method": Key(str, "glm", one_of("glm", "none")),
        "cutoff_s": Key(float, 128.0, non_negative),
        "horizon_s": Key(float, 0.0, non_negative),
        "motion_regressors": Key(bool, True),
        "ridge": Key(float, 100.0, non_negative),
        "scaling": Key(str, "zscore", one_of("zscore", "psc", "none")),
        "fd_threshold_mm": Key(float, 0.5, non_negative),
        "intensity_z": Key(float, 5.0, non_negative),
    },
}

STREAM_KEYS: dict[str, Key] = {
    "name": Key(str, ""),
    "type": Key(str, "fMRI"),
    "source_id": Key(str, ""),
    "subject": Key(int, required=True, check=non_negative),
    "kind": Key(str, "counts", one_of("counts", "events", "broadband")),
    "channels": Key(int, 0, non_negative),
    "channel_base": Key(int, 0, non_negative),
}


NODE_KEYS: dict[str, Key] = {
    # [nodes.NAME] host: the node runs on that machine and joins with bci-node
    "host": Key(str, required=True),
}


RUN_KEYS: dict[str, Key] = {
    "phase": Key(str, required=True, check=one_of(*PHASES)),
    "trials": Key(int, required=True, check=positive),
    # 0: just enough volumes for the run's last response window
    "volumes": Key(int, 0, non_negative),
}


def _validate_runs(
    raw: Any, config: dict[str, Any], source: str, raw_stimuli: Any = None
) -> list[dict[str, Any]]:
    """The ``[[runs]]`` tables, checked; they set ``[stimuli] n_train`` and ``n_test``."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ConfigError(f"{source}: runs must be [[runs]] tables, got {type(raw).__name__}")
    runs = [validate_table(f"[[runs]] #{i}", r, RUN_KEYS, source) for i, r in enumerate(raw, 1)]
    phases = [r["phase"] for r in runs]
    if "test" not in phases:
        raise ConfigError(f"{source}: [[runs]] needs at least one test run")
    if "train" in phases[phases.index("test") :]:
        raise ConfigError(f"{source}: [[runs]] calibration (train) runs must all come first")
    given = raw_stimuli or {}
    for key, phase in (("n_train", "train"), ("n_test", "test")):
        total = sum(r["trials"] for r in runs if r["phase"] == phase)
        if key in given and given[key] != total:
            raise ConfigError(
                f"{source}: [stimuli] {key} = {given[key]} but the {phase} [[runs]] have "
                f"{total} trials (leave {key} out: the runs set it)"
            )
        config["stimuli"][key] = total
    return runs


def _validate_nodes(raw: Any, source: str) -> dict[str, dict[str, Any]]:
    """The ``[nodes.NAME]`` tables (nodes that run on another machine), checked."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: nodes must be [nodes.NAME] tables")
    nodes = {}
    for name, table in raw.items():
        if name not in NODES:
            raise ConfigError(
                f"{source}: [nodes.{name}] names unknown node {name!r} (nodes: {', '.join(NODES)})"
            )
        nodes[name] = validate_table(f"[nodes.{name}]", table, NODE_KEYS, source)
    return nodes


def load_config(path: str | Path) -> dict[str, Any]:
    """Read and validate a session config.

    Parameters
    ----------
    path : str | Path
        A TOML file.

    Returns
    -------
    dict
        One dict per table with every key present; ``config["source"]`` is the file path.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML ({err})") from None
    return validate_config(raw, source=str(path), base=path.parent)


def validate_config(raw: dict[str, Any], source: str = "<config>", base: Path = Path()) -> dict:
    """Validate an already-parsed config dict (see :func:`load_config`)."""
    unknown = sorted(set(raw) - set(SCHEMA) - {"runs", "nodes"})
    if unknown:
        raise ConfigError(
            f"{source}: unknown table [{unknown[0]}] (known: {', '.join(sorted(SCHEMA))})"
        )
    config: dict[str, Any] = {
        name: validate_table(f"[{name}]", raw.get(name), keys, source)
        for name, keys in SCHEMA.items()
    }
    config["runs"] = _validate_runs(raw.get("runs"), config, source, raw.get("stimuli"))
    config["nodes"] = _validate_nodes(raw.get("nodes"), source)
    streams = []
    for i, stream in enumerate(config["acquire"]["streams"], start=1):
        s = validate_table(f"[[acquire.streams]] #{i}", stream, STREAM_KEYS, source)
        if s["kind"] != "counts" and "type" not in stream:
            s["type"] = ""  # a rig stream is found by name or source_id, whatever its type
        if not (s["name"] or s["source_id"]):
            raise ConfigError(f"{source}: [[acquire.streams]] #{i} needs a name or a source_id")
        streams.append(s)
    config["acquire"]["streams"] = streams
    for name in config["session"]["restart"]:
        if name not in NODES:
            raise ConfigError(
                f"{source}: [session] restart names unknown node {name!r} "
                f"(nodes: {', '.join(NODES)})"
            )
    alphas = config["model"]["alphas"]
    if not alphas or not all(isinstance(a, int | float) and a > 0 for a in alphas):
        raise ConfigError(f"{source}: [model] alphas must be a non-empty list of numbers > 0")
    if not config["simulate"]["enabled"] and not streams:
        raise ConfigError(
            f"{source}: [acquire] streams is empty and [simulate] is disabled: "
            "no participant data would arrive"
        )
    check_unit_and_rig(config, source)
    stimuli = (base / config["stimuli"]["path"]).resolve()
    config["stimuli"]["path"] = str(stimuli)
    if config["bus"]["keys"]:
        config["bus"]["keys"] = str((base / config["bus"]["keys"]).resolve())
    if config["model"]["path"]:
        config["model"]["path"] = str((base / config["model"]["path"]).resolve())
    config["source"] = source
    return config


def check_unit_and_rig(config: dict[str, Any], source: str) -> None:
    """Check ``[evolve] unit`` (site, list of sites, -1 or "best"), the band, the amplitudes."""
    unit, n_units = config["evolve"]["unit"], config["simulate"]["n_units"]
    limit = n_units if config["simulate"]["enabled"] else None
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
    for table, key in (("acquire", "band_hz"), ("simulate", "amplitude_uv")):
        pair = config[table][key]
        if not (
            len(pair) == 2
            and all(isinstance(f, int | float) and not isinstance(f, bool) for f in pair)
            and 0 < pair[0] <= pair[1]
        ):
            raise ConfigError(f"{source}: [{table}] {key} must be [low, high], 0 < low <= high")


def resumed_config(folder: str | Path) -> dict[str, Any]:
    """The validated config of the session in ``folder`` (from its ``session.json``).

    Raises
    ------
    ConfigError
        The folder holds no readable session file.
    """
    path = Path(folder) / "session.json"
    try:
        config = json.loads(path.read_text())["config"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"cannot resume {folder}: no readable session.json ({err})") from None
    return config


def with_replay(config: dict[str, Any], recording: Path, speed: float) -> dict[str, Any]:
    """``config`` set up to replay ``recording`` at ``speed`` instead of running live.

    The recording's streams stand in for the live sources (the supervisor starts the replay node
    instead of the simulator and the display). At ``speed`` X the replayed time stamps run X
    times faster, so the session's time scale is multiplied by X; at speed 0 (as fast as
    possible) the stamps keep the recorded spacing and the time scale is unchanged.
    """
    config = json.loads(json.dumps(config))  # a deep copy of plain data
    folder = recording.parent
    config["replay"] = {
        "path": str(recording),
        "speed": float(speed),
        "source_session": str(folder) if (folder / "session.json").is_file() else "",
    }
    if speed > 0:
        config["timing"]["time_scale"] = config["timing"]["time_scale"] * speed
    return config


def config_to_toml(raw: dict[str, Any]) -> str:
    """Write a config dict (as :func:`load_config` reads it, before validation) as TOML.

    Tables hold scalars and lists; ``[acquire] streams`` becomes ``[[acquire.streams]]`` tables
    and a top-level list of tables (``runs``) becomes ``[[runs]]`` tables.
    Scripts and tests that build sessions use it; :func:`load_config` reads the result back.
    """
    lines = []
    for name, table in raw.items():
        if isinstance(table, list):  # [[runs]]
            for item in table:
                lines.append(f"[[{name}]]")
                lines += [f"{key} = {json.dumps(value)}" for key, value in item.items()]
            continue
        table = dict(table)
        streams = table.pop("streams", None)
        subtables = {k: table.pop(k) for k in list(table) if isinstance(table[k], dict)}
        lines.append(f"[{name}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in table.items()]
        for key, sub in subtables.items():  # [nodes.NAME]
            lines.append(f"[{name}.{key}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in sub.items()]
        for stream in streams or []:
            lines.append(f"[[{name}.streams]]")
            lines += [f"{key} = {json.dumps(value)}" for key, value in stream.items()]
    return "\n".join(lines) + "\n"
