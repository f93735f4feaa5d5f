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
import json
import sys
import time
from pathlib import Path

from bci.config import ConfigError, SessionConfig
from bci.logs import add_verbosity_argument, flush_and_exit, setup_logging
from bci.session.config import MODES, load_config, resumed_config, with_replay

MAX_DURATION_S = 86400.0
"""``--duration`` at most a day, as ``[session] duration_s``."""


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


def session_config(args: argparse.Namespace) -> SessionConfig:
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
        config = resumed_config(args.resume)
        done = finished(args.resume, config)
        if done:
            raise ConfigError(
                f"cannot resume {args.resume}: the session is finished ({done}); "
                "start a new one with --config"
            )
        return config
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


def finished(folder: Path, config: SessionConfig) -> str:
    """Why the evolve session in ``folder`` is finished ('' when it is not).

    It is when its checkpoint holds every generation the config asks for, or when its summary
    says its schedule was done.

    Raises
    ------
    ConfigError
        The folder's checkpoint is damaged (one line naming it).
    """
    from bci.evolve.checkpoint import CHECKPOINT, load_checkpoint  # numpy, scipy, cma: slow

    try:
        history = load_checkpoint(folder / CHECKPOINT)["history"]
    except FileNotFoundError:
        history = []  # stopped before its first generation
    except ValueError as err:  # a damaged checkpoint: continuing from it would fail in a node
        raise ConfigError(f"cannot resume {folder}: {err}") from None
    if len(history) >= config.evolve.generations:
        return f"{len(history)} of {config.evolve.generations} generations done"
    try:
        reason = json.loads((folder / "summary.json").read_text()).get("reason")
    except (OSError, ValueError, AttributeError):
        reason = None
    return f"summary.json: {reason}" if reason == "schedule done" else ""


def check_mode(config: SessionConfig, mode: str) -> None:
    """Refuse a ``--mode`` that is not the mode the config declares (``[session] mode``).

    A decode config has a scanner's timings and no ``[evolve]`` table; run as evolve it would run
    for minutes and mean nothing.
    """
    if config.session.mode != mode:
        raise ConfigError(
            f"--mode {mode} but {config.source} is a {config.session.mode} config "
            f"([session] mode = {config.session.mode!r}): run --mode {config.session.mode}, or "
            f"set [session] mode = {mode!r} in the config"
        )


def check_model_file(config: SessionConfig) -> None:
    """Refuse a decode session's ``[model] path`` that is missing or not a usable model.

    An empty path asks the session to fit the model from its calibration run and write it to
    ``model.npz`` in the session folder; a path names a model that must exist (it is never fitted
    and written there).

    Raises
    ------
    ConfigError
        One line naming the file: it does not exist, is not a decoding model, or holds NaN or
        Inf weights.
    """
    path = config.model.path
    if config.session.mode != "decode" or not path:
        return
    if not Path(path).is_file():
        raise ConfigError(
            f"[model] path {path} does not exist (leave path empty to fit the model from the "
            "calibration run)"
        )
    from bci.decode.model import load_decoding_model

    try:
        load_decoding_model(path)
    except (OSError, ValueError) as err:
        raise ConfigError(f"[model] {err}") from None


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``bci-session``; returns the process exit code.

    Run as the program (``argv`` None), it ends the process once a session's summary is
    written (:func:`bci.logs.flush_and_exit`), without the interpreter's slow teardown.
    """
    args = parse_args(argv)
    setup_logging(args.verbose)
    try:
        config = session_config(args)
        check_mode(config, args.mode)
    except ConfigError as err:
        print(f"bci-session: {err}", file=sys.stderr)
        return 2
    if not (0 <= args.duration <= MAX_DURATION_S):
        print(
            f"bci-session: --duration must be >= 0 and <= {MAX_DURATION_S:g}, got {args.duration}",
            file=sys.stderr,
        )
        return 2
    try:
        check_model_file(config)
    except ConfigError as err:
        print(f"bci-session: {err}", file=sys.stderr)
        return 2
    out = args.resume or args.out
    out = out or Path("sessions") / f"{args.mode}-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # a file in the way, a read-only disk, no permission
        print(f"bci-session: cannot make the session folder {out}: {err.strerror}", file=sys.stderr)
        return 2
    from bci.bus import BusConfigError
    from bci.bus.publisher import deliver_queued
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
    if argv is None:  # the program itself (not a call from Python): its files are written
        deliver_queued()
        flush_and_exit(int(summary["exit_code"]))
    return int(summary["exit_code"])


if __name__ == "__main__":
    sys.exit(main())
