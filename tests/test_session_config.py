"""Session configs: defaults, path resolution, and one-line errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from bci.config import ConfigError
from bci.session.config import load_config, validate_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "session.toml"
    path.write_text(text)
    return path


def test_defaults_and_relative_paths(tmp_path):
    config = load_config(write(tmp_path, '[stimuli]\npath = "../faces"\n'))
    assert config.stimuli.path == str((tmp_path.parent / "faces").resolve())
    assert config.timing.to_dict() == {
        "time_scale": 1.0,
        "tr_s": 2.0,
        "stimulus_s": 2.0,
        "isi_s": 2.0,
        "run_break_s": 30.0,
        "lead_in_s": 0.0,
    }
    assert config.session.mode == "decode"
    assert config.source.endswith("session.toml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[stimuli]\npath = "x"\n[timing]\ntr_s = -1\n', r"\[timing\] tr_s must be > 0, got -1.0"),
        ('[stimuli]\npath = "x"\n[timing]\ntr = 1\n', r"unknown key 'tr' in \[timing\] \(known: "),
        (
            '[stimuli]\npath = "x"\n[display]\nvsync = "yes"\n',
            r"\[display\] vsync must be true or false, got 'yes'",
        ),
        (
            '[stimuli]\npath = "x"\n[session]\nmode = "dream"\n',
            r"\[session\] mode must be one of 'decode', 'evolve', got 'dream'",
        ),
        ('[stimuli]\npath = "x"\n[scanner]\nx = 1\n', r"unknown table \[scanner\]"),
        ("[timing]\ntr_s = 1\n", r"\[stimuli\] needs key 'path'"),
        (
            '[stimuli]\npath = "x"\n[[acquire.streams]]\nname = "a"\n',
            r"\[\[acquire.streams\]\] #1 needs key 'subject'",
        ),
        (
            '[stimuli]\npath = "x"\n[[acquire.streams]]\nsubject = 0\n',
            r"\[\[acquire.streams\]\] #1 needs a name or a source_id",
        ),
        (
            '[stimuli]\npath = "x"\n[session]\nrestart = ["renderer"]\n',
            r"\[session\] restart names unknown node 'renderer'",
        ),
        (
            '[stimuli]\npath = "x"\n[model]\nalphas = [1, -2]\n',
            r"\[model\] alphas must be a non-empty list of numbers > 0",
        ),
        (
            '[stimuli]\npath = "x"\n[simulate]\nenabled = false\n',
            r"\[acquire\] streams is empty and \[simulate\] is disabled",
        ),
        ("[stimuli\npath = 1", r"not valid TOML"),
        (
            '[stimuli]\npath = "x"\n[evolve]\nunit = 3\n',
            r"\[evolve\] unit must be a site index below \[simulate\] n_units = 1, a list of "
            r"them, -1 \(the mean of all\) or \"best\" \(chosen by a probe block\), got 3",
        ),
        (
            '[stimuli]\npath = "x"\n[evolve]\nunit = "worst"\n',
            r"\[evolve\] unit must be a site index .*got 'worst'",
        ),
        (
            '[stimuli]\npath = "x"\n[simulate]\nn_units = 4\n[evolve]\nunit = [1, 4]\n',
            r"\[evolve\] unit must be a site index below \[simulate\] n_units = 4.*got \[1, 4\]",
        ),
        (
            '[stimuli]\npath = "x"\n[[acquire.streams]]\nname = "a"\nsubject = 0\n'
            'kind = "spikes"\n',
            r"\[\[acquire.streams\]\] #1 kind must be one of 'counts', 'events', 'broadband'",
        ),
        (
            '[stimuli]\npath = "x"\n[acquire]\nband_hz = [6000, 300]\n',
            r"\[acquire\] band_hz must be \[low, high\], 0 < low <= high",
        ),
        (
            '[stimuli]\npath = "x"\n[evolve]\noptimizer = "sgd"\n',
            r"\[evolve\] optimizer must be one of 'genetic', 'cmaes', 'random', got 'sgd'",
        ),
        (
            '[stimuli]\npath = "x"\n[generator]\nprecision = "half"\n',
            r"\[generator\] precision must be one of 'auto', 'fp32', 'bf16', 'fp16'",
        ),
    ],
)
def test_invalid_configs_name_the_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=r"session.toml: " + message) as info:
        load_config(path)
    assert "\n" not in str(info.value)


def test_missing_file():
    with pytest.raises(ConfigError, match="config file not found: nowhere.toml"):
        load_config("nowhere.toml")


def test_integers_are_accepted_as_numbers():
    config = validate_config({"stimuli": {"path": "x"}, "timing": {"tr_s": 1}})
    assert config.timing.tr_s == 1.0 and isinstance(config.timing.tr_s, float)


def test_shipped_configs_are_valid():
    for path in sorted(CONFIGS.glob("*.toml")):
        config = load_config(path)
        assert Path(config.stimuli.path).is_dir(), path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mode", "decode"], "give --config FILE (or --resume SESSION_DIR, --replay FILE)"),
        (["--mode", "decode", "--resume", "x"], "--resume continues evolve sessions only"),
        (
            ["--mode", "evolve", "--resume", "x", "--config", "y.toml"],
            "--resume takes the session's own config: drop --config/--replay",
        ),
        (["--mode", "evolve", "--resume", "nowhere"], "cannot resume nowhere: no readable"),
        (["--mode", "decode", "--replay", "absent.xdf"], "recording not found: absent.xdf"),
    ],
)
def test_session_arguments_get_one_line_errors(args, message, capsys):
    from bci.session.cli import main

    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"bci-session: {message}") and "\n" not in err


def test_replay_speed_must_not_be_negative(tmp_path, capsys):
    from bci.session.cli import main

    recording = tmp_path / "r.xdf"
    recording.write_bytes(b"XDF:")
    assert main(["--mode", "decode", "--replay", str(recording), "--speed", "-1"]) == 2
    assert "--speed must be >= 0 (0: as fast as possible), got -1.0" in capsys.readouterr().err


def test_replay_config_scales_time_and_names_the_source(tmp_path):
    from bci.session.config import load_config, with_replay

    config = load_config(CONFIGS / "demo-decode.toml")
    (tmp_path / "session.json").write_text("{}")
    replayed = with_replay(config, tmp_path / "recording.xdf", 3.0)
    assert replayed.timing.time_scale == 3.0 * config.timing.time_scale
    assert replayed.replay.to_dict() == {
        "path": str(tmp_path / "recording.xdf"),
        "speed": 3.0,
        "source_session": str(tmp_path),
    }
    assert with_replay(config, tmp_path / "r.xdf", 0.0).timing == config.timing
    assert config.replay is None  # the original is left alone


def test_config_to_toml_round_trips(tmp_path):
    from bci.session.config import config_to_toml

    raw = {
        "stimuli": {"path": "x", "n_test": 3},
        "acquire": {
            "delay_s": 0.5,
            "streams": [{"name": 'a "quoted" name', "subject": 0}, {"name": "b", "subject": 1}],
        },
        "model": {"alphas": [1.0, 10.0]},
        "display": {"vsync": False},
    }
    path = tmp_path / "c.toml"
    path.write_text(config_to_toml(raw))
    config = load_config(path)
    assert [s.name for s in config.acquire.streams] == ['a "quoted" name', "b"]
    assert config.acquire.delay_s == 0.5 and config.model.alphas == [1.0, 10.0]
    assert config.stimuli.n_test == 3 and config.display.vsync is False
    assert raw["acquire"]["streams"]  # the caller's dict is left alone


def test_preprocess_and_confound_keys(tmp_path):
    from bci.preprocess import PreprocessSettings
    from bci.sim.confounds import Confounds

    config = load_config(write(tmp_path, '[stimuli]\npath = "x"\n'))
    assert PreprocessSettings.from_config(config.preprocess) == PreprocessSettings()
    assert Confounds.from_config(config.simulate) == Confounds()  # off by default
    text = '[stimuli]\npath = "x"\n[preprocess]\nmethod = "none"\n[simulate]\ndrift = 4\n'
    config = load_config(write(tmp_path, text))
    assert PreprocessSettings.from_config(config.preprocess).method == "none"
    assert Confounds.from_config(config.simulate).drift == 4.0
    for bad, message in [
        ('[preprocess]\nscaling = "percent"\n', r"\[preprocess\] scaling must be one of 'zscore'"),
        ("[preprocess]\ncutoff_s = -1\n", r"\[preprocess\] cutoff_s must be >= 0, got -1.0"),
        ("[simulate]\nspike_rate = 2\n", r"\[simulate\] spike_rate must be in \[0, 1\], got 2.0"),
    ]:
        with pytest.raises(ConfigError, match=message):
            load_config(write(tmp_path, '[stimuli]\npath = "x"\n' + bad))


def test_the_readme_scanner_config_loads_and_plans_its_runs(tmp_path):
    """The README's real-scanner config is a valid config with the volumes it promises."""
    from bci.nodes.runs import plan_runs

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = text[text.index("A real-scanner session for one participant") :]
    start = block.index("```toml") + len("```toml")
    path = tmp_path / "configs" / "scanner.toml"
    path.parent.mkdir()
    path.write_text(block[start : block.index("```", start)])
    config = load_config(path)
    assert config.trigger.source == "lsl" and config.timing.time_scale == 1.0
    assert (config.stimuli.n_train, config.stimuli.n_test) == (120, 24)
    assert [(r.phase, r.n_trials, r.volumes) for r in plan_runs(config)] == [
        ("train", 60, 186),
        ("train", 60, 186),
        ("test", 24, 78),
    ]


def test_runs_are_checked(tmp_path):
    def load(extra: str) -> dict:
        path = tmp_path / "c.toml"
        path.write_text('[stimuli]\npath = "x"\n' + extra)
        return load_config(path)

    config = load('[[runs]]\nphase = "train"\ntrials = 5\n[[runs]]\nphase = "test"\ntrials = 3\n')
    assert (config.stimuli.n_train, config.stimuli.n_test) == (5, 3)
    with pytest.raises(ConfigError, match=r"calibration \(train\) runs must all come first"):
        load('[[runs]]\nphase = "test"\ntrials = 3\n[[runs]]\nphase = "train"\ntrials = 5\n')
    with pytest.raises(ConfigError, match="needs at least one test run"):
        load('[[runs]]\nphase = "train"\ntrials = 3\n')
    with pytest.raises(ConfigError, match=r"\[\[runs\]\] #1 phase must be one of"):
        load('[[runs]]\nphase = "rest"\ntrials = 3\n')
    with pytest.raises(ConfigError, match=r"\[stimuli\] n_test = 4 but the test \[\[runs\]\]"):
        path = tmp_path / "d.toml"
        path.write_text('[stimuli]\npath = "x"\nn_test = 4\n[[runs]]\nphase = "test"\ntrials = 3\n')
        load_config(path)
    with pytest.raises(ConfigError, match=r"\[trigger\] source must be one of"):
        load('[trigger]\nsource = "button"\n')


@pytest.mark.parametrize("duration", ["inf", "nan", "-1", "1e9"])
def test_duration_must_be_finite_and_bounded(duration, capsys):
    from bci.session.cli import main

    assert (
        main(
            [
                "--mode",
                "decode",
                "--config",
                str(CONFIGS / "demo-decode.toml"),
                "--duration",
                duration,
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err == f"bci-session: --duration must be >= 0 and <= 86400, got {float(duration)}"


def test_the_command_refuses_configs_that_broke_sessions(tmp_path):
    """Issue 12, each through the real command: ``time_scale = 1e9`` and ``population_size =
    10**7`` were accepted (the node then missed its heartbeats), ``run_break_s = inf`` hung the
    calibration, and ``--mode evolve`` with the decode config ran 150 s on fMRI timings and
    exited 0. Each now exits 2 with one line, before it starts a node."""
    import subprocess
    import sys

    stimuli = f'[stimuli]\npath = "{CONFIGS.parent / "stimuli" / "demo-faces"}"\n'
    tables = {
        "scale": "[timing]\ntime_scale = 1e9\n",
        "population": '[session]\nmode = "evolve"\n[evolve]\npopulation_size = 10000000\n',
        "break": "[timing]\nrun_break_s = inf\n",
    }
    for name, table in tables.items():
        (tmp_path / f"{name}.toml").write_text(stimuli + table)
    decode = CONFIGS / "demo-decode.toml"
    cases = {
        "scale": (
            "decode",
            tmp_path / "scale.toml",
            "[timing] time_scale must be <= 100, got 1000000000.0",
        ),
        "population": (
            "evolve",
            tmp_path / "population.toml",
            "[evolve] population_size must be <= 1000, got 10000000",
        ),
        "break": (
            "decode",
            tmp_path / "break.toml",
            "[timing] run_break_s must be a finite number, got inf",
        ),
        "mode": ("evolve", decode, "--mode evolve but"),
    }
    procs = {
        name: subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bci.session.cli",
                "--mode",
                mode,
                "--config",
                str(path),
                "--out",
                str(tmp_path / name),
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, (mode, path, _) in cases.items()
    }  # all at once: they only read their config
    for name, proc in procs.items():
        _, err = proc.communicate(timeout=60)
        mode, path, message = cases[name]
        assert proc.returncode == 2, err
        if name == "mode":
            assert err == (
                f"bci-session: --mode evolve but {decode} is a decode config ([session] mode = "
                "'decode'): run --mode decode, or set [session] mode = 'evolve' in the config\n"
            )
        else:
            assert err == f"bci-session: {path}: {message}\n"
        assert not (tmp_path / name).exists()
