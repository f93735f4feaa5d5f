"""Session configs: defaults, path resolution, and one-line errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from bci.session.config import load_config, validate_config
from bci.session.schema import ConfigError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "session.toml"
    path.write_text(text)
    return path


def test_defaults_and_relative_paths(tmp_path):
    config = load_config(write(tmp_path, '[stimuli]\npath = "../faces"\n'))
    assert config["stimuli"]["path"] == str((tmp_path.parent / "faces").resolve())
    assert config["timing"] == {
        "time_scale": 1.0,
        "tr_s": 2.0,
        "stimulus_s": 2.0,
        "isi_s": 2.0,
        "run_break_s": 30.0,
    }
    assert config["session"]["mode"] == "decode"
    assert config["source"].endswith("session.toml")


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
    assert config["timing"]["tr_s"] == 1.0 and isinstance(config["timing"]["tr_s"], float)


def test_shipped_configs_are_valid():
    for path in sorted(CONFIGS.glob("*.toml")):
        config = load_config(path)
        assert Path(config["stimuli"]["path"]).is_dir(), path
