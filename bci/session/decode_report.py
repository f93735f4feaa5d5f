"""What a decode session leaves behind: decoded latents, summary numbers and figures.

Everything is computed from the session's bus log, so a report can be rebuilt offline from any
recorded session folder with :func:`decode_report`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bci import metrics
from bci.bus.log import read_bus_log
from bci.figures import plot_latency, plot_reconstructions
from bci.generators import load
from bci.stimulus_set import load_stimulus_set


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None, "n": 0}
    v = np.asarray(values, dtype=float)
    return {
        "p50": round(float(np.percentile(v, 50)), 3),
        "p95": round(float(np.percentile(v, 95)), 3),
        "p99": round(float(np.percentile(v, 99)), 3),
        "n": len(v),
    }


def decode_report(out: str | Path, config: dict) -> dict:
    """Build the decode part of ``summary.json`` and write latents and figures into ``out``.

    Parameters
    ----------
    out : str | Path
        The session folder (with ``bus/`` written by the record node).
    config : dict
        The session's validated config.

    Returns
    -------
    dict
        ``trials``, ``decoding``, ``latency_ms`` and ``bad_trials``.
    """
    out = Path(out)
    log = read_bus_log(out / "bus", topics=("responses", "latents", "events"))
    trials = {"train": set(), "test": set()}
    bad = 0
    for m in log:
        if m.topic == "responses":
            trials.get(m.meta.get("phase"), set()).add(m.meta.get("trial"))
            bad += bool(m.meta.get("bad"))
    decoded: dict[int, tuple[str, np.ndarray]] = {}
    skipped = 0
    for m in log:
        if m.topic == "latents" and m.kind == "latent" and m.arrays:
            trial, stimulus = m.meta.get("trial"), m.meta.get("stimulus")
            if type(trial) is not int or type(stimulus) is not str:
                skipped += 1  # not a decoded trial: it says neither which trial nor stimulus
                continue
            decoded[trial] = (stimulus, np.array(m.arrays[0]))
    latencies = [
        float(m.meta["latency_ms"])
        for m in log
        if m.topic == "events"
        and m.kind == "flip"
        and m.meta.get("what") == "reconstruction"
        and np.isfinite(m.meta.get("latency_ms", np.nan))
    ]
    report = {
        "trials": {"train": len(trials["train"]), "test": len(trials["test"])},
        "bad_trials": bad,
        "skipped_latents": skipped,
        "decoding": None,
        "latency_ms": _percentiles(latencies),
    }
    plot_latency(
        out / "latency.png",
        np.asarray(latencies),
        title=f"stimulus-to-screen latency of reconstructions (n = {len(latencies)})",
    )
    if not decoded:
        return report
    stimuli = load_stimulus_set(config["stimuli"]["path"])
    order = sorted(decoded)
    ids = [decoded[t][0] for t in order]
    z_hat = np.stack([decoded[t][1] for t in order]).astype(np.float32)
    z = stimuli.latents[[stimuli.index_of(i) for i in ids]]
    np.savez(
        out / "decoded_latents.npz",
        trial=np.asarray(order),
        stimulus=np.asarray(ids),
        decoded=z_hat,
        true=z,
    )
    gen = config["generator"]
    generator = load(gen["spec"], device=None if gen["device"] == "auto" else gen["device"])
    shown, recon = generator.render(z), generator.render(z_hat)
    decoding = {
        "n": len(order),
        "latent_correlation": float(metrics.latent_correlation(z_hat, z)),
        "latent_similarity": float(metrics.latent_similarity(z_hat, z)),
        "pixel_correlation": float(metrics.pixel_correlation(recon, shown)),
        "identification_2way": (
            float(metrics.identification_accuracy(z_hat, z, n_way=2)) if len(order) > 1 else None
        ),
    }
    report["decoding"] = {
        k: (round(v, 4) if isinstance(v, float) else v) for k, v in decoding.items()
    }
    plot_reconstructions(
        out / "reconstructions.png",
        shown,
        {"decoded": recon},
        title=f"test trials: stimuli (top), live reconstructions (bottom); "
        f"latent r = {decoding['latent_correlation']:.2f}",
    )
    return report
