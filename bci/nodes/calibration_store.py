"""Calibration responses on disk as they arrive, so a restarted decode node picks up where it was.

The decode node writes every calibration response it receives (usable or bad) as one small
archive in the session folder, ``calibration/responses/t<trial>-s<subject>.npz``
(:func:`bci.archive.write_npz`: atomic, no pickle), and a file ``calibration/ended.npz`` once the
display said the last calibration run ended. A restarted node (after a crash, or a restart of
acquire that lost the trials in flight) reads them back with :func:`CalibrationStore.load`.
Nothing else reads these files; ``calibration.npz`` (the dataset ``bci-train`` fits) is written
from them when the model is fitted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bci.archive import READ_ERRORS, check_format, json_entry, read_json_entry, read_npz, write_npz

FORMAT = "bci-calibration-response"
VERSION = 1


@dataclass(frozen=True)
class StoredResponse:
    """One calibration response as stored: its trial, subject, stimulus, pattern or bad reason."""

    trial: int
    subject: int
    stimulus: str
    pattern: np.ndarray | None
    bad: str | None


class CalibrationStore:
    """The calibration responses of one session (see the module docstring).

    Parameters
    ----------
    folder : Path
        ``<session>/calibration``.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.responses = self.folder / "responses"

    def add(
        self, trial: int, subject: int, stimulus: str, pattern: np.ndarray | None, bad: str | None
    ) -> Path:
        """Write one response (``pattern`` None for a bad one, with its ``bad`` reason)."""
        meta = {"format": FORMAT, "version": VERSION, "trial": int(trial)}
        meta.update({"subject": int(subject), "stimulus": str(stimulus), "bad": bad})
        arrays = {"meta": json_entry(meta)}
        if pattern is not None:
            arrays["pattern"] = np.asarray(pattern, dtype=np.float32)
        return write_npz(self.responses / f"t{int(trial):06d}-s{int(subject):03d}.npz", arrays)

    def mark_ended(self) -> None:
        """Note that the last calibration run ended."""
        write_npz(self.folder / "ended.npz", {"meta": json_entry({"format": FORMAT})})

    @property
    def ended(self) -> bool:
        """Whether :meth:`mark_ended` was called (by this process or an earlier one)."""
        return (self.folder / "ended.npz").is_file()

    def load(self) -> tuple[list[StoredResponse], list[str]]:
        """Every stored response, and a one-line problem per file that could not be read."""
        out: list[StoredResponse] = []
        problems: list[str] = []
        for path in sorted(self.responses.glob("t*-s*.npz")):
            try:
                arrays = read_npz(path)
                meta = read_json_entry(arrays, "meta")
                check_format(meta.get("format"), meta.get("version"), FORMAT, VERSION)
                pattern = arrays.get("pattern")
                out.append(
                    StoredResponse(
                        int(meta["trial"]),
                        int(meta["subject"]),
                        str(meta["stimulus"]),
                        None if pattern is None else np.asarray(pattern, dtype=np.float32),
                        meta.get("bad"),
                    )
                )
            except (*READ_ERRORS, ValueError, KeyError, TypeError, AttributeError) as err:
                problems.append(f"{path.name}: {err}")
        return out, problems
