"""Benchmark the closed decode loop: volume in to reconstruction on screen, stage by stage.

It runs a real decode session (every node its own process, LSL, ZeroMQ, pygame), then times the
same work in one process (the peer, measured in the same run): for each test trial, the
session's own model decodes the trial's recorded responses, the session's generator renders the
latent, and the display draws and flips it. The ratio of the two is what the distributed loop
(processes, sockets, scheduling) costs on top of the work itself.

Stages of the live loop, from the session's bus log (each process stamps with the same clock):

    acquire -> decode   the trial's last response published -> its latent published
    render              latent published -> image published
    display             image published -> flip (bus transfer, draw, flip)
    total               the trial's last volume received by acquire -> flip (the summary's
                        latency_ms, on the LSL clock)

With ``--remote NODE`` it also runs the same session with NODE joined through ``bci-node`` over
TCP + CURVE (loopback, through the supervisor's relays: see README "Several machines") and prints
what that adds to each stage against the all-local loop of the same run.

Usage::

    python tools/bench_loop.py                  # the demo config, 60 test trials, ~1.5 min
    python tools/bench_loop.py --config configs/demo-decode.toml --n-test 24
    python tools/bench_loop.py --n-test 24 --remote render
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

from bci.config import SessionConfig
from bci.session.config import config_to_toml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
GOALS_MS = {"p50": 15.0, "p99": 40.0}


def run_session(config: Path, out: Path, n_test: int, remote: str = "") -> dict:
    """Run the decode session of ``config`` with ``n_test`` test trials; return its summary.

    With ``remote``, that node joins with ``bci-node`` over TCP + CURVE on loopback.
    """
    raw = tomllib.loads(config.read_text())
    stimuli = raw.setdefault("stimuli", {})
    stimuli["path"] = str((config.resolve().parent / stimuli["path"]).resolve())
    test_runs = [r for r in raw.get("runs", []) if r.get("phase") == "test"]
    if test_runs:  # the last test run takes what the others leave
        test_runs[-1]["trials"] = n_test - sum(r["trials"] for r in test_runs[:-1])
    else:
        stimuli["n_test"] = n_test
    if raw.get("model", {}).get("path"):
        raw["model"]["path"] = str((config.resolve().parent / raw["model"]["path"]).resolve())
    bench_config = out.parent / ("bench-remote.toml" if remote else "bench.toml")
    if remote:
        from bci.bus.curve import create_keys

        create_keys(out.parent / "keys", ["127.0.0.1"])
        port = 20000 + os.getpid() % 20000
        raw["bus"] = {"host": "127.0.0.1", "port": port, "keys": str(out.parent / "keys")}
        raw["nodes"] = {remote: {"host": "127.0.0.1"}}
    bench_config.write_text(config_to_toml(raw))
    cmd = [sys.executable, "-m", "bci.session.cli", "--mode", "decode"]
    cmd += ["--config", str(bench_config), "--out", str(out)]
    if not remote:
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=dict(os.environ))
        if done.returncode != 0:
            sys.exit(f"bench_loop: the session failed:\n{done.stderr[-2000:]}")
        return json.loads((out / "summary.json").read_text())
    session = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    line = session.stdout.readline()  # "waiting for node ...; run there: bci-node ..."
    if "run there: bci-node " not in line:
        session.kill()
        sys.exit(f"bench_loop: the session did not wait for {remote}: {line!r}")
    node_cmd = line.split("run there: bci-node ", 1)[1].split()
    node = subprocess.Popen(
        [sys.executable, "-m", "bci.nodes.join", *node_cmd, "--out", str(out.parent / "node")],
        stdout=subprocess.DEVNULL,
        cwd=ROOT,
    )
    session.communicate()
    node.wait(timeout=60)
    if session.returncode != 0 or node.returncode != 0:
        sys.exit(f"bench_loop: the remote session failed ({session.returncode}, {node.returncode})")
    return json.loads((out / "summary.json").read_text())


def live_stages(out: Path) -> dict[str, np.ndarray]:
    """Per test trial, the loop's stage times (ms) from the session's bus log."""
    from bci.bus.log import read_bus_log

    responses: dict[int, float] = {}
    latents, images, flips = {}, {}, {}
    for m in read_bus_log(out / "bus"):
        trial = m.meta.get("trial")
        if m.topic == "responses" and m.meta.get("phase") == "test":
            responses[trial] = max(responses.get(trial, 0.0), m.wall_time)
        elif m.topic == "latents":
            latents[trial] = m.wall_time
        elif m.topic == "images.display":
            images[trial] = m.wall_time
        elif m.kind == "flip" and m.meta.get("what") == "reconstruction":
            flips[trial] = (m.wall_time, m.meta["latency_ms"])
    trials = sorted(t for t in latents if t in images and t in flips and t in responses)
    return {
        "acquire -> decode": np.array([latents[t] - responses[t] for t in trials]) * 1e3,
        "render": np.array([images[t] - latents[t] for t in trials]) * 1e3,
        "display": np.array([flips[t][0] - images[t] for t in trials]) * 1e3,
        "total": np.array([flips[t][1] for t in trials]),
    }


def in_process_stages(out: Path, config: SessionConfig) -> dict[str, np.ndarray]:
    """The same work for the same trials in this one process (the peer)."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    import pygame
    import torch

    from bci.bus.log import read_bus_log
    from bci.decode.model import load_decoding_model
    from bci.generators import load
    from bci.nodes.screen import Screen, open_window

    gen_cfg = config.generator
    if gen_cfg.cpu_threads:
        torch.set_num_threads(gen_cfg.cpu_threads)
    model = load_decoding_model(out / "model.npz")
    generator = load(gen_cfg.spec, precision=gen_cfg.precision)
    trials: dict[int, dict[int, np.ndarray]] = {}
    for m in read_bus_log(out / "bus", topics=("responses",)):
        if m.meta.get("phase") == "test" and not m.meta.get("bad"):
            trials.setdefault(m.meta["trial"], {})[m.meta["subject"]] = np.array(m.arrays[0])
    window = open_window(config.display.width, config.display.height, vsync=False)
    screen = Screen(window.surface)
    thumb = screen.prepare_stimulus(generator.render(generator.sample_latents(1, 0))[0])[1]
    generator.render(model.predict(next(iter(trials.values()))))  # warm up
    stages: dict[str, list[float]] = {"acquire -> decode": [], "render": [], "display": []}
    for trial, responses in sorted(trials.items()):
        t0 = time.perf_counter()
        latent = model.predict(responses)
        t1 = time.perf_counter()
        image = generator.render(latent)[0]
        t2 = time.perf_counter()
        screen.draw_pair(f"trial {trial}", thumb, screen.prepare_reconstruction(image))
        pygame.display.flip()
        t3 = time.perf_counter()
        for name, dt in zip(stages, (t1 - t0, t2 - t1, t3 - t2), strict=True):
            stages[name].append(dt * 1e3)
    pygame.display.quit()
    out_stages = {k: np.array(v) for k, v in stages.items()}
    out_stages["total"] = sum(out_stages.values())
    return out_stages


def table(live: dict[str, np.ndarray], peer: dict[str, np.ndarray]) -> str:
    lines = [
        "| stage | loop p50 (ms) | loop p99 (ms) | in-process p50 (ms) | in-process p99 (ms) "
        "| loop / in-process (p50) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in live:
        a, b = live[name], peer[name]
        p50a, p99a, p50b, p99b = (
            np.percentile(a, 50),
            np.percentile(a, 99),
            np.percentile(b, 50),
            np.percentile(b, 99),
        )
        lines.append(
            f"| {name} | {p50a:.2f} | {p99a:.2f} | {p50b:.2f} | {p99b:.2f} | "
            f"{p50a / max(p50b, 1e-9):.2f}× |"
        )
    return "\n".join(lines)


def remote_table(local: dict[str, np.ndarray], remote: dict[str, np.ndarray], node: str) -> str:
    """Stage by stage: the all-local loop against the one with ``node`` joined over TCP."""
    lines = [
        f"| stage | all local p50 (ms) | {node} over TCP + CURVE p50 (ms) | added p50 (ms) "
        f"| all local p99 (ms) | {node} remote p99 (ms) | remote / local (p50) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in local:
        a, b = local[name], remote[name]
        p50a, p50b = np.percentile(a, 50), np.percentile(b, 50)
        lines.append(
            f"| {name} | {p50a:.2f} | {p50b:.2f} | {p50b - p50a:+.2f} | "
            f"{np.percentile(a, 99):.2f} | {np.percentile(b, 99):.2f} | "
            f"{p50b / max(p50a, 1e-9):.2f}× |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, default=ROOT / "configs" / "demo-decode.toml")
    p.add_argument("--n-test", type=int, default=60, help="test trials (default 60)")
    p.add_argument(
        "--remote",
        metavar="NODE",
        default="",
        help="also run the loop with NODE joined over TCP + CURVE and compare it with the local",
    )
    args = p.parse_args(argv)
    from bci.session.config import load_config

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "session"
        print(f"running a decode session ({args.n_test} test trials)...", file=sys.stderr)
        summary = run_session(args.config, out, args.n_test)
        config = load_config(out.parent / "bench.toml")
        live = live_stages(out)
        peer = in_process_stages(out, config)
        if args.remote:
            print(
                f"running it again with {args.remote} joined over TCP + CURVE...", file=sys.stderr
            )
            remote_out = Path(tmp) / "remote" / "session"
            remote_out.parent.mkdir()
            remote_summary = run_session(args.config, remote_out, args.n_test, args.remote)
            remote = live_stages(remote_out)
    n = len(live["total"])
    lat = summary["latency_ms"]
    print(f"decode loop, {n} test trials, config {args.config.name}, {os.cpu_count()} CPUs\n")
    print(table(live, peer))
    print(
        f"\nsummary latency_ms: p50 {lat['p50']} (goal <= {GOALS_MS['p50']:g}), "
        f"p99 {lat['p99']} (goal <= {GOALS_MS['p99']:g})"
    )
    if args.remote:
        rlat = remote_summary["latency_ms"]
        clock = remote_summary["nodes"][args.remote].get("clock", {})
        print(f"\n{args.remote} joined over TCP + CURVE (loopback) against all local, same run:\n")
        print(remote_table(live, remote, args.remote))
        print(
            f"\nsummary latency_ms p50: all local {lat['p50']}, {args.remote} remote "
            f"{rlat['p50']} (added {rlat['p50'] - lat['p50']:+.3f} ms); clock offset "
            f"{clock.get('offset_ms')} ms, jitter {clock.get('jitter_ms')} ms"
        )


if __name__ == "__main__":
    main()
