"""Watch a scanner export folder and hand out complete volumes in acquisition order (no LSL).

:meth:`FolderWatcher.poll` lists the folder once (``os.scandir``) and returns the volumes that
may be pushed now, in index order. The rules:

Which files
    ``.nii``, ``.nii.gz``, ``.dcm``, ``.ima`` (any case), and names without an extension or
    whose extension is a number (DICOM files named by UID); or those matching ``pattern``
    (``fnmatch``) when one is given. Hidden files (``.name``) and ``DICOMDIR`` are ignored.
Complete
    A file is read once its size and modification time have stayed the same for ``settle_s``
    *and* it parses. A file that still fails to parse ``unreadable_s`` after it stopped
    changing is logged (one ERROR line naming the file and the reason) and set aside; it is
    tried again if it changes later.
Index
    DICOM: the header's InstanceNumber, else AcquisitionNumber, else the file name's; NIfTI:
    the file name's last number (``vol_0007.nii`` -> 7, ``001_000004_000012.dcm`` -> 12).
Order
    Volumes go out strictly in increasing index. A volume whose index is below the last one
    handed out is logged and dropped (out of order); an index seen before (or a file that
    changes after it was read) is logged and ignored (duplicate). When the next index is
    missing, the later volumes wait ``gap_s`` for it, then go out and the gap is logged;
    indices whose file was found unreadable are not waited for. The first volume handed out
    waits for nothing: numbering may start anywhere.
Files already there
    Files present when watching starts are taken like new ones: complete after ``settle_s``,
    then handed out in index order.
Time stamps
    ``ReadyVolume.completed_at`` is when the file's last byte was written, on ``clock()``: its
    modification time, moved onto ``clock()`` by the smallest delay between a file's
    modification time and the poll that first saw it at that size and time among the last
    :data:`MTIME_WINDOW` files (the clocks' offset, plus the shortest poll latency; so a stamp is
    never later than that poll). The bridge may fall behind for a while (motion registration, a
    loaded machine) and see files late; their stamps stay the acquisition's, not the bridge's.
    A constant skew between the file server's clock and this machine's cancels out, and a step
    of either clock (NTP) is forgotten after that many files. Where modification times are
    coarse (whole seconds, as on FAT or some network shares; or ``use_mtime=False``) the stamp
    is the poll's time instead, at most one poll interval after the last write when the bridge
    keeps up. The settle time is not added either way. Should a volume complete after a
    later-indexed one that is handed out with it, it gets the later one's time, so stamps never
    decrease.
"""

from __future__ import annotations

import enum
import fnmatch
import logging
import os
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bci.bridge.volumes import OversizeVolumeError, Volume, read_volume

POLL_S = 0.05
"""How often the folder is listed."""
SETTLE_S = 0.2
"""A file must keep its size and modification time this long before it is read."""
GAP_S = 1.0
"""How long later volumes wait for a missing index."""
UNREADABLE_S = 2.0
"""How long a file that stopped changing may stay unparsable before it is reported."""
MTIME_WINDOW = 32
"""Files over which the smallest write-to-poll delay sets the modification times' offset."""

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".dcm", ".ima")
_TRAILING_NUMBER = re.compile(r"(\d+)\D*$")


def is_volume_name(name: str, pattern: str | None = None) -> bool:
    """Whether a directory entry's name is one the watcher reads (see the module docstring)."""
    if name.startswith(".") or name.upper() == "DICOMDIR":
        return False
    if pattern is not None:
        return fnmatch.fnmatch(name, pattern)
    if name.lower().endswith(VOLUME_SUFFIXES):
        return True
    _, dot, suffix = name.rpartition(".")
    return not dot or suffix.isdigit()


def name_index(name: str) -> int | None:
    """The last number in a file name, extension left out (``vol_0007.nii.gz`` -> 7)."""
    for suffix in VOLUME_SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    match = _TRAILING_NUMBER.search(name)
    return int(match.group(1)) if match else None


def _ranges(indices: list[int]) -> str:
    """``[3, 4, 5, 8]`` -> ``"3-5, 8"``."""
    parts: list[str] = []
    start = prev = indices[0]
    for i in [*indices[1:], None]:
        if i is not None and i == prev + 1:
            prev = i
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if i is not None:
            start = prev = i
    return ", ".join(parts)


@dataclass(frozen=True)
class ReadyVolume:
    """A complete volume the watcher hands out, in acquisition order.

    Attributes
    ----------
    index : int
        Acquisition index.
    path : Path
        The file it was read from.
    volume : Volume
        Its data and header facts.
    completed_at : float
        ``clock()`` when the file became complete (see the module docstring).
    """

    index: int
    path: Path
    volume: Volume
    completed_at: float


class _State(enum.Enum):
    PENDING = "pending"  # not read yet, or not readable yet
    FAILED = "failed"  # reported unreadable; tried again if it changes
    DONE = "done"  # read: handed out, waiting to be, or dropped


@dataclass
class _File:
    signature: tuple[int, int]
    seen_at: float
    state: _State = _State.PENDING
    index: int | None = None


@dataclass(frozen=True)
class _Waiting:
    ready: ReadyVolume
    ready_at: float


class FolderWatcher:
    """Turn a folder's volume files into :class:`ReadyVolume` objects, in index order.

    Parameters
    ----------
    folder : str | Path
        The export folder.
    reader : callable
        ``reader(path) -> Volume``; raises (normally :class:`~bci.bridge.volumes.VolumeError`)
        while the file is incomplete or unreadable.
    pattern : str, optional
        Only names matching this glob are read (default: the volume-like names).
    settle_s, gap_s, unreadable_s : float
        See the module docstring.
    clock : callable
        Seconds on any monotonic clock (the bridge passes :func:`pylsl.local_clock`).
    use_mtime : bool
        Stamp volumes with their files' modification times (see the module docstring); False:
        with the time of the poll that saw them complete.
    logger : logging.Logger, optional
        Where the one-line reports go (default ``bci.bridge``).
    """

    def __init__(
        self,
        folder: str | Path,
        *,
        reader: Callable[[Path], Volume] = read_volume,
        pattern: str | None = None,
        settle_s: float = SETTLE_S,
        gap_s: float = GAP_S,
        unreadable_s: float = UNREADABLE_S,
        clock: Callable[[], float] = time.monotonic,
        use_mtime: bool = True,
        logger: logging.Logger | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.reader = reader
        self.pattern = pattern
        self.settle_s = float(settle_s)
        self.gap_s = float(gap_s)
        self.unreadable_s = float(unreadable_s)
        self.clock = clock
        self.log = logger or logging.getLogger(__name__)
        self.last_index: int | None = None
        """The index of the last volume handed out."""
        self.last_activity = clock()
        """``clock()`` when a file last appeared or changed (or when watching started)."""
        self._files: dict[str, _File] = {}
        self._waiting: dict[int, _Waiting] = {}
        self._handed_out: dict[int, str] = {}
        self._unreadable: set[int] = set()
        self._last_stamp = -float("inf")
        self._listing_error = ""
        self.use_mtime = bool(use_mtime)
        self._lags: deque[float] = deque(maxlen=MTIME_WINDOW)  # poll time - modification time

    @property
    def mtime_offset(self) -> float | None:
        """The smallest ``poll time - modification time`` of the last :data:`MTIME_WINDOW`
        files (None: none yet, or modification times not used)."""
        return min(self._lags) if self.use_mtime and self._lags else None

    # -- listing -------------------------------------------------------------------------

    def _list(self) -> dict[str, tuple[int, int]]:
        found: dict[str, tuple[int, int]] = {}
        try:
            with os.scandir(self.folder) as entries:
                for entry in entries:
                    if not is_volume_name(entry.name, self.pattern):
                        continue
                    try:
                        if not entry.is_file():
                            continue
                        st = entry.stat()
                    except OSError:
                        continue  # vanished between listing and stat
                    found[entry.name] = (st.st_size, st.st_mtime_ns)
        except OSError as err:
            reason = err.strerror or str(err)
            if reason != self._listing_error:
                self.log.error("cannot list %s: %s", self.folder, reason)
                self._listing_error = reason
            return {}
        self._listing_error = ""
        return found

    @staticmethod
    def _order(name: str) -> tuple[float, str]:
        index = name_index(name)
        return (float("inf") if index is None else index, name)

    # -- polling -------------------------------------------------------------------------

    def poll(self) -> list[ReadyVolume]:
        """List the folder once; the volumes that may be pushed now, in index order."""
        now = self.clock()
        listing = self._list()
        for name in [n for n in self._files if n not in listing]:
            del self._files[name]
        for name in sorted(listing, key=self._order):
            self._update(name, listing[name], now)
        return self._emit(now, wait=True)

    def flush(self) -> list[ReadyVolume]:
        """At exit: every volume still waiting for a gap, in order; files still incomplete
        are logged."""
        for name, f in sorted(self._files.items()):
            if f.state is _State.PENDING:
                self.log.warning("%s: still incomplete or unreadable at exit; not pushed", name)
        return self._emit(self.clock(), wait=False)

    @property
    def pending(self) -> list[str]:
        """Names of the files not read yet (still being written, or not parsable yet)."""
        return sorted(n for n, f in self._files.items() if f.state is _State.PENDING)

    def _update(self, name: str, signature: tuple[int, int], now: float) -> None:
        f = self._files.get(name)
        if f is None:
            self._files[name] = _File(signature, now)
            self.last_activity = now
            return
        if signature != f.signature:
            self.last_activity = now
            f.signature, f.seen_at = signature, now
            if f.state is _State.DONE:
                what = f"volume {f.index}" if f.index is not None else "it"
                self.log.warning("%s: changed after %s was read; ignored (duplicate)", name, what)
            else:
                f.state = _State.PENDING
            return
        if f.state is _State.PENDING and now - f.seen_at >= self.settle_s:
            self._read(name, f, now)

    def _read(self, name: str, f: _File, now: float) -> None:
        path = self.folder / name
        try:
            volume = self.reader(path)
        except Exception as err:  # the reader's VolumeError, or anything a damaged file causes
            final = isinstance(err, OversizeVolumeError)  # will never read: report it now
            if final or now - f.seen_at >= self.settle_s + self.unreadable_s:
                lines = str(err).strip().splitlines()
                reason = lines[0] if lines else type(err).__name__
                self.log.error("%s: unreadable (%s); skipped unless it changes", name, reason)
                f.state = _State.FAILED
                guess = name_index(name)
                if guess is not None:
                    self._unreadable.add(guess)
            return
        from_name = name_index(name)
        index = volume.index if volume.index is not None else from_name
        if index is None:
            self.log.error(
                "%s: no volume index (no number in the file name, no DICOM "
                "InstanceNumber/AcquisitionNumber); skipped unless it changes",
                name,
            )
            f.state = _State.FAILED
            return
        if from_name is not None and volume.index is not None and from_name != volume.index:
            self.log.debug("%s: header index %d, not the name's %d", name, index, from_name)
        f.state, f.index = _State.DONE, index
        self._classify(ReadyVolume(index, path, volume, self._completed_at(name, f)), now)

    def _completed_at(self, name: str, f: _File) -> float:
        """When the file's last byte was written, on ``clock()`` (see the module docstring)."""
        mtime_ns = f.signature[1]
        if self.use_mtime and mtime_ns % 10**9 == 0:
            self.use_mtime = False
            self.log.info(
                "%s: modification times in whole seconds; volumes are stamped when they are "
                "seen complete",
                name,
            )
        if not self.use_mtime:
            return f.seen_at
        mtime = mtime_ns / 1e9
        self._lags.append(f.seen_at - mtime)
        return mtime + min(self._lags)

    def _classify(self, ready: ReadyVolume, now: float) -> None:
        name, index = ready.path.name, ready.index
        earlier = self._handed_out.get(index)
        if earlier is None and index in self._waiting:
            earlier = self._waiting[index].ready.path.name
        if earlier is not None:
            self.log.warning("%s: duplicate of volume %d (%s); ignored", name, index, earlier)
        elif self.last_index is not None and index < self.last_index:
            self.log.warning(
                "%s: volume %d arrived after volume %d; dropped (out of order)",
                name,
                index,
                self.last_index,
            )
        else:
            self._unreadable.discard(index)
            self._waiting[index] = _Waiting(ready, now)

    def _emit(self, now: float, *, wait: bool) -> list[ReadyVolume]:
        out: list[ReadyVolume] = []
        while self._waiting:
            index = min(self._waiting)
            waiting = self._waiting[index]
            skipped: list[int] = []
            if self.last_index is not None:
                skipped = list(range(self.last_index + 1, index))
                missing = [i for i in skipped if i not in self._unreadable]
                if wait and missing and now - waiting.ready_at < self.gap_s:
                    break
            if skipped:
                self.log.warning(
                    "gap: no volume %s before %s (volume %d); pushing on",
                    _ranges(skipped),
                    waiting.ready.path.name,
                    index,
                )
            del self._waiting[index]
            stamp = min(
                [waiting.ready.completed_at]
                + [w.ready.completed_at for w in self._waiting.values()]
            )
            stamp = max(stamp, self._last_stamp)
            ready = waiting.ready
            if stamp != ready.completed_at:
                ready = ReadyVolume(ready.index, ready.path, ready.volume, stamp)
            self._last_stamp = stamp
            self.last_index = index
            self._handed_out[index] = ready.path.name
            out.append(ready)
        return out
