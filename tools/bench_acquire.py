"""Acquire on a 96-channel, 30 kHz broadband stream in real time: CPU share of one core and lag.

A separate process plays the amplifier: it pushes 96 channels of float32 at 30 kHz over LSL in
10 ms chunks, in real time (one second of the in-silico array's voltage, 20 spikes/s per
channel, looped). This process reads it as the acquire node does, for ``--seconds`` each:

* **acquire**: :class:`bci.nodes.spike_input.BroadbandReader` every 10 ms (pull, causal band-pass,
  threshold crossings, 1 kHz bins), as acquire's loop calls it;
* **pull only** (the peer): the same inlet pulled and thrown away, i.e. what LSL alone costs.

CPU share is this process's CPU time (all threads, liblsl's included) over wall time, as a
fraction of one core. Lag is measured per read that emitted bins, on the LSL clock: *processing*
is from the pull to the counts being ready, *sample to count* from the end of the newest bin (the
last sample that completed it) to the counts being ready, which includes LSL's transport and the
chunking of the sender::

    python tools/bench_acquire.py               # 96 channels, 20 s per mode
    python tools/bench_acquire.py --seconds 5 --channels 32
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time

import numpy as np
import pylsl
from pylsl import local_clock

from bci.lsl.streams import StreamQuery, make_outlet, open_inlet, pull_volumes, resolve
from bci.nodes.spike_input import BroadbandReader, StreamSettings, WarnOnce

FS, CHUNK = 30000, 300


def push(name: str, n_ch: int, seconds: float) -> None:
    """The amplifier: real-time float32 broadband in 10 ms chunks."""
    from bci.sim.array import BroadbandSynth, spikes_in_bins

    rng = np.random.default_rng(0)
    synth = BroadbandSynth(rng.uniform(50, 150, n_ch), FS, seed=1)
    last = np.full(n_ch, -1.0)
    block = []
    for k in range(100):
        bins = (k * 10 + np.arange(10)) / 1000
        t, c = spikes_in_bins(bins, rng.poisson(0.02, (10, n_ch)), 0.001, rng, last)
        synth.add_spikes(np.round(t * FS).astype(np.int64) + synth.trough, c)
        block.append(synth.emit(CHUNK))
    outlet = make_outlet(name, "Raw", n_ch, FS, name)
    t0, sent = local_clock(), 0
    while sent < seconds * FS:
        due = (local_clock() - t0) * FS
        while sent + CHUNK <= due:
            chunk = block[(sent // CHUNK) % len(block)]
            outlet.push_chunk(chunk, timestamp=t0 + (sent + CHUNK - 1) / FS)
            sent += CHUNK
        time.sleep(0.002)


def measure(inlet: pylsl.StreamInlet, seconds: float, reader: BroadbandReader | None) -> dict:
    """Read for ``seconds`` every 10 ms; CPU share, samples, lags."""
    processing, to_count, samples = [], [], 0
    cpu0, wall0 = time.process_time(), time.monotonic()
    while time.monotonic() - wall0 < seconds:
        start = local_clock()
        if reader is None:
            _, times = pull_volumes(inlet, max_samples=8192)
            samples += times.size
        else:
            before = reader.binner.next_bin if reader.binner else 0
            counts, times = reader.read(inlet, start)
            done = local_clock()
            if times.size and before:
                processing.append(done - start)
                to_count.append(done - (times[-1] + reader.binner.bin_s))
        time.sleep(max(0.0, 0.01 - (local_clock() - start)))
    cpu = (time.process_time() - cpu0) / (time.monotonic() - wall0)
    return {"cpu": cpu, "samples": samples, "processing": processing, "to_count": to_count}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--channels", type=int, default=96)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--push", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.push:
        push(args.push, args.channels, 2 * args.seconds + 10)
        return
    name = f"bench-acquire-{os.getpid()}"
    player = subprocess.Popen(
        [sys.executable, __file__, "--push", name, "--channels", str(args.channels),
         "--seconds", str(args.seconds)]
    )  # fmt: skip
    try:
        info = resolve(StreamQuery(name=name), 10.0)
        log = logging.getLogger("bench")
        counts: dict[str, int] = {}

        def count(key: str, n: int = 1) -> None:
            counts[key] = counts.get(key, 0) + n

        inlet = open_inlet(info)
        time.sleep(0.5)
        peer = measure(inlet, args.seconds, None)
        reader = BroadbandReader(
            args.channels, FS, StreamSettings(), count, WarnOnce(log, count, name)
        )
        ours = measure(inlet, args.seconds, reader)
    finally:
        player.kill()
        player.wait()
    rate = args.channels * FS
    print(
        f"{args.channels} channels x {FS} Hz float32 ({rate / 1e6:.2f} M samples/s) over LSL, "
        f"{args.seconds:g} s per mode, read every 10 ms; {os.cpu_count()} CPUs\n"
    )
    print(
        "| mode | CPU (share of one core) | ratio to pull only | samples/s per channel | "
        "processing p50 / p95 / max (ms) | sample to count p50 / p95 / max (ms) |"
    )
    print("| --- | ---: | ---: | ---: | --- | --- |")
    print(f"| pull only | {peer['cpu']:.3f} | 1.00 | {peer['samples'] / args.seconds:,.0f} | | |")
    p, q = np.array(ours["processing"]) * 1e3, np.array(ours["to_count"]) * 1e3
    print(
        f"| acquire (band-pass, detect, bin) | {ours['cpu']:.3f} | {ours['cpu'] / peer['cpu']:.2f} "
        f"| {counts.get('samples', 0) / args.seconds:,.0f} | {np.median(p):.2f} / "
        f"{np.percentile(p, 95):.2f} / {p.max():.2f} | {np.median(q):.2f} / "
        f"{np.percentile(q, 95):.2f} / {q.max():.2f} |"
    )
    print(
        f"\nspikes detected: {counts.get('spikes', 0)} "
        f"({counts.get('spikes', 0) / args.seconds / args.channels:.1f} per s and channel; "
        "20 sent)"
    )


if __name__ == "__main__":
    main()
