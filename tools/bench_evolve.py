"""Benchmark the evolve optimisers offline: default generator + in-silico units, no display, no LSL.

For every in-silico unit (preferring the render of a random latent), repeat, noise level and
method, one optimiser run gets a budget of evaluations (3000 by default, whole generations only:
``budget // population_size`` of them). Each image's score is the unit's noise-free rate times
multiplicative noise, ``observed = rate * max(0, 1 + sigma * N(0, 1))`` (Wang & Ponce, GECCO
2022). Reported per run is the **normalized activation**: the mean noise-free rate of the last
evaluated population, divided by the best noise-free rate reached for that unit by any image of
any method and run. Cells are mean ± s.e.m. over units × repeats.

Methods: the genetic algorithm with XDream's defaults, the genetic algorithm with the Ponce lab
preset, CMA-ES (pycma, population 40, ``--sigma0``) and random search::

    python tools/bench_evolve.py                     # 4 units x 1 repeat, 3000 evaluations
    python tools/bench_evolve.py --repeats 3         # the fuller run (about 3x as long)
    python tools/bench_evolve.py --quick             # smoke run, well under a minute

Rendering dominates (about 4 ms per 64 px image on one CPU core), so the noise-free rate of
every latent is cached within a repeat: random search asks the same latents at every noise
level and for every unit (its asks do not depend on the scores), and every method's conserved
elites are re-shown each generation. Progress goes to stderr; the tables go to stdout.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from bci.evolve import GeneticOptimizer, Optimizer, make_optimizer
from bci.generators import load
from bci.sim.neurons import InSilicoPopulation

REPO = Path(__file__).resolve().parents[1]


def method_factories(latent_dim: int, sigma0: float) -> dict[str, Callable[[int], Optimizer]]:
    """The compared optimisers, each built from a seed."""
    return {
        "GA (XDream)": lambda seed: make_optimizer("genetic", latent_dim, random_state=seed),
        "GA (Ponce)": lambda seed: GeneticOptimizer.preset("ponce", latent_dim, random_state=seed),
        "CMA-ES": lambda seed: make_optimizer(
            "cmaes", latent_dim, sigma0=sigma0, random_state=seed
        ),
        "random": lambda seed: make_optimizer("random", latent_dim, random_state=seed),
    }


class CachedRates:
    """Noise-free rates of every unit for latents, rendering each distinct latent once."""

    def __init__(self, gen, units: InSilicoPopulation) -> None:
        self.gen, self.units = gen, units
        self.cache: dict[bytes, np.ndarray] = {}
        self.rendered = 0

    def clear(self) -> None:
        self.cache.clear()

    def __call__(self, latents: np.ndarray) -> np.ndarray:
        keys = [row.tobytes() for row in latents]
        todo = {k: i for i, k in enumerate(keys) if k not in self.cache}
        if todo:
            rows = np.array(list(todo.values()))
            rates = self.units.rates(self.gen.render(latents[rows]))
            self.rendered += len(rows)
            for k, r in zip(todo, rates, strict=True):
                self.cache[k] = r
        return np.stack([self.cache[k] for k in keys])


def run_once(
    opt: Optimizer,
    rates: CachedRates,
    unit: int,
    sigma: float,
    budget: int,
    rng: np.random.Generator,
) -> dict:
    """One optimisation run; returns per-generation mean rates, the last population's, etc."""
    n_gen = budget // opt.population_size
    curve = np.empty(n_gen)
    best_seen = 0.0
    for g in range(n_gen):
        z = opt.ask()
        clean = rates(z)[:, unit]
        noise = np.maximum(0.0, 1.0 + sigma * rng.standard_normal(len(clean)))
        opt.tell(z, clean * noise)
        curve[g] = clean.mean()
        best_seen = max(best_seen, float(clean.max()))
    best_told = float(rates(opt.best_latent[None, :])[0, unit])
    return {
        "final": curve[-1],
        "curve": curve,
        "evals": (np.arange(n_gen) + 1) * opt.population_size,
        "best_seen": best_seen,
        "best_told": best_told,
    }


def mean_sem(values: np.ndarray) -> tuple[float, float]:
    v = np.asarray(values, dtype=np.float64)
    sem = float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else float("nan")
    return float(v.mean()), sem


def markdown_table(
    title: str, cells: dict[str, dict[float, np.ndarray]], sigmas: list[float]
) -> list[str]:
    lines = [f"**{title}**", "", "| method | " + " | ".join(f"σ = {s:g}" for s in sigmas) + " |"]
    lines.append("|---|" + "---|" * len(sigmas))
    for method, by_sigma in cells.items():
        parts = []
        for s in sigmas:
            m, e = mean_sem(by_sigma[s])
            parts.append(f"{m:.3f} ± {e:.3f}")
        lines.append(f"| {method} | " + " | ".join(parts) + " |")
    return lines


def ratio_table(cells: dict[str, dict[float, np.ndarray]], sigmas: list[float]) -> list[str]:
    pairs = [("GA (XDream)", "random"), ("GA (Ponce)", "random"), ("CMA-ES", "GA (XDream)")]
    pairs += [("CMA-ES", "GA (Ponce)")]
    lines = ["| ratio of means | " + " | ".join(f"σ = {s:g}" for s in sigmas) + " |"]
    lines.append("|---|" + "---|" * len(sigmas))
    for a, b in pairs:
        if a in cells and b in cells:
            r = [np.mean(cells[a][s]) / np.mean(cells[b][s]) for s in sigmas]
            lines.append(f"| {a} / {b} | " + " | ".join(f"{x:.2f}" for x in r) + " |")
    return lines


def plot(
    out: Path,
    cells: dict[str, dict[float, np.ndarray]],
    curves: dict[str, dict[float, list[tuple[np.ndarray, np.ndarray]]]],
    sigmas: list[float],
    subtitle: str,
) -> None:
    from bci.figures.backend import plt

    methods = list(cells)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    width = 0.8 / len(methods)
    x = np.arange(len(sigmas))
    for i, m in enumerate(methods):
        stats = [mean_sem(cells[m][s]) for s in sigmas]
        ax1.bar(
            x + (i - (len(methods) - 1) / 2) * width,
            [a for a, _ in stats],
            width,
            yerr=[b for _, b in stats],
            capsize=3,
            label=m,
        )
    ax1.set_xticks(x, [f"σ = {s:g}" for s in sigmas])
    ax1.set_ylabel("normalized activation (final population)")
    ax1.set_ylim(0, 1.05)
    ax1.legend(fontsize=8, loc="upper right")
    ax1.set_title("final population, mean ± s.e.m.")
    s_max = max(sigmas)
    for m in methods:
        runs = curves[m][s_max]
        evals = runs[0][0]
        mean_curve = np.mean([c for _, c in runs], axis=0)
        ax2.plot(evals, mean_curve, label=m)
    ax2.set_xlabel("evaluations")
    ax2.set_ylabel("normalized activation (population mean)")
    ax2.set_ylim(0, 1.05)
    ax2.set_title(f"population mean over the run, σ = {s_max:g}")
    ax2.legend(fontsize=8, loc="lower right")
    fig.suptitle(subtitle, fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=4, help="in-silico units (default 4)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per unit (default 1)")
    parser.add_argument("--budget", type=int, default=3000, help="evaluations per run")
    parser.add_argument("--sigmas", type=float, nargs="+", default=[0.0, 0.2, 0.5])
    parser.add_argument("--sigma0", type=float, default=0.3, help="CMA-ES initial step size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cpu", help="generator device (cpu, cuda, auto)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "bench_evolve.png")
    parser.add_argument(
        "--precision",
        choices=("bf16", "fp32"),
        default="bf16",
        help="generator precision (bf16: about 2.5x faster on the CPU; default)",
    )
    parser.add_argument("--methods", nargs="+", help="subset of the methods (default all)")
    parser.add_argument("--quick", action="store_true", help="2 units, 240 evaluations")
    args = parser.parse_args(argv)
    if args.quick:
        args.units, args.repeats, args.budget = 2, 1, 240
    if args.units < 1 or args.repeats < 1 or args.budget < 40:
        parser.error("need --units >= 1, --repeats >= 1 and --budget >= 40")

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    gen = load("default", device=None if args.device == "auto" else args.device)
    gen.batch_size = 64
    if gen.device.type == "cpu":  # about 1.4x faster for this decoder on the CPU
        gen.module.to(memory_format=torch.channels_last)
    if args.precision == "bf16":
        gen.dtype = torch.bfloat16
        gen.module.to(torch.bfloat16)
    units = InSilicoPopulation.from_generator(gen, args.units, seed=args.seed)
    rates = CachedRates(gen, units)
    factories = method_factories(gen.latent_dim, args.sigma0)
    if args.methods:
        unknown = sorted(set(args.methods) - set(factories))
        if unknown:
            parser.error(f"unknown methods {unknown}; known: {list(factories)}")
        factories = {m: f for m, f in factories.items() if m in args.methods}
    sigmas = list(args.sigmas)

    results: dict[tuple[str, float, int, int], dict] = {}
    total = len(factories) * len(sigmas) * args.units * args.repeats
    with tqdm(total=total, desc="bench_evolve", unit="run", file=sys.stderr) as bar:
        for r in range(args.repeats):
            rates.clear()
            for mi, (method, factory) in enumerate(factories.items()):
                for si, sigma in enumerate(sigmas):
                    for u in range(args.units):
                        noise = np.random.default_rng([args.seed, r, u, si, mi])
                        opt = factory(10_000 * args.seed + r)
                        results[method, sigma, u, r] = run_once(
                            opt, rates, u, sigma, args.budget, noise
                        )
                        bar.set_postfix_str(f"{method} σ={sigma:g} unit {u}")
                        bar.update()

    ceiling = np.zeros(args.units)
    for (_, _, u, _), res in results.items():
        ceiling[u] = max(ceiling[u], res["best_seen"])
    final: dict[str, dict[float, np.ndarray]] = {m: {} for m in factories}
    best: dict[str, dict[float, np.ndarray]] = {m: {} for m in factories}
    curves: dict[str, dict[float, list]] = {m: {} for m in factories}
    for m in factories:
        for s in sigmas:
            keys = [(m, s, u, r) for u in range(args.units) for r in range(args.repeats)]
            final[m][s] = np.array([results[k]["final"] / ceiling[k[2]] for k in keys])
            best[m][s] = np.array([results[k]["best_told"] / ceiling[k[2]] for k in keys])
            curves[m][s] = [
                (results[k]["evals"], results[k]["curve"] / ceiling[k[2]]) for k in keys
            ]
    elapsed = time.perf_counter() - t0

    setup = (
        f"{args.units} units × {args.repeats} repeats, {args.budget} evaluations per run, "
        f"CMA-ES sigma0 {args.sigma0:g}; {rates.rendered} images rendered ({args.precision}) on "
        f"{gen.device.type} in {elapsed:.0f} s"
    )
    lines = [f"bench_evolve: {setup}", ""]
    lines += markdown_table(
        "Normalized activation of the final population (noise-free mean rate / best rate "
        "reached for the unit)",
        final,
        sigmas,
    )
    lines += [""] + ratio_table(final, sigmas) + [""]
    lines += markdown_table(
        "Noise-free rate of the best-scored latent (best_latent), normalized the same way",
        best,
        sigmas,
    )
    peak = units.baseline_hz + units.peak_hz
    lines += ["", f"Rate at a unit's preferred image: {peak:g} Hz; best rate reached per unit: "]
    lines[-1] += ", ".join(f"{c:.2f}" for c in ceiling) + " Hz"
    print("\n".join(lines))
    plot(args.out, final, curves, sigmas, setup)
    print(f"\nwrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
