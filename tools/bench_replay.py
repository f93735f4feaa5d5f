"""Benchmark a ``--speed 0`` replay of a long real-TR scanner session: how long, what is lost.

A recording is written as another program would write it (the tests' XDF writer): a one-hour
session of ``--subjects`` participants x ``--voxels`` voxels at TR 2 s, a calibration run and a
test run with a two-minute pause between them, and the display's JSON markers. Then, measured in
the same run:

    read            bci.io.read_recording of the file
    lsl (360 s)     the streams replayed at speed 0 into plain inlets with liblsl's default
                    buffer (360 s of the nominal rate: what acquire had): the peer
    lsl (sized)     the same into inlets sized from the replay (buffer_seconds)
    session         bci-session --mode decode --replay FILE --speed 0, every node a process

Each row gives the wall time, the replay speed-up over real time (recording length / wall
time) and the participants' samples lost (pushed minus received; the goal is 0).

Usage::

    python tools/bench_replay.py                       # 1 h, 2 x 4096 voxels (~2 min)
    python tools/bench_replay.py --minutes 10 --voxels 1024
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pylsl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from xdf_writer import XdfStream, write_xdf  # noqa: E402

from bci.io import read_recording  # noqa: E402
from bci.lsl.streams import buffer_seconds  # noqa: E402
from bci.replay import ReplayPlayer  # noqa: E402
from bci.session.config import config_to_toml  # noqa: E402
from bci.stimulus_set import load_stimulus_set  # noqa: E402

TR, PAUSE_S, DELAY_S, WINDOW_S = 2.0, 120.0, 4.0, 4.0
STIMULI = ROOT / "stimuli" / "demo-faces"


def write_recording(path: Path, minutes: float, n_subjects: int, n_voxels: int) -> dict:
    """Write the session; return its layout (trials per run, trial spacing)."""
    stimuli = load_stimulus_set(STIMULI)
    n_trials = min(len(stimuli), 200)
    n_train = int(0.75 * n_trials)
    n_test = n_trials - n_train
    run_s = (60.0 * minutes - PAUSE_S) / 2
    runs = [("train", 0, n_train), ("test", n_train, n_test)]
    rng = np.random.default_rng(0)
    stamps, markers, t_run = [], [], 1000.0
    for phase, first, n in runs:
        spacing = (run_s - DELAY_S - WINDOW_S - 2 * TR) / n
        onsets = t_run + TR + spacing * np.arange(n)
        markers.append((onsets[0], {"event": "phase", "phase": phase}))
        for k, onset in enumerate(onsets):
            sid = stimuli.ids[first + k]
            markers.append(
                (onset, {"event": "stimulus", "phase": phase, "stimulus": sid, "trial": first + k})
            )
        volumes = int(run_s / TR)
        stamps.append(t_run + TR * np.arange(volumes))
        t_run = stamps[-1][-1] + TR + PAUSE_S
    t = np.concatenate(stamps)
    onsets = np.array([m[0] for m in markers if m[1]["event"] == "stimulus"])
    trials = [m[1]["trial"] for m in markers if m[1]["event"] == "stimulus"]
    streams = [
        XdfStream(
            "markers",
            "Markers",
            "string",
            0.0,
            np.array([m[0] for m in markers]),
            [[json.dumps(m[1])] for m in markers],
            chunk_samples=1,
        )
    ]
    for s in range(n_subjects):
        weights = rng.standard_normal((stimuli.latent_dim, n_voxels)).astype(np.float32)
        data = rng.standard_normal((t.size, n_voxels)).astype(np.float32)
        for onset, trial in zip(onsets, trials, strict=True):
            inside = (t >= onset + DELAY_S) & (t < onset + DELAY_S + WINDOW_S)
            data[inside] += stimuli.latents[trial] @ weights
        streams.append(
            XdfStream(f"sub-{s + 1:02d}", "fMRI", "float32", 1 / TR, t, data, chunk_samples=16)
        )
    write_xdf(path, streams)
    return {"n_train": n_train, "n_test": n_test, "volumes": int(t.size)}


def lsl_replay(path: Path, sized: bool) -> tuple[float, int, int]:
    """Replay the participants' streams at speed 0 into plain inlets; (seconds, pushed, lost)."""
    recording = read_recording(path)
    names = [s.name for s in recording.data_streams()]
    player = ReplayPlayer(recording, speed=0, streams=names)
    inlets = []
    for name, stream in zip(names, player.streams, strict=True):
        info = pylsl.resolve_bypred(f"name='{name}'", 1, 10.0)[0]
        buflen = buffer_seconds(stream.n_samples, stream.nominal_srate) if sized else 360
        inlet = pylsl.StreamInlet(info, max_buflen=buflen)
        inlet.open_stream(10.0)
        inlets.append(inlet)
    time.sleep(0.5)
    t0 = time.perf_counter()
    player.start()
    player.push_due()
    received = [0] * len(inlets)
    quiet = time.perf_counter()
    while time.perf_counter() - quiet < 1.0:
        for k, inlet in enumerate(inlets):
            _, stamps = inlet.pull_chunk(timeout=0.0, max_samples=4096)
            if stamps:
                received[k] += len(stamps)
                quiet = time.perf_counter()
        time.sleep(0.005)
    seconds = quiet - t0
    pushed = player.n_pushed
    player.close()
    return seconds, pushed, pushed - sum(received)


def session_replay(path: Path, layout: dict, n_voxels: int, n_subjects: int, out: Path) -> dict:
    """``bci-session --replay FILE --speed 0``; its summary and wall seconds."""
    config = {
        "session": {"mode": "decode", "heartbeat_timeout_s": 60.0, "ready_timeout_s": 300.0},
        "stimuli": {"path": str(STIMULI), "n_train": layout["n_train"], "n_test": layout["n_test"]},
        "timing": {"time_scale": 1.0, "tr_s": TR, "stimulus_s": 1.0, "isi_s": 1.0},
        "acquire": {
            "marker_stream": "markers",
            "delay_s": DELAY_S,
            "window_s": WINDOW_S,
            "resolve_timeout_s": 60.0,
            "streams": [
                {"name": f"sub-{s + 1:02d}", "type": "fMRI", "subject": s}
                for s in range(n_subjects)
            ],
        },
        "simulate": {"enabled": False},
        "record": {"xdf": False},
    }
    toml = out.parent / "bench-replay.toml"
    toml.write_text(config_to_toml(config))
    cmd = [sys.executable, "-m", "bci.session.cli", "--mode", "decode", "--config", str(toml)]
    cmd += ["--out", str(out), "--replay", str(path), "--speed", "0"]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=dict(os.environ))
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"bench_replay: the replay session failed:\n{done.stderr[-2000:]}")
    summary = json.loads((out / "summary.json").read_text())
    return {"seconds": seconds, "summary": summary}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=60.0, help="session length (60)")
    p.add_argument("--subjects", type=int, default=2, help="participants (2)")
    p.add_argument("--voxels", type=int, default=4096, help="voxels per participant (4096)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        path = Path(tmp) / "session.xdf"
        layout = write_recording(path, args.minutes, args.subjects, args.voxels)
        length = 60.0 * args.minutes
        t0 = time.perf_counter()
        recording = read_recording(path)
        read_s = time.perf_counter() - t0
        n = sum(s.n_samples for s in recording.data_streams())
        rows = [("read", read_s, None)]
        for sized in (False, True):
            seconds, pushed, lost = lsl_replay(path, sized)
            rows.append((f"lsl ({'sized' if sized else '360 s'})", seconds, lost))
        session = session_replay(path, layout, args.voxels, args.subjects, Path(tmp) / "out")
        summary = session["summary"]
        lost = sum(s["lost"] for s in summary["replay"]["samples"].values())
        rows.append(("session", session["seconds"], lost))
        size_mb = path.stat().st_size / 2**20
    print(
        f"\nreplay at --speed 0 of {args.minutes:g} min, {args.subjects} x {args.voxels} voxels "
        f"at TR {TR:g} s ({n} volumes, {size_mb:.0f} MiB)"
    )
    print(f"{'stage':<14}{'wall s':>9}{'x real time':>13}{'samples lost':>14}")
    for name, seconds, lost in rows:
        lost_text = "" if lost is None else str(lost)
        print(f"{name:<14}{seconds:>9.2f}{length / seconds:>13.0f}{lost_text:>14}")
    t = summary["trials"]
    print(
        f"session: trials used {t['train']} + {t['test']} of {layout['n_train']} + "
        f"{layout['n_test']}, bad trials {summary['bad_trials']}, latent r "
        f"{(summary['decoding'] or {}).get('latent_correlation')}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
