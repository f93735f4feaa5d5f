"""``--help`` of the command-line tools reads as plain text (no RST markup) and shows examples."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    ("module", "first_line"),
    [
        ("bci.session.cli", "bci-session: run a closed-loop session from a TOML config."),
        ("bci.train", "bci-train: fit the decoding model (alignment + ridge) and write the file"),
    ],
)
def test_help_is_plain_text_with_examples(module: str, first_line: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "``" not in done.stdout
    assert first_line in done.stdout
    assert "examples:\n    bci-" in done.stdout


PROBE = """
import logging, sys
from {module} import main
code = main({argv!r})
logging.getLogger("bci.probe").info("info line")
logging.getLogger("bci.probe").debug("debug line")
print(code)
"""


def _run(module: str, argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module, argv=argv)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_console_script_logs_info_with_v(tmp_path) -> None:
    """One set-up (bci.logs) for every entry point: quiet by default, -v INFO, -vv DEBUG.

    Each command gets arguments it refuses after reading its flags, so nothing starts; the
    probe's log lines then show the level and the format the command set up.
    """
    (tmp_path / "garbage.nii").write_bytes(b"\x01" * 500)
    bridge = ["--watch", str(tmp_path), "--mask", str(tmp_path / "garbage.nii"), "--name", "x"]
    commands = {
        "bci.session.cli": ["--mode", "decode", "--config", str(tmp_path / "none.toml")],
        "bci.train": [str(tmp_path / "none.npz"), "--out", str(tmp_path / "m.npz")],
        "bci.bridge.cli": bridge,
        "bci.replay.__main__": [str(tmp_path / "none.xdf")],
    }
    for module, argv in commands.items():
        done = _run(module, [*argv, "-v"])
        assert done.stdout.strip() in ("1", "2"), (module, done.stderr)
        lines = done.stderr.splitlines()
        assert any(line.endswith(" INFO bci.probe: info line") for line in lines), module
        assert not any("debug line" in line for line in lines), module
    quiet = _run("bci.session.cli", commands["bci.session.cli"]).stderr
    assert "info line" not in quiet and "bci-session: config file not found" in quiet
    loud = _run("bci.session.cli", [*commands["bci.session.cli"], "-vv"]).stderr
    assert any(line.endswith(" DEBUG bci.probe: debug line") for line in loud.splitlines())
