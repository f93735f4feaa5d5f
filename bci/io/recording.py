"""Read a recording file, whatever made it: XDF through pyxdf, anything else through MNE.

>>> rec = read_recording("session-01.xdf")          # doctest: +SKIP
>>> [s.name for s in rec.data_streams()], rec.skipped  # doctest: +SKIP

See :mod:`bci.io.streams` for what a :class:`Recording` holds, :mod:`bci.io.xdf` and
:mod:`bci.io.mne_read` for how each kind of file is read (clock synchronisation, units).
"""

from __future__ import annotations

from pathlib import Path

from bci.io.mne_read import read_mne
from bci.io.streams import RecordedStream, Recording, as_path
from bci.io.xdf import XDF_SUFFIXES, is_xdf, read_xdf

__all__ = ["RecordedStream", "Recording", "read_recording"]


def read_recording(path: str | Path) -> Recording:
    """Read the streams of a recording file.

    Parameters
    ----------
    path : str or Path
        An XDF file (``.xdf``, ``.xdfz``, ``.xdf.gz``, or any file starting with the XDF
        magic bytes), read with pyxdf with clock synchronisation, clock-reset handling and
        dejittering of regular-rate streams; or any file :func:`mne.io.read_raw` reads (FIF,
        EDF, BDF, BrainVision ``.vhdr``, ...), read as a data stream and an annotation
        marker stream.

    Returns
    -------
    Recording
        The usable streams, and in ``skipped`` the ones that are not, each with a reason.

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    ValueError
        If the file cannot be read (``cannot read x.dat with MNE: Unsupported file type``).
    """
    path = as_path(path)
    if not path.exists():
        raise FileNotFoundError(f"no recording file {str(path)!r}")
    if path.is_dir() and not path.name.lower().endswith(".ds"):
        raise ValueError(f"{path.name} is a folder, not a recording file")
    if path.name.lower().endswith(XDF_SUFFIXES) or is_xdf(path):
        return read_xdf(path)
    return read_mne(path)
