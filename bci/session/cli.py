"""``bci-session``: run a closed-loop session from a TOML config.

Examples
--------
    bci-session --mode decode --config configs/demo-decode.toml
    bci-session --mode decode --config configs/demo-decode.toml --out sessions/s01 --duration 60
    bci-session --mode evolve --config configs/demo-evolve.toml
    bci-session --mode evolve --resume sessions/evolve-20261201-101500
    bci-session --mode decode --replay sessions/decode-20261201-101500/recording.xdf --speed 0
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from bci.logs import add_verbosity_argument, setup_logging
from bci.session.config import MODES, load_config, resumed_config, with_replay
from bci.session.schema import ConfigError

log = logging.getLogger(__name__)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bci-session",
        description=__doc__.split("\n\n")[0].replace("``", ""),  # plain text, not RST
        epilog="examples:\n" + __doc__.split("--------\n", 1)[1].split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--mode", choices=MODES, required=True, help="decode (HYPER) or evolve (XDream)")
    p.add_argument("--config", type=Path, help="session config (TOML)")
    p.add_argument(
        "--resume",
        type=Path,
        metavar="SESSION_DIR",
        help="continue a stopped evolve session in its folder, with its config",
    )
    p.add_argument(
        "--replay",
        type=Path,
        metavar="FILE",
        help="re-publish a recording (XDF, or any file MNE reads) in place of the live sources; "
        "the config is --config, else the session.json beside FILE",
    )
    p.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="replay speed (1: as recorded; 0: as fast as possible)",
    )
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
    add_verbosity_argument(p)
    return p.parse_args(argv)


def session_config(args: argparse.Namespace) -> dict:
    """The validated config the arguments ask for: a new, a resumed or a replayed session.

    Raises
    ------
    ConfigError
        A one-line reason (conflicting arguments, an unreadable config or session folder).
    """
    if args.resume is not None:
        if args.config is not None or args.replay is not None:
            raise ConfigError("--resume takes the session's own config: drop --config/--replay")
        if args.mode != "evolve":
            raise ConfigError("--resume continues evolve sessions only")
        return resumed_config(args.resume)
    if args.replay is None:
        if args.config is None:
            raise ConfigError("give --config FILE (or --resume SESSION_DIR, --replay FILE)")
        return load_config(args.config)
    if not args.replay.is_file():
        raise ConfigError(f"recording not found: {args.replay}")
    if not (args.speed >= 0):
        raise ConfigError(f"--speed must be >= 0 (0: as fast as possible), got {args.speed}")
    folder = args.replay.resolve().parent
    if args.config is not None:
        config = load_config(args.config)
    elif (folder / "session.json").is_file():
        config = resumed_config(folder)
    else:
        raise ConfigError(
            f"--replay {args.replay}: no session.json beside it; give the session's --config"
        )
    return with_replay(config, args.replay.resolve(), args.speed)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``bci-session``; returns the process exit code."""
    args = parse_args(argv)
    setup_logging(args.verbose)
    try:
        config = session_config(args)
    except ConfigError as err:
        print(f"bci-session: {err}", file=sys.stderr)
        return 2
    if config["session"]["mode"] != args.mode:
        log.info("--mode %s overrides [session] mode = %r", args.mode, config["session"]["mode"])
        config["session"]["mode"] = args.mode
    if args.duration < 0:
        print("bci-session: --duration must be >= 0", file=sys.stderr)
        return 2
    out = args.resume or args.out
    out = out or Path("sessions") / f"{args.mode}-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    from bci.bus import BusConfigError
    from bci.session.run import run_session

    try:
        summary = run_session(config, out.resolve(), args.duration)
    except BusConfigError as err:  # e.g. a bus facing the network without keys
        print(f"bci-session: {err}", file=sys.stderr)
        return 2
    print(f"session folder: {out}")
    print(f"ended: {summary['reason']} (exit code {summary['exit_code']})")
    for line in summary.get("headline", []):
        print(line)
    for error in summary["errors"]:
        print(f"error: {error}", file=sys.stderr)
    return int(summary["exit_code"])


if __name__ == "__main__":
    sys.exit(main())
