"""Spike detection against the simulator's ground truth, for spike amplitudes of 50-150 uV.

The in-silico array's broadband voltage (:class:`bci.sim.array.BroadbandSynth`: waveforms of one
amplitude on 10 uV RMS white noise, a slow LFP and DC offsets, 30 kHz) goes through acquire's
online detector chunk by chunk (causal band-pass 300-6000 Hz, threshold -4.5 x the robust noise
level, 1 ms dead time) and, as the peer measured in the same run, through the offline
equivalent: a zero-phase band-pass of the whole recording (``sosfiltfilt``) and one noise level
from all of it. A detection matches a true spike on its channel within 1 ms::

    python tools/bench_detection.py             # 16 channels x 20 s per amplitude
    python tools/bench_detection.py --quick     # 4 channels x 5 s

Prints a markdown table: found (hits / true spikes) and false (unmatched / detections) per
amplitude, online and offline, and their ratio. The goal at 80 uV: >= 95 % found, <= 5 % false.
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy import signal

from bci.sim.array import BroadbandSynth, spikes_in_bins
from bci.spikes import BandPass, ThresholdDetector, match_spikes
from bci.spikes.threshold import MAD_TO_SIGMA

FS, CHUNK_MS, RATE_HZ, SKIP_S = 30000, 10, 20.0, 1.0


def simulate(amplitude: float, n_ch: int, seconds: float, seed: int):
    """Broadband voltage with spikes of one amplitude; returns samples and the true spikes."""
    rng = np.random.default_rng(seed)
    synth = BroadbandSynth(np.full(n_ch, amplitude), FS, noise_uv=10.0, seed=seed + 1)
    last = np.full(n_ch, -1.0)
    chunks, true_t, true_c = [], [], []
    for k in range(int(seconds * 1000 / CHUNK_MS)):
        bins = (k * CHUNK_MS + np.arange(CHUNK_MS)) / 1000
        counts = rng.poisson(RATE_HZ / 1000, (CHUNK_MS, n_ch))
        t, c = spikes_in_bins(bins, counts, 0.001, rng, last)
        s = np.round(t * FS).astype(np.int64) + synth.trough
        synth.add_spikes(s, c)
        true_t.append(s / FS)
        true_c.append(c)
        chunks.append(synth.emit(CHUNK_MS * FS // 1000))
    return np.concatenate(chunks), np.concatenate(true_t), np.concatenate(true_c)


def online(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    bp, det = BandPass(x.shape[1], FS), ThresholdDetector(x.shape[1], FS)
    step = CHUNK_MS * FS // 1000
    found = [det.process(bp(x[i : i + step])) for i in range(0, len(x), step)]
    return np.concatenate([f[0] for f in found]) / FS, np.concatenate([f[1] for f in found])


def offline(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sos = signal.butter(2, [300, 6000], btype="bandpass", fs=FS, output="sos")
    y = signal.sosfiltfilt(sos, x - x[0], axis=0)
    thr = -4.5 * np.median(np.abs(y), axis=0) / MAD_TO_SIGMA
    below = y < thr
    onset = below[1:] & ~below[:-1]
    rows, chans = np.nonzero(onset)
    keep = np.ones(rows.size, bool)
    for c in np.unique(chans):
        idx = np.flatnonzero(chans == c)
        last = -(10**9)
        for i in idx[np.argsort(rows[idx])]:
            if rows[i] - last < FS // 1000:
                keep[i] = False
            else:
                last = rows[i]
    return (rows[keep] + 1) / FS, chans[keep]


def score(truth_t, truth_c, found_t, found_c) -> dict:
    t, f = truth_t > SKIP_S, found_t > SKIP_S
    return match_spikes(truth_t[t], truth_c[t], found_t[f], found_c[f])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 channels x 5 s per amplitude")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    n_ch, seconds = (4, 5.0) if args.quick else (16, 20.0)
    print(f"{n_ch} channels x {seconds:g} s per amplitude, {RATE_HZ:g} spikes/s per channel, 10 uV")
    print("RMS noise, 30 kHz; threshold -4.5 sigma (robust), dead time 1 ms; match within 1 ms\n")
    print(
        "| amplitude (uV) | true spikes | found online | false online | found offline "
        "| false offline | found online / offline |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for amplitude in (50, 65, 80, 100, 125, 150):
        x, tt, tc = simulate(amplitude, n_ch, seconds, args.seed)
        on, off = score(tt, tc, *online(x)), score(tt, tc, *offline(x))
        print(
            f"| {amplitude} | {on['n_true']} | {100 * on['found']:.1f} % | "
            f"{100 * on['false']:.1f} % | {100 * off['found']:.1f} % | {100 * off['false']:.1f} % "
            f"| {on['found'] / off['found']:.3f} |"
        )


if __name__ == "__main__":
    main()
