"""``python -m bci.replay FILE [--speed X] [--stream NAME ...] [--list]``: replay on LSL.

``--list`` prints the recording's streams (name, type, channels, rate, samples, duration) and
the ones that cannot be used, with the reason, and exits. Otherwise the streams are replayed
until the end with a progress bar; Ctrl-C stops the replay and withdraws the outlets.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from tqdm import tqdm

from bci.io.recording import read_recording
from bci.io.streams import Recording
from bci.logs import add_verbosity_argument, setup_logging
from bci.replay.player import ReplayPlayer

log = logging.getLogger(__spec__.name)  # the module name under python -m too, not __main__


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bci.replay",
        description="Re-publish the streams of a recording (XDF, FIF, EDF, ...) as LSL outlets.",
    )
    parser.add_argument("file", help="the recording")
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="replay speed: 1 real time (default), 2 twice as fast, 0 all at once",
    )
    parser.add_argument(
        "--stream",
        action="append",
        metavar="NAME",
        help="replay only this stream (repeat for several; default: all)",
    )
    parser.add_argument("--list", action="store_true", help="list the streams and exit")
    add_verbosity_argument(parser)
    return parser


def format_listing(recording: Recording) -> str:
    """The ``--list`` table of a recording's streams and of the skipped ones."""
    lines = [
        f"{recording.path.name}: {len(recording.streams)} streams, "
        f"{recording.duration_s:.3f} s"
        + (f", {len(recording.skipped)} skipped" if recording.skipped else "")
    ]
    rows = [("name", "type", "channels", "rate", "samples", "duration")]
    for s in recording.streams:
        rate = f"{s.nominal_srate:g} Hz" if s.nominal_srate > 0 else "irregular"
        rows.append(
            (
                s.name,
                s.type,
                f"{s.n_channels} x {s.channel_format}",
                rate,
                str(s.n_samples),
                f"{s.duration_s:.3f} s",
            )
        )
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    for row in rows:
        lines.append("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    if recording.skipped:
        lines.append("skipped:")
        lines.extend(f"  {what}: {why}" for what, why in recording.skipped)
    return "\n".join(line.rstrip() for line in lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (130 after Ctrl-C)."""
    args = _parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        recording = read_recording(args.file)
        if args.list:
            print(format_listing(recording))
            return 0
        player = ReplayPlayer(recording, speed=args.speed, streams=args.stream)
    except (OSError, ValueError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"error: {message}", file=sys.stderr)
        return 2
    with player:
        print(
            f"replaying {len(player.streams)} streams of {recording.path.name} "
            f"({player.duration_s:.1f} s at speed {args.speed:g}); Ctrl-C stops",
            file=sys.stderr,
        )
        with tqdm(total=player.n_samples, unit="sample", file=sys.stderr) as bar:
            try:
                player.play(on_push=bar.update)
            except KeyboardInterrupt:
                bar.close()
                print(
                    f"stopped after {player.n_pushed} of {player.n_samples} samples",
                    file=sys.stderr,
                )
                return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
