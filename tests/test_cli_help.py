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
