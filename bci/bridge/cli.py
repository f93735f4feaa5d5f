"""``bci-scanner-bridge``: push the volumes a scanner exports to a folder to an LSL stream.

Examples
--------
    bci-scanner-bridge --watch /export/run1 --mask roi.nii.gz --tr 2
    bci-scanner-bridge --watch /export/run1 --mask roi.nii.gz --name sub-01 --timeout-s 60 -v

The stream
----------
Type ``fMRI``, one float32 channel per mask voxel (C order of the mask's nonzero indices,
labelled ``voxel-i-j-k``), nominal rate ``1/TR``; ``desc`` holds ``tr_s``, ``mask``,
``mask_shape``, ``voxel_order`` and ``folder``. The TR is ``--tr``, else the first volume's
header (NIfTI ``pixdim[4]``, DICOM RepetitionTime); with the header's TR the stream appears
only when the first volume is read. Each sample's time stamp is its acquisition time, estimated
as the :func:`pylsl.local_clock` time when the volume's file became complete (its modification
time on that clock, so a bridge that falls behind still stamps the volume when it was written;
``--stamp-from poll``: when the bridge saw it complete) minus ``--export-delay-s`` (the
console's reconstruction and export delay, 0.5-2 s at real consoles; measure it, see the
README; the acquisition time is not in the file); samples go out in acquisition order (see
:mod:`bci.bridge.folder` for the ordering and stamping rules). A volume with NaN/Inf in the
mask is pushed as it is, with a warning (the acquire node marks trials whose window holds NaN as
bad).

Triggers
--------
With ``--triggers NAME`` the bridge also emits the scanner's triggers: a ``trigger`` marker
(:mod:`bci.lsl.markers`, with ``volume``, the file's acquisition index) per volume on the LSL
marker stream ``NAME`` (type ``Markers``), stamped like the volume (its acquisition time), so a
session started with ``[trigger] source = "lsl"`` and ``stream = NAME`` starts each run on it.
A trigger reaches the session export delay + settle time after the acquisition it marks; the
session's ``[timing] lead_in_s`` must be longer. Only one bridge of a session emits triggers.

Head motion
-----------
Unless ``--no-motion``, every volume's rigid-body motion against the first volume (the run's
reference) is estimated with SimpleITK (:mod:`bci.bridge.motion`), the volume is realigned onto
the reference before masking (``--no-realign`` keeps it as it came), and the six parameters and
the framewise displacement go out on the companion stream ``NAME-motion``
(:mod:`bci.bridge.motion_outlet`), one sample per volume with the volume's time stamp.

LSL does not replay samples to an inlet that connects later, so until the stream's first
consumer connects the volumes are held (up to 256 MiB of samples, the oldest dropped beyond)
and then pushed in order with their own time stamps: files already in the folder at start, and
volumes that arrive before the session is up, are not lost. After that, volumes are pushed as
they complete, consumer or not.

Runs until Ctrl-C or SIGTERM (exit 0) or, with ``--timeout-s``, until no file has appeared or
changed for that long (exit 0). Bad arguments: one line on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import logging
import math
import signal
import sys
import threading
import time
from collections import deque
from pathlib import Path

import numpy as np
import pylsl

from bci.bridge.folder import POLL_S, SETTLE_S, FolderWatcher, ReadyVolume
from bci.bridge.motion_outlet import MotionOutlet
from bci.bridge.volumes import Mask, VolumeError, load_mask
from bci.logs import add_verbosity_argument, setup_logging
from bci.lsl.markers import encode_marker
from bci.lsl.streams import make_marker_outlet, make_outlet

PROG = "bci-scanner-bridge"
STREAM_TYPE = "fMRI"
DEFAULT_NAME = "bci-scanner"
HOLD_BYTES = 256 * 2**20
"""At most this much sample data is held while no consumer has connected yet."""
LINGER_S = 0.5
"""After the last push, stay this long before closing the outlet so the sample gets out."""

log = logging.getLogger(__spec__.name)  # the module name under python -m too, not __main__


class UsageError(Exception):
    """Bad arguments; the message is the one line printed after ``bci-scanner-bridge: ``."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line instead of argparse's usage + error
        raise UsageError(f"{message} (see --help)")


def default_source_id(name: str) -> str:
    """The source_id used when ``--source-id`` is not given: ``bci-scanner-bridge-NAME``."""
    return f"{PROG}-{name}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line (:class:`UsageError` on bad arguments)."""
    p = _Parser(
        prog=PROG,
        description=__doc__.split("\n\n")[0].replace("``", ""),  # plain text, not RST
        epilog="examples:\n" + __doc__.split("--------\n", 1)[1].split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--watch", type=Path, required=True, help="the scanner's export folder")
    p.add_argument("--mask", type=Path, required=True, help="ROI mask (3-D NIfTI)")
    p.add_argument("--tr", type=float, default=None, help="TR in s (default: from the header)")
    p.add_argument("--name", default=DEFAULT_NAME, help=f"LSL stream name ({DEFAULT_NAME})")
    p.add_argument("--source-id", default="", help=f"LSL source_id ({PROG}-NAME)")
    p.add_argument("--pattern", default=None, help="only read files matching this glob")
    p.add_argument(
        "--settle-s",
        type=float,
        default=SETTLE_S,
        help=f"a file must stop changing this long before it is read ({SETTLE_S})",
    )
    p.add_argument(
        "--timeout-s",
        type=float,
        default=None,
        help="exit once no new file has arrived for this long (default: run until stopped)",
    )
    p.add_argument("--no-motion", action="store_true", help="no motion estimate or stream")
    p.add_argument("--no-realign", action="store_true", help="estimate motion, do not realign")
    p.add_argument(
        "--export-delay-s",
        type=float,
        default=0.0,
        help="the console's delay from acquisition to a complete file, subtracted from every "
        "stamp (default 0; real consoles: 0.5-2 s)",
    )
    p.add_argument(
        "--stamp-from",
        choices=("mtime", "poll"),
        default="mtime",
        help="a volume is complete at its file's modification time (default; falls back to "
        "poll on whole-second file times) or when a poll first sees it complete",
    )
    p.add_argument(
        "--triggers",
        default="",
        metavar="STREAM",
        help="also emit a trigger marker per volume on this LSL marker stream",
    )
    add_verbosity_argument(p)  # -vv: one line per volume
    args = p.parse_args(argv)
    _check(args)
    return args


def _check(args: argparse.Namespace) -> None:
    if not args.watch.exists():
        raise UsageError(f"watch folder not found: {args.watch}")
    if not args.watch.is_dir():
        raise UsageError(f"--watch {args.watch} is not a folder")
    if args.tr is not None and not (math.isfinite(args.tr) and args.tr > 0):
        raise UsageError(f"--tr must be > 0 (got {args.tr})")
    if not (math.isfinite(args.settle_s) and args.settle_s >= 0):
        raise UsageError(f"--settle-s must be >= 0 (got {args.settle_s})")
    if args.timeout_s is not None and not (math.isfinite(args.timeout_s) and args.timeout_s > 0):
        raise UsageError(f"--timeout-s must be > 0 (got {args.timeout_s})")
    if not (math.isfinite(args.export_delay_s) and args.export_delay_s >= 0):
        raise UsageError(f"--export-delay-s must be >= 0 (got {args.export_delay_s})")
    if "'" in args.triggers:
        raise UsageError("--triggers cannot contain a quote")
    if not args.name:
        raise UsageError("--name must not be empty")
    args.source_id = args.source_id or default_source_id(args.name)
    if "'" in args.name or "'" in args.source_id:
        raise UsageError("--name and --source-id cannot contain a quote")


class Bridge:
    """Push :class:`ReadyVolume` objects to an LSL outlet, made once the TR is known.

    Parameters
    ----------
    mask : Mask
        Which voxels become channels.
    tr_s : float or None
        The TR; None to take it from the first volume's header.
    name, source_id : str
        The stream's identity.
    folder : Path
        The watched folder (for the stream's desc).
    export_delay_s : float
        Subtracted from the time a file became complete: the stamp is the acquisition time.
    triggers : str
        If not empty, a marker stream on which a trigger per volume is emitted.
    """

    def __init__(
        self,
        mask: Mask,
        tr_s: float | None,
        name: str,
        source_id: str,
        folder: Path,
        motion: MotionOutlet | None = None,
        *,
        export_delay_s: float = 0.0,
        triggers: str = "",
    ) -> None:
        self.mask, self.tr_s, self.name, self.source_id = mask, tr_s, name, source_id
        self.folder, self.motion = folder, motion
        self.export_delay_s = float(export_delay_s)
        self.trigger_outlet = (
            make_marker_outlet(triggers, node=f"scanner-bridge-{name}") if triggers else None
        )
        self.outlet: pylsl.StreamOutlet | None = None
        self.pushed = 0
        self.last_push = -math.inf
        self._warned_tr = self._warned_affine = self._warned_held = False
        self._said_holding = False
        self._held: deque[tuple[np.ndarray, np.ndarray | None, ReadyVolume]] = deque()
        self.max_held = max(1, HOLD_BYTES // (4 * mask.n_voxels))
        if tr_s is not None:
            self._open()

    @property
    def held(self) -> int:
        """How many volumes wait for a consumer."""
        return len(self._held)

    def _open(self) -> None:
        assert self.tr_s is not None
        desc = {
            "manufacturer": "bci scanner bridge",
            "tr_s": repr(self.tr_s),
            "mask": str(self.mask.path.resolve()),
            "mask_shape": "x".join(str(n) for n in self.mask.shape),
            "voxel_order": "C order of the mask's nonzero indices",
            "folder": str(self.folder.resolve()),
            "time_stamps": "acquisition: local_clock() when the volume's file became complete "
            "minus export_delay_s",
            "export_delay_s": repr(self.export_delay_s),
        }
        self.outlet = make_outlet(
            self.name,
            STREAM_TYPE,
            self.mask.n_voxels,
            1.0 / self.tr_s,
            self.source_id,
            labels=self.mask.labels(),
            desc=desc,
        )
        if self.motion is not None:
            self.motion.open(self.tr_s)

    def push(self, ready: ReadyVolume) -> bool:
        """Push one volume, or hold it while the stream has no consumer yet.

        Returns False (with one logged line) when the volume cannot be pushed.

        Raises
        ------
        UsageError
            The TR was to come from the header, and the first volume's header has none.
        """
        name, volume = ready.path.name, ready.volume
        data, motion = volume.data, None
        if self.motion is not None and volume.data.shape == self.mask.shape:
            data, motion = self.motion.process(name, volume)
        try:
            values = self.mask.apply(data)
        except VolumeError as err:
            log.error("%s: %s; skipped", name, err)
            return False
        if self.outlet is None:
            if volume.tr_s is None:
                raise UsageError(
                    f"{name} has no TR in its header (NIfTI pixdim[4] / DICOM "
                    "RepetitionTime); pass --tr"
                )
            self.tr_s = volume.tr_s
            self._open()
            log.info("TR %.4g s from the header of %s; stream %r is up", self.tr_s, name, self.name)
        self._check_header(name, volume.tr_s, volume.affine)
        bad = int(np.count_nonzero(~np.isfinite(values)))
        if bad:
            log.warning(
                "%s: NaN/Inf in %d of %d mask voxels; pushed as it is "
                "(the acquire node marks such trials bad)",
                name,
                bad,
                len(values),
            )
        self._held.append((values, motion, ready))
        if len(self._held) > self.max_held:
            _, _, dropped = self._held.popleft()
            if not self._warned_held:
                log.warning(
                    "no consumer yet and %d volumes held: dropping the oldest (%s first)",
                    self.max_held,
                    dropped.path.name,
                )
                self._warned_held = True
        self.release()
        return True

    def release(self) -> int:
        """Push the held volumes once the stream has had a consumer; how many were pushed."""
        if not self._held or self.outlet is None:
            return 0
        # Held only until the first consumer: after that, pushed consumer or not (a session that
        # ends must not make the bridge hold, and then lose, the volumes and motion that follow).
        if self.pushed == 0 and not self.outlet.have_consumers():
            if not self._said_holding:
                log.info("no consumer on %r yet; holding volumes until one connects", self.name)
                self._said_holding = True
            return 0
        if self._said_holding and self.pushed == 0:
            log.info("a consumer connected; pushing %d held volumes", len(self._held))
        n = 0
        while self._held:
            values, motion, ready = self._held.popleft()
            stamp = ready.completed_at - self.export_delay_s
            self.outlet.push_chunk(values.reshape(1, -1), stamp)
            if motion is not None and self.motion is not None:
                self.motion.push(motion, stamp)
            if self.trigger_outlet is not None:
                self.trigger_outlet.push_sample(
                    [encode_marker("trigger", volume=ready.index)], stamp
                )
            self.pushed += 1
            n += 1
            log.debug(
                "%s: volume %d pushed, stamp %.3f",
                ready.path.name,
                ready.index,
                stamp,
            )
        self.last_push = pylsl.local_clock()
        return n

    def _check_header(self, name: str, tr_s: float | None, affine: np.ndarray | None) -> None:
        assert self.tr_s is not None
        if tr_s is not None and not self._warned_tr and abs(tr_s - self.tr_s) > 0.01 * self.tr_s:
            log.warning(
                "%s: header TR %.4g s differs from the stream's %.4g s; keeping %.4g s",
                name,
                tr_s,
                self.tr_s,
                self.tr_s,
            )
            self._warned_tr = True
        if (
            affine is not None
            and not self._warned_affine
            and not np.allclose(affine, self.mask.affine, atol=1e-3)
        ):
            log.warning(
                "%s: voxel-to-world affine differs from the mask's; is the mask on this "
                "scan's grid?",
                name,
            )
            self._warned_affine = True


def _start_line(args: argparse.Namespace, mask: Mask) -> str:
    tr = f"TR {args.tr:.4g} s" if args.tr is not None else "TR from the first volume's header"
    shape = "x".join(str(n) for n in mask.shape)
    return (
        f"watching {args.watch} (existing files first): mask {args.mask} "
        f"({mask.n_voxels} voxels of {shape}), {tr}, LSL stream {args.name!r} "
        f"(type {STREAM_TYPE}, source_id {args.source_id!r})"
    )


def run(args: argparse.Namespace, mask: Mask, stop: threading.Event) -> int:
    """The bridge loop: poll the folder, push what is ready; returns the exit code."""
    clock = pylsl.local_clock
    watcher = FolderWatcher(
        args.watch,
        pattern=args.pattern,
        settle_s=args.settle_s,
        clock=clock,
        use_mtime=args.stamp_from == "mtime",
    )
    motion = None
    if not args.no_motion:
        motion = MotionOutlet(args.name, args.source_id, realign=not args.no_realign)
    bridge = Bridge(
        mask,
        args.tr,
        args.name,
        args.source_id,
        args.watch,
        motion,
        export_delay_s=args.export_delay_s,
        triggers=args.triggers,
    )
    log.info(_start_line(args, mask))
    try:
        while not stop.is_set():
            for ready in watcher.poll():
                bridge.push(ready)
            bridge.release()
            if args.timeout_s is not None and clock() - watcher.last_activity >= args.timeout_s:
                log.info("no new volume for %.4g s; stopping", args.timeout_s)
                break
            stop.wait(POLL_S)
        for ready in watcher.flush():
            bridge.push(ready)
        bridge.release()
    except UsageError as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return 2
    linger = bridge.last_push + LINGER_S - clock()
    if linger > 0:  # a sample pushed just now needs a moment to reach the inlets
        time.sleep(linger)
    if bridge.held:
        log.warning("%d volumes were never pushed: no consumer connected", bridge.held)
    log.info("stopped: %d volumes pushed to %r", bridge.pushed, args.name)
    return 0


def _install_signals(stop: threading.Event) -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())


def main(argv: list[str] | None = None, stop: threading.Event | None = None) -> int:
    """Entry point of ``bci-scanner-bridge``; returns the process exit code.

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default ``sys.argv[1:]``).
    stop : threading.Event, optional
        Set it to stop the bridge (SIGINT/SIGTERM set it when running in the main thread).
    """
    try:
        args = parse_args(argv)
        setup_logging(args.verbose)
        mask = load_mask(args.mask)
    except (UsageError, VolumeError) as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return 2
    stop = stop or threading.Event()
    _install_signals(stop)
    return run(args, mask, stop)


if __name__ == "__main__":
    sys.exit(main())
