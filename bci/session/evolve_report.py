"""What an evolve session leaves behind: fitness per generation, the best images, the numbers.

Everything comes from the evolve node's checkpoint (``evolve/checkpoint.npz``), which holds the
whole history, across resumed runs too; so the report can be rebuilt offline from any session
folder with :func:`evolve_report`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from bci.config import SessionConfig
from bci.evolve.checkpoint import CHECKPOINT, load_checkpoint
from bci.evolve.site_choice import PROBE
from bci.figures import plot_fitness, plot_image_grid, plot_probe
from bci.generators import load


def target_report(out: Path, config: SessionConfig) -> dict:
    """``target``: ``unit`` as configured, the ``sites`` evolved for, and the probe block's
    result (``probe``: every site's ``evoked_hz`` and ``score``, the ``metric``, ``n_trials``)
    when ``unit = "best"``; also writes ``probe.png``."""
    unit = config.evolve.unit
    report: dict = {"unit": unit, "sites": None, "probe": None}
    if unit == "best":
        path = out / PROBE
        if path.is_file():
            probe = json.loads(path.read_text())
            report.update(sites=probe["sites"], probe=probe)
            plot_probe(
                out / "probe.png",
                probe["evoked_hz"],
                probe["score"],
                probe["site"],
                title=f"probe block ({probe['n_trials']} trials): site {probe['site']} chosen "
                "for the most reliable visual response",
            )
    elif unit != -1:
        report["sites"] = unit if isinstance(unit, list) else [unit]
    return report


def _target_words(target: dict) -> str:
    sites = target["sites"]
    if sites is None:
        return "the mean of all sites" if target["unit"] == -1 else "no site (probe failed)"
    if len(sites) == 1:
        return f"site {sites[0]}" + (" (best of the probe)" if target["unit"] == "best" else "")
    return f"the mean of sites {', '.join(map(str, sites))}"


def _number(x: float) -> float | None:
    """A JSON-safe rounded number (None for NaN or infinity)."""
    return round(float(x), 3) if math.isfinite(x) else None


def evolve_report(out: str | Path, config: SessionConfig) -> dict:
    """Build the evolve part of ``summary.json`` and write ``fitness.png`` and ``best.png``.

    Parameters
    ----------
    out : str | Path
        The session folder.
    config : SessionConfig
        The session's validated config.

    Returns
    -------
    dict
        ``generations``, ``evaluations``, ``missing``, ``fitness`` (per-generation ``mean``
        and ``max`` lists, ``best``, ``reference_mean``), responses in spikes/s, and ``target``
        (:func:`target_report`).
    """
    out = Path(out)
    try:
        history = load_checkpoint(out / CHECKPOINT)["history"]
    except FileNotFoundError:
        history = []
    means = [float(h["mean"]) for h in history]
    maxima = [float(h["max"]) for h in history]
    references = np.concatenate([h["reference"] for h in history]) if history else np.empty(0)
    reference_mean = float(np.nanmean(references)) if np.isfinite(references).any() else math.nan
    best = max((m for m in maxima if math.isfinite(m)), default=math.nan)
    report = {
        "generations": len(history),
        "evaluations": int(sum(len(h["fitness"]) + len(h["reference"]) for h in history)),
        "missing": int(sum(h["missing"] for h in history)),
        "fitness": {
            "mean": [_number(m) for m in means],
            "max": [_number(m) for m in maxima],
            "best": _number(best),
            "reference_mean": _number(reference_mean),
        },
    }
    report["target"] = target_report(out, config)
    if not history:
        return report
    plot_fitness(
        out / "fitness.png",
        means,
        maxima,
        reference=reference_mean,
        title=f"{config.evolve.optimizer}: {_target_words(report['target'])}, spikes/s",
    )
    gen = config.generator
    generator = load(gen.spec, device=None if gen.device == "auto" else gen.device)
    images = generator.render(np.stack([h["best_latent"] for h in history]))
    plot_image_grid(
        out / "best.png",
        images,
        [f"gen {h['generation']}: {h['max']:.0f}" for h in history],
        title="best image of each generation (response in spikes/s)",
    )
    return report
