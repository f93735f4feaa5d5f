"""What a decode session leaves behind: decoded latents, summary numbers and figures.

Everything is computed from the session's bus log, so a report can be rebuilt offline from any
recorded session folder with :func:`decode_report`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bci import metrics
from bci.bus.log import read_bus_log
from bci.config import SessionConfig
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


def _trial_use(log: list, subjects: set[int], decoded: set[int], fitted: int | None) -> dict:
    """Per trial (phase, trial): its run and, if it could not be used, why."""
    seen: dict[tuple[str, int], dict] = {}
    for m in log:
        if m.topic != "responses":
            continue
        key = (str(m.meta.get("phase")), int(m.meta.get("trial", -1)))
        entry = seen.setdefault(key, {"run": m.meta.get("run", 0), "bad": [], "subjects": set()})
        entry["subjects"].add(m.meta.get("subject"))
        if m.meta.get("bad"):
            entry["bad"].append(str(m.meta["bad"]))
    for (phase, trial), entry in seen.items():
        reasons = list(dict.fromkeys(entry["bad"]))
        missing = subjects - entry["subjects"]
        if missing and not reasons:
            reasons.append(f"no response from subject {', '.join(map(str, sorted(missing)))}")
        if phase == "test" and trial not in decoded and not reasons:
            reasons.append("not decoded")
        if phase == "train" and fitted == 0 and not reasons:
            reasons.append("not used: the model was not fitted in this session")
        entry["reason"] = "; ".join(reasons) or None
    return seen


def _runs(use: dict, acquired: list[dict]) -> list[dict]:
    """The ``runs`` table: acquire's per-run counts with the trials used and not used."""
    by_run: dict[int, dict] = {}
    for (phase, trial), entry in sorted(use.items(), key=lambda kv: kv[0][1]):
        run = by_run.setdefault(
            int(entry["run"] or 0), {"phase": phase, "trials": 0, "used": 0, "bad_trials": []}
        )
        run["trials"] += 1
        if entry["reason"] is None:
            run["used"] += 1
        else:
            run["bad_trials"].append({"trial": trial, "reason": entry["reason"]})
    out = []
    for k in sorted(set(by_run) | {int(r["run"]) for r in acquired}):
        acq = next((r for r in acquired if int(r["run"]) == k), {})
        mine = by_run.get(k, {"phase": acq.get("phase", ""), "trials": 0, "used": 0})
        out.append(
            {
                "run": k,
                "phase": mine["phase"] or acq.get("phase", ""),
                "trials": mine["trials"],
                "trials_used": mine["used"],
                "volumes_received": acq.get("volumes_received", {}),
                "volumes_expected": acq.get("volumes_expected"),
                "censored_volumes": acq.get("censored_volumes", {}),
                "triggers": acq.get("triggers", 0),
                "bad_trials": mine.get("bad_trials", []),
            }
        )
    return out


def decode_report(out: str | Path, config: SessionConfig, statuses: dict | None = None) -> dict:
    """Build the decode part of ``summary.json`` and write latents and figures into ``out``.

    Parameters
    ----------
    out : str | Path
        The session folder (with ``bus/`` written by the record node).
    config : SessionConfig
        The session's validated config.
    statuses : dict, optional
        The nodes' last heartbeats (acquire's holds the per-run volume counts).

    Returns
    -------
    dict
        ``trials`` (what was used: calibration trials the model was fitted on, or with every
        participant's usable response when the model came from a file; decoded test trials),
        ``bad_trials`` (how many trials could not be used), ``runs`` (per run: phase, trials,
        trials used, volumes received per subject and expected from the triggers, and each
        unusable trial with its reason, and the volumes the preprocessing censored per subject
        and reason), ``preprocess`` (per subject: the method, runs, volumes, censored volumes
        per reason, whether motion came with them), ``decoding`` and ``latency_ms``.
    """
    out = Path(out)
    log = read_bus_log(out / "bus", topics=("responses", "latents", "events"))
    decoded: dict[int, tuple[str, np.ndarray]] = {}
    skipped = 0
    for m in log:
        if m.topic == "latents" and m.kind == "latent" and m.arrays:
            trial, stimulus = m.meta.get("trial"), m.meta.get("stimulus")
            if type(trial) is not int or type(stimulus) is not str:
                skipped += 1  # not a decoded trial: it says neither which trial nor stimulus
                continue
            decoded[trial] = (stimulus, np.array(m.arrays[0]))
    fitting = [m for m in log if m.topic == "events" and m.kind == "model_fitting"]
    fitted = int(fitting[-1].meta.get("trials", 0)) if fitting else None
    subjects = {
        m.meta["subject"]
        for m in log
        if m.topic == "responses" and type(m.meta.get("subject")) is int
    }
    use = _trial_use(log, subjects, set(decoded), 0 if config.model.path else fitted)
    usable_train = sum(1 for (p, _), e in use.items() if p == "train" and e["reason"] is None)
    bad = sum(1 for e in use.values() if e["reason"] is not None)
    acquire = (statuses or {}).get("acquire", {})
    runs = _runs(use, acquire.get("runs", []))
    latencies = [
        float(m.meta["latency_ms"])
        for m in log
        if m.topic == "events"
        and m.kind == "flip"
        and m.meta.get("what") == "reconstruction"
        and np.isfinite(m.meta.get("latency_ms", np.nan))
    ]
    report = {
        "trials": {"train": fitted if fitted is not None else usable_train, "test": len(decoded)},
        "bad_trials": bad,
        "runs": runs,
        "preprocess": acquire.get("preprocess", {}),
        "skipped_latents": skipped,
        "decoding": None,
        "latency_ms": _percentiles(latencies),
    }
    plot_latency(
        out / "latency.png",
        np.asarray(latencies),
        title=f"volume-in to reconstruction-on-screen latency (n = {len(latencies)} test trials)",
    )
    if not decoded:
        return report
    stimuli = load_stimulus_set(config.stimuli.path)
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
    gen = config.generator
    generator = load(gen.spec, device=None if gen.device == "auto" else gen.device)
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
        f"latent r = {decoding['latent_correlation']:.2f} over all {len(order)}",
        trials=order,
    )
    return report
