"""Benchmark Ctrl-C: from SIGINT to ``bci-session`` until it has exited and every process is gone.

It runs real sessions (the decode and the evolve demo configs, every node its own process, LSL,
ZeroMQ, pygame on SDL's dummy driver), sends SIGINT at a random moment of the running schedule
and times, for each process of the session (the nodes, LabRecorder, ``bci-session``), when it is
gone. The README promises 5 s. The peer, measured in the same run: LabRecorder closing a file by
itself after Enter (what a stop waited for before the record node ended LabRecorder once the file
held every sample: 0-5 s, its clock-offset thread sleeps 5 s).

Usage::

    python tools/bench_stop.py                 # 3 decode and 3 evolve sessions, ~3 min
    python tools/bench_stop.py --runs 5 --modes decode
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pylsl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from session_helpers import node_name, node_processes  # noqa: E402

from bci.io.labrecorder import LabRecorder  # noqa: E402

CONFIGS = {"decode": "configs/demo-decode.toml", "evolve": "configs/demo-evolve.toml"}
RUNNING = {"decode": "schedule begins", "evolve": "generation 0:"}
"""What the display logs once the schedule runs."""


def _label(pid: int) -> str:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    if b"bci.session.cli" in cmdline:
        return "bci-session"
    return node_name(pid) or "labrecorder"


def one_stop(mode: str, out: Path) -> dict:
    """Run one session, Ctrl-C it a random 1-6 s into the schedule; when each process went."""
    env = dict(os.environ, SDL_VIDEODRIVER="dummy")
    command = [sys.executable, "-m", "bci.session.cli", "--mode", mode]
    proc = subprocess.Popen(
        [*command, "--config", str(REPO / CONFIGS[mode]), "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=REPO,
    )
    log = out / "logs" / "display.log"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if log.exists() and RUNNING[mode] in log.read_text():
            break
        time.sleep(0.05)
    time.sleep(random.uniform(1.0, 6.0))
    labels = {pid: _label(pid) for pid in node_processes(str(out))}
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    gone: dict[str, float] = {}
    while True:
        alive = set(node_processes(str(out)))
        for pid, name in labels.items():
            if pid not in alive and name not in gone:
                gone[name] = time.monotonic() - sent
        if proc.poll() is not None and not alive:
            break
        time.sleep(0.01)
    summary = json.loads((out / "summary.json").read_text())
    return {
        "all_gone_s": time.monotonic() - sent,
        "gone": gone,
        "exit_code": proc.returncode,
        "lost": summary.get("recording", {}).get("samples_lost"),
    }


def labrecorder_close_s() -> float:
    """LabRecorder's own close: Enter a random 1-6 s into a recording, until it has exited."""
    name = f"bench-stop-{uuid.uuid4().hex[:8]}"
    outlet = pylsl.StreamOutlet(pylsl.StreamInfo(name, "EEG", 1, 10, "float32", name))
    with tempfile.TemporaryDirectory() as tmp:
        recorder = LabRecorder(Path(tmp) / "r.xdf", [{"name": name}])
        recorder.start(timeout_s=20)
        for _ in range(int(random.uniform(1.0, 6.0) * 10)):
            outlet.push_sample([0.0])
            time.sleep(0.1)
        start = time.monotonic()
        recorder.stop()
        return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="sessions per mode")
    parser.add_argument("--modes", nargs="+", default=["decode", "evolve"], choices=CONFIGS)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode in args.modes:
            for k in range(args.runs):
                r = one_stop(mode, Path(tmp) / f"{mode}-{k}")
                rows.append((mode, r))
                order = ", ".join(
                    f"{n} {t:.2f}" for n, t in sorted(r["gone"].items(), key=lambda x: x[1])
                )
                print(
                    f"{mode} run {k}: all gone {r['all_gone_s']:.2f} s (exit {r['exit_code']}, "
                    f"samples lost {r['lost']}): {order}",
                    flush=True,
                )
    peer = [labrecorder_close_s() for _ in range(args.runs)]
    print(f"\nLabRecorder's own close after Enter (peer): {', '.join(f'{p:.2f}' for p in peer)} s")
    print("\n| mode | Ctrl-C to all gone, median (max) | / LabRecorder's own close, median |")
    print("| --- | --- | --- |")
    for mode in args.modes:
        times = [r["all_gone_s"] for m, r in rows if m == mode]
        print(
            f"| {mode} | {np.median(times):.2f} s ({max(times):.2f} s) | "
            f"{np.median(times) / np.median(peer):.2f} |"
        )


if __name__ == "__main__":
    main()
