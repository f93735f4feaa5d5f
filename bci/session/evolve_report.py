"""What an evolve session leaves behind: fitness per generation, the best images, the numbers.

Everything comes from the evolve node's checkpoint (``evolve/checkpoint.npz``), which holds the
whole history, across resumed runs too; so the report can be rebuilt offline from any session
folder with :func:`evolve_report`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from bci.evolve.checkpoint import CHECKPOINT, load_checkpoint
from bci.figures import plot_fitness, plot_image_grid
from bci.generators import load


def _number(x: float) -> float | None:
    """A JSON-safe rounded number (None for NaN or infinity)."""
    return round(float(x), 3) if math.isfinite(x) else None


def evolve_report(out: str | Path, config: dict) -> dict:
    """Build the evolve part of ``summary.json`` and write ``fitness.png`` and ``best.png``.

    Parameters
    ----------
    out : str | Path
        The session folder.
    config : dict
        The session's validated config.

    Returns
    -------
    dict
        ``generations``, ``evaluations``, ``missing`` and ``fitness`` (per-generation ``mean``
        and ``max`` lists, ``best``, ``reference_mean``), responses in spikes/s.
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
    if not history:
        return report
    unit = config["evolve"]["unit"]
    plot_fitness(
        out / "fitness.png",
        means,
        maxima,
        reference=reference_mean,
        title=f"{config['evolve']['optimizer']}: response of "
        f"{'the mean unit' if unit < 0 else f'unit {unit}'} (spikes/s) per generation",
    )
    gen = config["generator"]
    generator = load(gen["spec"], device=None if gen["device"] == "auto" else gen["device"])
    images = generator.render(np.stack([h["best_latent"] for h in history]))
    plot_image_grid(
        out / "best.png",
        images,
        [f"gen {h['generation']}: {h['max']:.0f}" for h in history],
        title="best image of each generation (response in spikes/s)",
    )
    return report
