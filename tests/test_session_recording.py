"""A recording that fails is an error of the session, never silent (real LabRecorder, real LSL)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from harness import NodeProcess
from session_helpers import node_processes, read_summary, start_session, write_config

from bci.session.config import validate_config

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


def _labrecorder_pid(out: Path, timeout_s: float = 60.0) -> int:
    """LabRecorder's pid once the display has begun its schedule."""
    deadline = time.monotonic() + timeout_s
    display_log = out / "logs" / "display.log"
    while time.monotonic() < deadline:
        if display_log.exists() and "schedule begins" in display_log.read_text():
            for pid in node_processes(str(out)):
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
                if b"LabRecorderCLI" in cmd:
                    return pid
        time.sleep(0.1)
    raise AssertionError("LabRecorder never ran")


def test_a_labrecorder_killed_mid_session_fails_the_session(tmp_path):
    out = tmp_path / "session"
    proc = start_session(write_config(tmp_path / "s.toml"), out)
    try:
        os.kill(_labrecorder_pid(out), signal.SIGKILL)
        _, output = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 1, output[-2000:]
    summary = read_summary(out)
    assert summary["exit_code"] == 1
    assert summary["errors"][0] == (
        "node 'record' died (exit code 1): record: LabRecorder exited with code -9 during the "
        "session; recording.xdf ends there"
    )
    assert node_processes(str(out)) == []


def _record_config(out: Path, optional: bool) -> dict:
    return validate_config(
        {
            "stimuli": {"path": str(REPO / "stimuli" / "demo-faces")},
            "acquire": {
                "resolve_timeout_s": 0.5,  # not LabRecorder's: its start has start_timeout_s
                "marker_stream": f"nobody-{out.name}",
                "streams": [{"name": f"nobody-{out.name}", "subject": 0}],
            },
            "simulate": {"enabled": False},
            "record": {"optional": optional, "start_timeout_s": 0.05},  # it needs about 1 s
        }
    )


@pytest.mark.parametrize("optional", [False, True])
def test_a_labrecorder_that_cannot_start_is_an_error_unless_optional(tmp_path, optional):
    node = NodeProcess("record", _record_config(tmp_path, optional), tmp_path, topics=[])
    try:
        if optional:
            assert node.wait_state("ready", 60.0), node.log()
        else:
            node.proc.wait(60)
    finally:
        code = node.stop()
    if optional:
        assert code == 0, node.log()
        assert "record: no XDF recording ([record] optional = true): LabRecorder did not" in (
            node.log()
        )
    else:
        assert code == 1, node.log()
        assert (
            "ERROR bci.nodes.runner: record: no XDF recording: LabRecorder did not start recording "
            "within 0.05 s ([record] optional = true goes on without)"
        ) in node.log()
