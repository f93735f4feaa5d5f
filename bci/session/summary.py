"""``summary.json``: how the session went, in numbers a person and a test can check."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

from bci.config import SessionConfig
from bci.session.supervisor import SessionResult


def bus_drops(statuses: dict[str, dict]) -> dict[str, int]:
    """Messages lost per topic, from every node's last heartbeat.

    Counts sequence gaps seen by receivers and sends that failed on EVERY topics; LATEST topics
    that skip stale frames by design are not losses and are not counted.
    """
    drops: Counter[str] = Counter()
    for status in statuses.values():
        bus = status.get("bus", {})
        drops.update(bus.get("received", {}).get("dropped", {}))
        drops.update(bus.get("sent", {}).get("send_failed", {}))
    return dict(sorted(drops.items()))


def write_summary(
    out: Path, mode: str, config: SessionConfig, result: SessionResult, report: dict
) -> dict:
    """Write ``summary.json`` into the session folder and return it."""
    summary = {
        "mode": mode,
        "config": config.source,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "duration_s": round(result.duration_s, 2),
        "exit_code": result.exit_code,
        "reason": result.reason,
        **report,
        "dropped": bus_drops(result.statuses),
        "errors": result.errors,
        "nodes": {
            name: {**facts, "counters": result.statuses.get(name, {}).get("counters", {})}
            for name, facts in result.nodes.items()
        },
    }
    (Path(out) / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary
