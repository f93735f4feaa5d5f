"""Run a session end to end: supervise the nodes, then build the mode's report and summary."""

from __future__ import annotations

import importlib
import logging
import threading
from pathlib import Path

from bci.config import SessionConfig
from bci.session.recording_report import recording_report
from bci.session.remote import remote_headline
from bci.session.summary import write_summary
from bci.session.supervisor import Supervisor

log = logging.getLogger(__name__)


def _headline(mode: str, summary: dict) -> list[str]:
    lines = []
    if mode == "decode":
        t = summary.get("trials", {})
        lines.append(
            f"trials used: {t.get('train', 0)} calibration, {t.get('test', 0)} test; "
            f"{summary.get('bad_trials', 0)} could not be used"
        )
        for run in summary.get("runs", []):
            received = "/".join(str(v) for v in run["volumes_received"].values()) or "0"
            censored = "/".join(
                str(sum(c.values())) for c in run.get("censored_volumes", {}).values()
            )
            lines.append(
                f"run {run['run']} ({run['phase']}): {run['trials_used']}/{run['trials']} trials "
                f"used, volumes received {received} of {run['volumes_expected']} expected"
                + (f", censored {censored}" if censored else "")
            )
        d = summary.get("decoding") or {}
        if d:
            lines.append(
                f"decoding: latent r {d['latent_correlation']:.3f}, similarity "
                f"{d['latent_similarity']:.3f}, pixel r {d['pixel_correlation']:.3f}, "
                f"2-way identification {d['identification_2way']}"
            )
        lat = summary.get("latency_ms", {})
        if lat.get("n"):
            lines.append(
                f"latency: p50 {lat['p50']} ms, p95 {lat['p95']} ms, "
                f"p99 {lat['p99']} ms (n = {lat['n']})"
            )
    replay = summary.get("replay")
    if replay:
        line = f"replay of {Path(replay['recording']).name} at speed {replay['speed']:g}"
        lost = sum(s["lost"] for s in replay.get("samples", {}).values())
        line += f" ({lost} samples lost)"
        if "max_latent_difference" in replay:
            line += (
                f": {replay['trials_compared']} trials compared with the live session, "
                f"max latent difference {replay['max_latent_difference']}"
            )
        if "max_fitness_difference" in replay:
            line += (
                f": {replay['generations_compared']} generations compared with the live "
                f"session, max fitness difference {replay['max_fitness_difference']}"
            )
        lines.append(line)
    if mode == "evolve":
        f = summary.get("fitness") or {}
        mean, maxima = f.get("mean") or [], f.get("max") or []
        lines.append(
            f"generations: {summary.get('generations', 0)}, evaluations "
            f"{summary.get('evaluations', 0)}, missing responses {summary.get('missing', 0)}"
        )
        target = summary.get("target") or {}
        if target.get("unit") == "best":
            lines.append(f"target: site(s) {target.get('sites')} chosen by the probe block")
        if mean:
            lines.append(
                f"fitness (spikes/s): mean {mean[0]} -> {mean[-1]}, max {maxima[0]} -> "
                f"{maxima[-1]}, best {f.get('best')}, reference images {f.get('reference_mean')}"
            )
    return lines


def replay_sample_counts(statuses: dict) -> dict[str, dict[str, int]]:
    """Per replayed participant stream: samples pushed by the replay, received by acquire, lost."""
    replay, acquire = statuses.get("replay", {}), statuses.get("acquire", {})
    received = acquire.get("received", {})
    out = {}
    for name, pushed in replay.get("pushed", {}).items():
        subject = replay.get("subjects", {}).get(name)
        if subject is None:
            continue
        got = int(received.get(str(subject), 0))
        out[name] = {"pushed": int(pushed), "received": got, "lost": max(int(pushed) - got, 0)}
    return out


REPORTS = {"decode": "bci.session.decode_report", "evolve": "bci.session.evolve_report"}


def _import_quietly(name: str) -> None:
    try:
        importlib.import_module(name)
    except Exception:  # the report imports it again and says why
        pass


def run_session(config: SessionConfig, out: Path, duration_s: float = 0.0) -> dict:
    """Run one session in ``out``; return the summary (also written to ``summary.json``).

    The mode's report (torch, matplotlib: about 2 s to import) is imported in the background
    while the session runs, so that the summary follows a Ctrl-C within the 5 s promised.
    """
    mode = config.session.mode
    preload = threading.Thread(target=_import_quietly, args=(REPORTS[mode],), daemon=True)
    preload.start()
    result = Supervisor(config, out, duration_s).run()
    preload.join()
    report: dict = {}
    try:
        if mode == "decode":
            from bci.session.decode_report import decode_report

            report = decode_report(out, config, result.statuses)
        elif mode == "evolve":
            from bci.session.evolve_report import evolve_report

            report = evolve_report(out, config)
        if config.replay is not None:
            from bci.session.replay_report import replay_report

            report["replay"] = replay_report(out, config)
            report["replay"]["samples"] = replay_sample_counts(result.statuses)
            answered = report.get("trials", {}).get("test") or report.get("generations")
            if not answered and not result.errors:
                what = "test trials decoded" if mode == "decode" else "generations evaluated"
                result.errors.append(f"replay: nothing replayed: 0 {what}")
                result.exit_code = result.exit_code or 1
            lost = sum(s["lost"] for s in report["replay"]["samples"].values())
            if lost:
                log.warning("the replay lost %d samples: %s", lost, report["replay"]["samples"])
    except Exception as err:  # the summary must still be written
        log.exception("building the %s report failed", mode)
        result.errors.append(f"report failed: {type(err).__name__}: {err}")
        result.exit_code = result.exit_code or 1
    recording, lost = recording_report(out, config, result.statuses, result.past_statuses)
    if recording:
        report["recording"] = recording
    for error in lost:
        log.error("%s", error)
        result.errors.append(error)
        if not config.record.optional:
            result.exit_code = result.exit_code or 1
    for run in report.get("runs", []):
        expected = run.get("volumes_expected")
        short = {s: n for s, n in run["volumes_received"].items() if expected and n < expected}
        if short:
            log.warning(
                "run %d: volumes received %s of %d expected from the triggers",
                run["run"],
                short,
                expected,
            )
    summary = write_summary(out, mode, config, result, report)
    summary["headline"] = _headline(mode, summary) + remote_headline(summary["nodes"])
    return summary
