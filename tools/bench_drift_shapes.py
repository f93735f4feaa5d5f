"""Benchmark preprocessing against drifts of other shapes than the simulator's.

The virtual scanner's drift (:class:`bci.sim.bold.BoldStream`) is a sum of three cosines with
periods of 128-512 s, fresh for each voxel. A recording from another scanner, or another
simulator, drifts otherwise. This tool takes the session of ``tools/bench_preprocess.py``
(2 participants x 1024 voxels, SNR 0.1, a calibration run of 120 trials and a test run of 60,
baseline 100x the evoked standard deviation and a 2 % run-to-run change) and adds, to every run
of every participant, a drift of one of these shapes, scaled per voxel to 4x that voxel's evoked
standard deviation over the run (the issue's level):

``simulator``  the virtual scanner's own (its realistic confounds, spikes included)
``linear``     a straight line of random slope per voxel
``quadratic``  a line plus a parabola, random per voxel
``random walk`` an independent Gaussian random walk per voxel
``cosines``    four cosines per voxel, periods 100-1000 s (log-uniform), random phases
``global``     one random walk for the whole brain, each voxel its own evoked-SD weight

Every shape uses the same noise as the clean session. The table gives latent r with the
default preprocessing and its ratio to the clean session's preprocessed and raw latent r
(goal: >= 0.95), as means over seeds::

    python tools/bench_drift_shapes.py            # 3 seeds; about a minute
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import numpy as np
from bench_doc import write_bench_doc
from bench_preprocess import decode, simulate_session

from bci.figures.backend import plt, save_figure
from bci.preprocess import PreprocessSettings
from bci.sim import SimulatedCohort
from bci.sim.confounds import REALISTIC, Confounds

REPO = Path(__file__).resolve().parents[1]
SHAPES = ("linear", "quadratic", "random walk", "cosines", "global")
LEVEL = 4.0
"""Drift standard deviation over a run, in evoked standard deviations."""


def unit_drift(shape: str, n_volumes: int, n_voxels: int, rng: np.random.Generator) -> np.ndarray:
    """A ``(n_volumes, n_voxels)`` drift of one shape, each voxel at mean 0 and SD 1."""
    t = np.linspace(0.0, 1.0, n_volumes)[:, None]
    if shape == "linear":
        drift = t * rng.standard_normal(n_voxels)
    elif shape == "quadratic":
        drift = t * rng.standard_normal(n_voxels) + t**2 * rng.standard_normal(n_voxels)
    elif shape == "random walk":
        drift = np.cumsum(rng.standard_normal((n_volumes, n_voxels)), axis=0)
    elif shape == "cosines":
        seconds = np.arange(n_volumes)[:, None] * 2.0
        drift = np.zeros((n_volumes, n_voxels))
        for _ in range(4):
            period = np.exp(rng.uniform(np.log(100.0), np.log(1000.0)))
            phase = rng.uniform(0.0, 2 * np.pi, n_voxels)
            drift += np.cos(2 * np.pi * seconds / period + phase) * rng.standard_normal(n_voxels)
    elif shape == "global":
        drift = np.repeat(np.cumsum(rng.standard_normal(n_volumes))[:, None], n_voxels, axis=1)
    else:
        raise ValueError(f"unknown drift shape {shape!r}; known: {', '.join(SHAPES)}")
    drift = drift - drift.mean(axis=0)
    return drift / drift.std(axis=0)


def with_drift(session: dict, shape: str, evoked: list[np.ndarray], seed: int) -> dict:
    """A copy of ``session`` with a drift of ``shape`` added to every run and participant."""
    out = copy.deepcopy(session)
    rng = np.random.default_rng([seed, 99])
    for run in out["runs"]:
        run["volumes"] = [
            v + LEVEL * e * unit_drift(shape, *v.shape, rng)
            for v, e in zip(run["volumes"], evoked, strict=True)
        ]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--out", type=Path, default=REPO / "docs")
    args = p.parse_args(argv)
    settings = PreprocessSettings()
    rows: dict[str, list[float]] = {"no drift": [], "clean raw": [], "simulator": []}
    rows.update({shape: [] for shape in SHAPES})
    for seed in range(args.seeds):
        base = simulate_session(
            seed, Confounds(baseline=100.0, run_change=0.02), 120, 60, 1024, 0.1
        )
        rows["no drift"].append(decode(base, settings)[0])
        rows["clean raw"].append(
            decode(simulate_session(seed, Confounds(), 120, 60, 1024, 0.1), None)[0]
        )
        sim = simulate_session(seed, REALISTIC, 120, 60, 1024, 0.1)
        rows["simulator"].append(decode(sim, settings)[0])
        cohort = SimulatedCohort(2, 1024, 32, snr=0.1, random_state=seed)
        evoked = [cohort.evoked_std(i) for i in range(2)]
        for shape in SHAPES:
            rows[shape].append(decode(with_drift(base, shape, evoked, seed), settings)[0])
        print(
            f"seed {seed}: " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in rows.items()),
            file=sys.stderr,
        )
    clean, raw = np.array(rows["no drift"]), np.array(rows["clean raw"])
    lines = [
        f"latent r on 60 test trials, 2 participants x 1024 voxels, SNR 0.1, drift {LEVEL:g}x the "
        f"evoked SD, default [preprocess]; mean over {args.seeds} seeds (ratios per seed)",
        "",
        "| drift | latent r | / no drift, preprocessed | / clean, raw |",
        "| --- | --- | --- | --- |",
    ]
    for name in ("no drift", "simulator", *SHAPES):
        r = np.array(rows[name])
        lines.append(
            f"| {name} | {r.mean():.3f} | {np.mean(r / clean):.3f} | {np.mean(r / raw):.3f} |"
        )
    lines.append(f"| (clean, no preprocessing) | {raw.mean():.3f} | | 1.000 |")
    table = "\n".join(lines)
    print(table)
    figure(rows, clean, args.out / "bench_drift_shapes.png")
    write_bench_doc(
        args.out,
        "bench_drift_shapes",
        "Preprocessing against drifts of other shapes",
        "`python tools/bench_drift_shapes.py` (see its docstring).",
        table,
        "latent r per drift shape",
    )
    return 0


def figure(rows: dict[str, list[float]], reference: np.ndarray, path: Path) -> None:
    """Latent r of each drift shape over the drift-free run's, mean and SE over seeds."""
    names = ["simulator", *SHAPES]
    ratios = [np.array(rows[n]) / reference for n in names]
    fig, ax = plt.subplots(figsize=(7, 3.4))
    means = [r.mean() for r in ratios]
    errors = [r.std() / np.sqrt(r.size) for r in ratios]
    ax.bar(names, means, yerr=errors, color="tab:blue", capsize=3)
    for x, m in enumerate(means):
        ax.text(x, m + 0.02, f"{m:.2f}", ha="center", fontsize=8)
    ax.axhline(0.95, color="grey", ls="--", lw=1, label="goal (0.95)")
    ax.set_ylabel("latent r / drift-free latent r")
    ax.set_ylim(0, 1.2)
    ax.set_title(
        f"Default preprocessing against drifts of {LEVEL:g}x the evoked SD, by shape "
        f"(all 60 test trials, {reference.size} seeds)",
        fontsize=9,
    )
    ax.legend(loc="lower right", fontsize=8)
    save_figure(fig, path)


if __name__ == "__main__":
    sys.exit(main())
