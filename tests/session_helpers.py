"""Running real ``bci-session`` processes in tests, and checking that none outlives its test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bci.session.config import config_to_toml

REPO = Path(__file__).resolve().parents[1]


def node_processes(marker: str) -> list[int]:
    """PIDs of live processes whose command line mentions ``marker`` (e.g. a session folder)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().split(") ", 1)[1][0]
        except OSError:
            continue
        if marker in cmdline and state != "Z":
            pids.append(int(entry.name))
    return pids


def node_name(pid: int) -> str:
    """The node a process runs (``python -m bci.nodes NAME ...``), or '' for other processes."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return ""
    return args[3] if args[1:3] == ["-m", "bci.nodes"] else ""


def session_command(
    config: Path | None, out: Path, *extra: str, mode: str = "decode", resume: bool = False
) -> list[str]:
    """``bci-session`` with ``config`` (if any) into ``out``; ``resume`` continues ``out``."""
    if resume:
        where = ["--resume", str(out)]
    else:
        where = [*(["--config", str(config)] if config else []), "--out", str(out)]
    return [sys.executable, "-m", "bci.session.cli", "--mode", mode, *where, *extra]


def run_session(
    config: Path | None,
    out: Path,
    *extra: str,
    timeout: float = 240,
    mode: str = "decode",
    resume: bool = False,
) -> subprocess.CompletedProcess:
    env = dict(os.environ, SDL_VIDEODRIVER="dummy")
    return subprocess.run(
        session_command(config, out, *extra, mode=mode, resume=resume),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=REPO,
    )


def read_summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def write_config(path: Path, **tables: dict) -> Path:
    """Write a small decode config: the demo's stimuli, fast timing, and ``tables`` on top."""
    base = {
        "session": {"mode": "decode", "heartbeat_timeout_s": 10.0},
        "stimuli": {"path": str(REPO / "stimuli" / "demo-faces"), "n_train": 60, "n_test": 8},
        "timing": {
            "time_scale": 20.0,
            "tr_s": 2.0,
            "stimulus_s": 2.0,
            "isi_s": 2.0,
            "run_break_s": 10.0,
        },
        "acquire": {"marker_stream": f"bci-markers-{path.parent.name}", "resolve_timeout_s": 20.0},
        "simulate": {"n_voxels": 256, "snr": 1.0, "seed": 3},
        "display": {"width": 480, "height": 240},
    }
    for name, table in tables.items():
        base[name] = {**base.get(name, {}), **table}
    path.write_text(config_to_toml(base))
    return path


def start_session(config: Path, out: Path, mode: str = "decode") -> subprocess.Popen:
    """Start ``bci-session`` in the background (stdout and stderr piped, text)."""
    env = dict(os.environ, SDL_VIDEODRIVER="dummy")
    return subprocess.Popen(
        session_command(config, out, mode=mode),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )


def readme_outputs() -> set[str]:
    """The names the README's table of a session folder's files lists (first column)."""
    import re

    text = (REPO / "README.md").read_text()
    table = text.split("| file | what |", 1)[1].split("\n\n", 1)[0]
    names = set()
    for row in table.splitlines()[2:]:
        first = row.split("|")[1]
        names |= {n.rstrip("/") for n in re.findall(r"`([^`]+)`", first)}
    return names


def outputs_not_in_readme(folder: Path) -> list[str]:
    """The files and folders at the top of a session folder that the README's table omits."""
    import re

    listed = readme_outputs()
    return sorted(
        p.name
        for p in folder.iterdir()
        if p.name not in listed
        and not (re.fullmatch(r"recording-\d+\.xdf", p.name) and "recording-2.xdf" in listed)
    )
