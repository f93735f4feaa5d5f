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
        (
            "bci.bridge.cli",
            "bci-scanner-bridge: push the volumes a scanner exports to a folder to an LSL stream.",
        ),
        ("bci.nodes.join", "bci-node NAME --join tcp://HOST:PORT --keys DIR: run one node of a"),
        ("bci.session.keys_cli", "bci-keys DIR MACHINE...: make the CURVE keys of a session"),
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


def _start(module: str, argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", PROBE.format(module=module, argv=argv)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_every_console_script_logs_info_with_v(tmp_path) -> None:
    """One set-up (bci.logs) for every entry point: quiet by default, -v INFO, -vv DEBUG.

    Each command gets arguments it refuses after reading its flags, so nothing starts; the
    probe's log lines then show the level and the format the command set up.
    """
    (tmp_path / "garbage.nii").write_bytes(b"\x01" * 500)
    bridge = ["--watch", str(tmp_path), "--mask", str(tmp_path / "garbage.nii"), "--name", "x"]
    session = ["--mode", "decode", "--config", str(tmp_path / "none.toml")]
    commands = {
        ("bci.session.cli", "-v"): [*session, "-v"],
        ("bci.train", "-v"): [str(tmp_path / "none.npz"), "--out", str(tmp_path / "m.npz"), "-v"],
        ("bci.bridge.cli", "-v"): [*bridge, "-v"],
        ("bci.replay.__main__", "-v"): [str(tmp_path / "none.xdf"), "-v"],
        ("bci.session.cli", ""): session,
        ("bci.session.cli", "-vv"): [*session, "-vv"],
    }
    procs = {key: _start(key[0], argv) for key, argv in commands.items()}  # at once: faster
    done = {key: proc.communicate(timeout=120) for key, proc in procs.items()}
    for (module, flag), (out, err) in done.items():
        assert out.strip() in ("1", "2"), (module, err)
        lines = err.splitlines()
        info = any(line.endswith(" INFO bci.probe: info line") for line in lines)
        debug = any(line.endswith(" DEBUG bci.probe: debug line") for line in lines)
        assert (info, debug) == {"": (False, False), "-v": (True, False), "-vv": (True, True)}[
            flag
        ], (module, flag, err)
    assert "bci-session: config file not found" in done["bci.session.cli", ""][1]
