"""Run a session end to end: supervise the nodes, then build the mode's report and summary."""

from __future__ import annotations

import logging
from pathlib import Path

from bci.session.recording_report import recording_report
from bci.session.summary import write_summary
from bci.session.supervisor import Supervisor

log = logging.getLogger(__name__)


def _headline(mode: str, summary: dict) -> list[str]:
    lines = []
    if mode == "decode":
        t = summary.get("trials", {})
        lines.append(f"trials: {t.get('train', 0)} calibration, {t.get('test', 0)} test")
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


def run_session(config: dict, out: Path, duration_s: float = 0.0) -> dict:
    """Run one session in ``out``; return the summary (also written to ``summary.json``)."""
    mode = config["session"]["mode"]
    result = Supervisor(config, out, duration_s).run()
    report: dict = {}
    try:
        if mode == "decode":
            from bci.session.decode_report import decode_report

            report = decode_report(out, config)
        elif mode == "evolve":
            from bci.session.evolve_report import evolve_report

            report = evolve_report(out, config)
        if config.get("replay"):
            from bci.session.replay_report import replay_report

            report["replay"] = replay_report(out, config)
    except Exception as err:  # the summary must still be written
        log.exception("building the %s report failed", mode)
        result.errors.append(f"report failed: {type(err).__name__}: {err}")
        result.exit_code = result.exit_code or 1
    recording, lost = recording_report(out, config, result.statuses)
    if recording:
        report["recording"] = recording
    for error in lost:
        log.error("%s", error)
        result.errors.append(error)
        if not config["record"]["optional"]:
            result.exit_code = result.exit_code or 1
    summary = write_summary(out, mode, config, result, report)
    summary["headline"] = _headline(mode, summary)
    return summary
