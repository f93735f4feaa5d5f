"""Benchmark online preprocessing offline: latent r with and without it, at several confound levels.

A simulated two-participant session (the decode demo's shape: 1024 voxels, per-voxel SNR 0.1,
TR 2 s, 2 s stimuli every 6 s, a calibration run of 120 trials and a test run of 60) is acquired
by :class:`bci.sim.bold.BoldStream` in two runs, with the scanner confounds of
:class:`bci.sim.confounds.Confounds` scaled from the realistic levels (baseline 100x the evoked
standard deviation, drift 4x, 2 % run-to-run change, 3 % spikes on 2 % of volumes) by a factor.
Every level uses the same seed, so the same noise: a run with confounds differs from the clean
run only by its confounds. Each run is then

* **raw**: cut into trials as the pipeline does today (:func:`bci.sim.bold.cut_trials`, the mean
  of the volumes 4-8 s after onset), or
* **preprocessed**: every volume through :class:`bci.preprocess.VolumePreprocessor` in
  acquisition order (detrending, scaling, censoring), then cut (censored volumes left out);

:func:`bci.decode.model.fit_decoding_model` (hyperalignment + ridge) is fitted on the calibration
trials and decodes the test trials. The table gives latent r (mean over seeds), its ratio to
the clean run's raw latent r (the reference: today's pipeline without confounds) and to the clean
run's preprocessed r. Goal: >= 0.95 of the reference with realistic confounds, >= 0.98 clean.
A second table times :meth:`~bci.preprocess.VolumePreprocessor.update` early and late in a long
run (its cost must not grow with the run's length)::

    python tools/bench_preprocess.py             # 4 seeds, levels 0, 0.5, 1, 2; ~2 minutes
    python tools/bench_preprocess.py --quick     # 1 seed, levels 0 and 1

``--live`` measures the same through the whole pipeline: the decode demo
(``configs/demo-decode.toml``, real processes, LSL, the display on SDL's dummy driver) live
without confounds and without preprocessing (the reference), without confounds with
preprocessing, and with its realistic confounds with preprocessing (same seeds, so the same
noise); then each recording replayed at ``--speed 0``, the confound-free one with and without
preprocessing (the very same volumes). Latent r of each against the reference, in a table
and a figure (``docs/bench_preprocess_live.md``, ``.png``)::

    python tools/bench_preprocess.py --live      # 3 demo sessions and 3 replays; ~5 minutes
    python tools/bench_preprocess.py --live --reuse   # table and figure from those sessions
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from bench_doc import write_bench_doc

from bci.decode.model import fit_decoding_model
from bci.figures.backend import plt, save_figure
from bci.metrics import latent_correlation
from bci.nodes.simulate import SCANNER_NOISE_SHARE, ar1_mean_variance, window_weight
from bci.preprocess import PreprocessSettings, VolumePreprocessor
from bci.session.config import config_to_toml
from bci.sim import BoldStream, SimulatedCohort, cut_trials
from bci.sim.confounds import REALISTIC, Confounds

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
TR, STIMULUS, ISI, DELAY, WINDOW = 2.0, 2.0, 4.0, 4.0, 4.0
LEAD_S, TAIL_S = 10.0, 20.0


def scaled_confounds(level: float) -> Confounds:
    """The realistic confounds times ``level`` (the spike rate and size scale together)."""
    return Confounds(
        baseline=REALISTIC.baseline if level > 0 else 0.0,
        drift=REALISTIC.drift * level,
        run_change=REALISTIC.run_change * level,
        spike_rate=min(1.0, REALISTIC.spike_rate * level),
        spike_size=REALISTIC.spike_size * level,
    )


def simulate_session(
    seed: int, confounds: Confounds, n_train: int, n_test: int, n_voxels: int, snr: float
) -> dict:
    """Two runs of a simulated cohort: raw volumes, onsets (run-relative) and latents per run."""
    cohort = SimulatedCohort(2, n_voxels, 32, snr=snr, random_state=seed)
    rng = np.random.default_rng([seed, 7])
    latents = rng.standard_normal((n_train + n_test, 32))
    weight, n_window = window_weight(TR, STIMULUS, DELAY, WINDOW)
    window_var = ar1_mean_variance(round(n_window), 0.3)
    noise_std = [np.sqrt(SCANNER_NOISE_SHARE * v / window_var) for v in cohort.noise_var]
    evoked = [cohort.evoked_std(i) for i in range(2)]
    stream = BoldStream(
        cohort.n_voxels,
        TR,
        duration_s=STIMULUS,
        noise_std=noise_std,
        ar_rho=0.3,
        seed=np.random.default_rng([seed, 1]),
        **confounds.bold_kwargs(evoked),
    )
    trial_rng = np.random.default_rng([seed, 2])
    keep = math.sqrt(1.0 - SCANNER_NOISE_SHARE)
    runs, t0 = [], 0.0
    for phase, z in (("train", latents[:n_train]), ("test", latents[n_train:])):
        if runs:
            stream.start_run()
        first = stream.n_emitted
        onsets = t0 + LEAD_S + np.arange(len(z)) * (STIMULUS + ISI)
        clean = cohort.signal(z)
        noisy = cohort.trial_responses(z, seed=trial_rng)
        for k, onset in enumerate(onsets):
            stream.add_event(
                onset,
                [(c[k] + keep * (x[k] - c[k])) / weight for c, x in zip(clean, noisy, strict=True)],
            )
        end = onsets[-1] + TAIL_S
        volumes = stream.volumes_until(end)
        runs.append(
            {
                "phase": phase,
                "volumes": volumes,
                "onsets": onsets - float(stream.volume_time(first)),
                "latents": z,
                "spikes": [sum(1 for v in s if v >= first) for s in stream.spikes],
            }
        )
        t0 = float(stream.volume_time(stream.n_emitted))
    return {"runs": runs}


def preprocess_run(volumes: np.ndarray, settings: PreprocessSettings) -> tuple[np.ndarray, dict]:
    """Every volume of one run through a fresh run of a :class:`VolumePreprocessor`."""
    pre = VolumePreprocessor(volumes.shape[1], TR, settings)
    out, _ = pre.process_run(volumes)
    return out, pre.summary()


def decode(session: dict, settings: PreprocessSettings | None) -> tuple[float, int]:
    """Latent r on the test run (and censored volumes), raw (settings None) or preprocessed."""
    trials: dict[str, list[np.ndarray]] = {}
    censored = 0
    for run in session["runs"]:
        cut = []
        for volumes in run["volumes"]:
            if settings is not None:
                volumes, summary = preprocess_run(volumes, settings)
                censored += summary["censored"]
            cut.append(cut_trials(volumes, run["onsets"], TR, DELAY, WINDOW, skip_nan=True))
        trials[run["phase"]] = cut
    train, test = session["runs"]
    good = ~np.any([np.isnan(x).any(axis=1) for x in trials["train"]], axis=0)
    model = fit_decoding_model([x[good] for x in trials["train"]], train["latents"][good])
    predicted = model.predict(dict(enumerate(trials["test"])))
    return float(latent_correlation(predicted, test["latents"])), censored


def cost_table(n_voxels: int, n_volumes: int = 3000, block: int = 200) -> str:
    """Microseconds per volume in the first and the last ``block`` volumes of a long run."""
    rng = np.random.default_rng(0)
    data = 1000.0 + rng.standard_normal((n_volumes, n_voxels))
    pre = VolumePreprocessor(n_voxels, TR, PreprocessSettings())
    pre.start_run(n_volumes=n_volumes)
    times = np.empty(n_volumes)
    for i, volume in enumerate(data):
        start = time.perf_counter()
        pre.update(volume)
        times[i] = time.perf_counter() - start
    # skip the first volumes (imports, caches); the cosines all join by 2 * 128 s / TR volumes
    early = 1e6 * np.median(times[200 : 200 + block])
    late = 1e6 * np.median(times[-block:])
    return (
        f"| voxels | volumes {200}-{200 + block} us | volumes {n_volumes - block}-{n_volumes} us "
        "| late / early |\n| --- | --- | --- | --- |\n"
        f"| {n_voxels} | {early:.0f} | {late:.0f} | {late / early:.2f} |"
    )


CONFOUND_KEYS = ("baseline", "drift", "run_change", "spike_rate", "spike_size")


def _session(folder: Path, raw: dict, *extra: str, reuse: bool = False) -> dict:
    """Run ``bci-session`` (decode) on ``raw`` into ``folder``; its summary.

    With ``reuse``, the summary of a session already in ``folder`` (made by this tool).
    """
    if reuse and (folder / "summary.json").is_file():
        return json.loads((folder / "summary.json").read_text())
    folder.mkdir(parents=True, exist_ok=True)
    config = folder.parent / f"{folder.name}.toml"
    config.write_text(config_to_toml(raw))
    cmd = [sys.executable, "-m", "bci.session.cli", "--mode", "decode", "--config", str(config)]
    done = subprocess.run(
        [*cmd, "--out", str(folder), *extra],
        capture_output=True,
        text=True,
        env=dict(os.environ, SDL_VIDEODRIVER="dummy"),
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"session {folder.name} failed: {done.stderr[-2000:]}")
    return json.loads((folder / "summary.json").read_text())


def live_table(out: Path, figure_path: Path, reuse: bool = False) -> str:
    """The demo live and replayed, clean and with confounds, with and without preprocessing."""
    demo = tomllib.loads((REPO / "configs" / "demo-decode.toml").read_text())
    demo["stimuli"]["path"] = str(REPO / "stimuli" / "demo-faces")
    demo.setdefault("record", {})["xdf"] = True
    clean = json.loads(json.dumps(demo))
    for key in CONFOUND_KEYS:
        clean["simulate"][key] = 0.0
    variants = {
        "clean, none": (clean, "none"),
        "clean, glm": (clean, "glm"),
        "confounds, glm": (demo, "glm"),
    }
    rows = []
    for name, (raw, method) in variants.items():
        raw = json.loads(json.dumps(raw))
        raw["preprocess"]["method"] = method
        folder = out / name.replace(", ", "-")
        summary = _session(folder, raw, reuse=reuse)
        rows.append(("live", name, summary, folder, raw))
        print(f"live {name}: r {summary['decoding']['latent_correlation']}", file=sys.stderr)
    replays = [("clean, none", "none"), ("clean, none", "glm"), ("confounds, glm", "glm")]
    for source, method in replays:
        _, _, _, folder, raw = next(r for r in rows if r[1] == source)
        raw = json.loads(json.dumps(raw))
        raw["preprocess"]["method"] = method
        data = "clean" if source.startswith("clean") else "confounds"
        target = out / f"replay-{data}-{method}"
        recording = str(folder / "recording.xdf")
        summary = _session(target, raw, "--replay", recording, "--speed", "0", reuse=reuse)
        rows.append(("replay", f"{data}, {method}", summary, target, raw))
        print(
            f"replay {data} {method}: r {summary['decoding']['latent_correlation']}",
            file=sys.stderr,
        )
    live_figure(rows, figure_path)
    lines = [
        "| run | data, preprocessing | latent r | / reference | / clean preprocessed "
        "| censored volumes | bad trials |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for how, name, summary, _, _ in rows:
        r = summary["decoding"]["latent_correlation"]
        reference = next(s for h, n, s, _, _ in rows if h == how and n == "clean, none")
        ratio = r / reference["decoding"]["latent_correlation"]
        same = next(s for h, n, s, _, _ in rows if h == how and n == "clean, glm")
        to_clean = (
            "" if name.endswith("none") else f"{r / same['decoding']['latent_correlation']:.3f}"
        )
        censored = sum(p.get("censored", 0) for p in summary.get("preprocess", {}).values())
        lines.append(
            f"| {how} | {name} | {r:.3f} | {ratio:.3f} | {to_clean} | {censored} "
            f"| {summary['bad_trials']} |"
        )
    return "\n".join(lines)


def live_figure(rows: list, path: Path) -> None:
    """Latent r of each live and replayed demo session, as a fraction of its reference."""
    fig, ax = plt.subplots(figsize=(7, 3.6))
    names = list(dict.fromkeys(name for _, name, *_ in rows))
    for k, (how, colour) in enumerate((("live", "tab:blue"), ("replay", "tab:orange"))):
        mine = {name: s for h, name, s, *_ in rows if h == how}
        reference = mine["clean, none"]["decoding"]["latent_correlation"]
        ratios = [mine[n]["decoding"]["latent_correlation"] / reference for n in names]
        x = np.arange(len(names)) + (k - 0.5) * 0.38
        ax.bar(x, ratios, width=0.36, color=colour, label=how)
        for xi, ratio in zip(x, ratios, strict=True):
            ax.text(xi, ratio + 0.01, f"{ratio:.2f}", ha="center", fontsize=8)
    ax.axhline(0.95, color="grey", ls="--", lw=1, label="goal with confounds (0.95)")
    labels = [
        n.replace(", none", " data,\nno preprocessing").replace(", glm", " data,\npreprocessed")
        for n in names
    ]
    ax.set_xticks(np.arange(len(names)), labels)
    ax.set_ylabel("latent r / clean, no preprocessing")
    ax.set_title(
        "Decode demo live and replayed: confounds (baseline 100x, drift 4x, 2 % runs, "
        "3 % spikes)\nwith online preprocessing, against the clean demo without it",
        fontsize=9,
    )
    ax.legend(loc="lower right", fontsize=8)
    ax.set_ylim(0, 1.45)
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--levels", type=float, nargs="+", default=[0.0, 0.5, 1.0, 2.0])
    p.add_argument("--n-train", type=int, default=120)
    p.add_argument("--n-test", type=int, default=60)
    p.add_argument("--n-voxels", type=int, default=1024)
    p.add_argument("--snr", type=float, default=0.1)
    p.add_argument("--scaling", default="zscore", choices=["zscore", "psc", "none"])
    p.add_argument("--quick", action="store_true", help="1 seed, levels 0 and 1")
    p.add_argument("--out", type=Path, default=REPO / "docs")
    p.add_argument("--live", action="store_true", help="the demo live and replayed (see above)")
    p.add_argument("--sessions", type=Path, default=Path("/tmp/bench_preprocess"))
    p.add_argument(
        "--reuse", action="store_true", help="--live: reuse the sessions already in --sessions"
    )
    args = p.parse_args(argv)
    if args.live:
        table = live_table(args.sessions, args.out / "bench_preprocess_live.png", args.reuse)
        print(table)
        write_bench_doc(
            args.out,
            "bench_preprocess_live",
            "Online preprocessing through the whole pipeline: the decode demo",
            "`python tools/bench_preprocess.py --live` (see its docstring). Latent r on the "
            "demo's 24 test trials (2 participants x 1024 voxels, SNR 0.1); the reference is "
            "the confound-free demo without preprocessing, live (for the live rows) or its "
            "recording replayed (for the replay rows). Confounds: the demo's (baseline 100x "
            "the evoked SD, drift 4x, 2 % run-to-run change, 3 % spikes on 2 % of volumes).",
            table,
            "latent r live and replayed",
        )
        return 0
    if args.quick:
        args.seeds, args.levels = 1, [0.0, 1.0]
    settings = replace(PreprocessSettings(), scaling=args.scaling)
    started = time.perf_counter()
    rows = []
    for level in args.levels:
        raw, pre, cens = [], [], []
        for seed in range(args.seeds):
            session = simulate_session(
                seed, scaled_confounds(level), args.n_train, args.n_test, args.n_voxels, args.snr
            )
            raw.append(decode(session, None)[0])
            r, n = decode(session, settings)
            pre.append(r)
            cens.append(n)
            print(f"level {level:g} seed {seed}: raw {raw[-1]:.3f} pre {r:.3f}", file=sys.stderr)
        rows.append((level, np.array(raw), np.array(pre), float(np.mean(cens))))
    reference = rows[0][1] if rows[0][0] == 0 else None
    lines = [
        f"latent r on {args.n_test} test trials, 2 subjects x {args.n_voxels} voxels, SNR "
        f"{args.snr:g}, mean over {args.seeds} seeds; ratios per seed, then averaged",
        "",
        "| confounds (x realistic) | raw r | preprocessed r | raw / reference | preprocessed / "
        "reference | preprocessed / clean preprocessed | censored volumes per session |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    clean_pre = rows[0][2] if rows[0][0] == 0 else None
    for level, raw, pre, cens in rows:
        ratio_raw = np.mean(raw / reference) if reference is not None else math.nan
        ratio_pre = np.mean(pre / reference) if reference is not None else math.nan
        ratio_own = np.mean(pre / clean_pre) if clean_pre is not None else math.nan
        lines.append(
            f"| {level:g} | {raw.mean():.3f} | {pre.mean():.3f} | {ratio_raw:.3f} | "
            f"{ratio_pre:.3f} | {ratio_own:.3f} | {cens:.1f} |"
        )
    lines += ["", "Cost of one update (one subject), early and late in a 3000-volume run:", ""]
    lines.append(cost_table(args.n_voxels))
    table = "\n".join(lines)
    print(table)
    print(f"({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    if reference is not None and not args.quick:
        figure(rows, reference, args.out / "bench_preprocess.png")
        write_bench_doc(
            args.out,
            "bench_preprocess",
            "Online preprocessing against scanner confounds",
            "`python tools/bench_preprocess.py` (see its docstring for the setup).",
            table,
            "latent r against confound level",
        )
    return 0


def figure(rows: list, reference: np.ndarray, path: Path) -> None:
    """Ratio of latent r to the clean raw r against confound level, raw and preprocessed."""
    levels = [r[0] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    for k, (label, colour) in enumerate((("raw (today)", "tab:red"), ("preprocessed", "tab:blue"))):
        ratios = np.array([r[1 + k] / reference for r in rows])
        ax.errorbar(
            levels,
            ratios.mean(axis=1),
            yerr=ratios.std(axis=1) / math.sqrt(ratios.shape[1]),
            marker="o",
            color=colour,
            label=label,
            capsize=3,
        )
    ax.axhline(0.95, color="grey", ls="--", lw=1, label="goal with confounds (0.95)")
    ax.axhline(1.0, color="black", lw=0.5)
    ax.set_xlabel("confounds, x realistic (baseline 100x, drift 4x, 2 % runs, 3 % spikes)")
    ax.set_ylabel("latent r / clean raw latent r")
    ax.set_title("Decoding under scanner confounds, with and without preprocessing", fontsize=10)
    ax.legend(loc="lower left")
    save_figure(fig, path)


if __name__ == "__main__":
    sys.exit(main())
