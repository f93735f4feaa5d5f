"""``bci-session``: run a closed-loop session from a TOML config.

Examples
--------
    bci-session --mode decode --config configs/demo-decode.toml
    bci-session --mode decode --config configs/demo-decode.toml --out sessions/s01 --duration 60
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from bci.session.config import MODES, load_config
from bci.session.schema import ConfigError

log = logging.getLogger("bci.session")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bci-session", description=__doc__.split("\n\n")[0])
    p.add_argument("--mode", choices=MODES, required=True, help="decode (HYPER) or evolve (XDream)")
    p.add_argument("--config", type=Path, required=True, help="session config (TOML)")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="session folder (default: sessions/<mode>-<date>-<time>)",
    )
    p.add_argument(
        "--duration",
        type=float,
        default=0.0,
        help="stop after this many seconds (default: when the schedule is done)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``bci-session``; returns the process exit code."""
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        config = load_config(args.config)
    except ConfigError as err:
        print(f"bci-session: {err}", file=sys.stderr)
        return 2
    if config["session"]["mode"] != args.mode:
        log.info("--mode %s overrides [session] mode = %r", args.mode, config["session"]["mode"])
        config["session"]["mode"] = args.mode
    if args.duration < 0:
        print("bci-session: --duration must be >= 0", file=sys.stderr)
        return 2
    out = args.out or Path("sessions") / f"{args.mode}-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    from bci.session.run import run_session

    summary = run_session(config, out.resolve(), args.duration)
    print(f"session folder: {out}")
    print(f"ended: {summary['reason']} (exit code {summary['exit_code']})")
    for line in summary.get("headline", []):
        print(line)
    for error in summary["errors"]:
        print(f"error: {error}", file=sys.stderr)
    return int(summary["exit_code"])


if __name__ == "__main__":
    sys.exit(main())
