"""The typed config: bounds at the door, the dict round trip, mapping access, tables of tables."""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path

import msgpack
import pytest

from bci.config import ConfigError, SessionConfig, tables
from bci.config.schema import REQUIRED, Key, Table, at_most, build, positive, table
from bci.session.config import (
    config_to_toml,
    load_config,
    resumed_config,
    validate_config,
    with_replay,
)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def load(tmp_path: Path, text: str) -> SessionConfig:
    path = tmp_path / "session.toml"
    path.write_text('[stimuli]\npath = "x"\n' + text)
    return load_config(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # issue 12: each was accepted, and the node then missed its heartbeats
        ("[timing]\ntime_scale = 1e9\n", r"\[timing\] time_scale must be <= 100, got 1000000000.0"),
        (
            "[evolve]\npopulation_size = 10000000\n",
            r"\[evolve\] population_size must be <= 1000, got 10000000",
        ),
        # issue 12: run_break_s = inf hung the calibration for ever
        (
            "[timing]\nrun_break_s = inf\n",
            r"\[timing\] run_break_s must be a finite number, got inf",
        ),
        ("[timing]\ntr_s = nan\n", r"\[timing\] tr_s must be a finite number, got nan"),
        ("[acquire]\ndelay_s = -inf\n", r"\[acquire\] delay_s must be a finite number, got -inf"),
        (
            "[model]\nalphas = [1.0, inf]\n",
            r"\[model\] alphas must hold finite numbers, got \[1.0, inf\]",
        ),
        ("[generator]\nbatch_size = 100000\n", r"\[generator\] batch_size must be <= 1024"),
        ("[simulate]\nn_voxels = 10000000\n", r"\[simulate\] n_voxels must be <= 100000"),
        ("[simulate]\nar_rho = 1.0\n", r"\[simulate\] ar_rho must be < 1 \(an AR\(1\) coeff"),
        ("[display]\nfps = 1e6\n", r"\[display\] fps must be <= 1000, got 1000000.0"),
        (
            "[session]\nheartbeat_s = 2\nheartbeat_timeout_s = 1\n",
            r"\[session\] heartbeat_timeout_s = 1 must exceed heartbeat_s = 2",
        ),
        (
            '[[acquire.streams]]\nname = "a"\nsubject = 0\nchannels = 10000000\n',
            r"\[\[acquire.streams\]\] #1 channels must be <= 1000000, got 10000000",
        ),
        (
            '[[runs]]\nphase = "test"\ntrials = 1000000\n',
            r"\[\[runs\]\] #1 trials must be <= 10000, got 1000000",
        ),
        ("[session]\nseed = -1\n", r"\[session\] seed must be >= 0, got -1"),
    ],
)
def test_values_that_break_timing_or_memory_are_refused(tmp_path, text, message):
    with pytest.raises(ConfigError, match=r"session.toml: " + message) as info:
        load(tmp_path, text)
    assert "\n" not in str(info.value)


def test_every_numeric_key_has_an_upper_bound():
    """Each number a config gives has a documented maximum (the replay's speed is bounded by
    the time scale it multiplies, see the last test)."""
    unbounded = []
    for cls in vars(tables).values():
        if not (isinstance(cls, type) and issubclass(cls, Table)) or cls is Table:
            continue
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            kind = hints[f.name]
            if kind not in (int, float) or (cls, f.name) == (tables.Replay, "speed"):
                continue
            huge = kind(10**15)
            if not any(check(huge) for check in f.metadata["checks"]):
                unbounded.append(f"{cls.__name__}.{f.name}")
    assert unbounded == []


def test_the_dict_round_trip_is_exact_through_json_and_msgpack(tmp_path):
    """Nodes read the config from the session file (JSON) and, across machines, the bus."""
    for path in sorted(CONFIGS.glob("*.toml")):
        config = load_config(path)
        (tmp_path / "session.json").write_text("{}")
        for c in (config, with_replay(config, tmp_path / "r.xdf", 2.0)):
            plain = c.to_dict()
            assert SessionConfig.from_dict(json.loads(json.dumps(plain))) == c
            packed = msgpack.unpackb(msgpack.packb(plain), raw=False)
            again = SessionConfig.from_dict(packed)
            assert again == c and again.to_dict() == plain
            assert again.source == str(path)


def test_the_config_reads_as_attributes_and_as_read_only_dicts():
    config = load_config(CONFIGS / "rig-evolve.toml")
    assert config.timing.stimulus_s == config["timing"]["stimulus_s"] == 0.1
    assert config["acquire"]["streams"][0]["kind"] == config.acquire.streams[0].kind
    assert config["acquire"].get("bin_hz", 0.0) == 1000.0
    assert config["acquire"].get("no_such_key", "x") == "x"
    assert dict(config["display"]) == config.display.to_dict()
    assert "replay" not in config and config.get("replay") is None and config.replay is None
    with pytest.raises(ConfigError, match=r"unknown table \[replay\]"):  # the session's own
        validate_config({"stimuli": {"path": "x"}, "replay": {"path": "r.xdf"}})
    with pytest.raises(KeyError):
        config["replay"]
    with pytest.raises(TypeError):
        config["timing"]["tr_s"] = 1.0  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.timing.tr_s = 1.0  # type: ignore[misc]


@table
class Host(Table):
    host: str = Key(REQUIRED)
    threads: int = Key(1, positive, at_most(64))


@table
class Machines(Table):
    nodes: dict[str, Host] = Key({})
    hosts: list[Host] = Key([])


def test_tables_of_tables_are_typed():
    """``[nodes.NAME]`` and ``[[name.key]]`` tables are checked like any table."""
    got = build(
        Machines,
        {"nodes": {"render": {"host": "gpu-1", "threads": 8}}, "hosts": [{"host": "a"}]},
        "[machines]",
        "m.toml",
    )
    assert got.nodes["render"].host == "gpu-1" and got.nodes["render"].threads == 8
    assert got.hosts[0].threads == 1
    assert got.to_dict() == {
        "nodes": {"render": {"host": "gpu-1", "threads": 8}},
        "hosts": [{"host": "a", "threads": 1}],
    }
    for data, message in [
        ({"nodes": {"render": {"hots": "x"}}}, r"m.toml: unknown key 'hots' in \[machines.nodes.r"),
        ({"nodes": {"render": {}}}, r"m.toml: \[machines.nodes.render\] needs key 'host'"),
        (
            {"nodes": {"render": {"host": "x", "threads": 99}}},
            r"m.toml: \[machines.nodes.render\] threads must be <= 64, got 99",
        ),
        ({"hosts": [{"host": "a"}, {}]}, r"m.toml: \[\[machines.hosts\]\] #2 needs key 'host'"),
        ({"nodes": 3}, r"m.toml: \[machines\] nodes must be a table, got 3"),
    ]:
        with pytest.raises(ConfigError, match=message):
            build(Machines, data, "[machines]", "m.toml")


def test_a_resumed_config_is_validated(tmp_path):
    config = load_config(CONFIGS / "demo-evolve.toml").to_dict()
    config["timing"]["isi_s"] = float("inf")
    (tmp_path / "session.json").write_text(json.dumps({"config": config}))
    with pytest.raises(ConfigError, match=r"session.json: \[timing\] isi_s must be a finite"):
        resumed_config(tmp_path)
    config["timing"]["isi_s"] = 0.1
    config["evolve"]["colour"] = "red"
    (tmp_path / "session.json").write_text(json.dumps({"config": config}))
    with pytest.raises(ConfigError, match=r"session.json: unknown key 'colour' in \[evolve\]"):
        resumed_config(tmp_path)


def test_written_toml_has_no_nan_or_null(tmp_path):
    raw = {"stimuli": {"path": "x", "n_test": 3}, "model": {"path": None}, "timing": {"tr_s": 1}}
    text = config_to_toml(raw)
    assert "null" not in text and "None" not in text and "path" in text
    assert load_config(_write(tmp_path, text)).model.path == ""
    with pytest.raises(ConfigError, match=r"timing.run_break_s = inf: TOML configs hold finite"):
        config_to_toml({"stimuli": {"path": "x"}, "timing": {"run_break_s": float("inf")}})
    config = load_config(CONFIGS / "demo-decode.toml")
    again = load_config(_write(tmp_path, config_to_toml(config)))
    assert dataclasses.replace(again, source=config.source) == config


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "written.toml"
    path.write_text(text)
    return path


def test_a_replay_speed_may_not_take_time_scale_past_its_bound(tmp_path):
    config = load_config(CONFIGS / "demo-decode.toml")  # time_scale 20
    assert with_replay(config, tmp_path / "r.xdf", 5.0).timing.time_scale == 100.0
    with pytest.raises(ConfigError, match=r"--speed 6: .*\[timing\] time_scale must be <= 100"):
        with_replay(config, tmp_path / "r.xdf", 6.0)
