"""Read anything MNE reads (FIF, EDF, BDF, BrainVision, ...) as a :class:`~bci.io.Recording`.

A file becomes at most two streams:

* the data, one numeric stream (format ``"double64"``, values in MNE's SI units: volts,
  teslas, ...) named after the file (``sub-01_raw.fif`` -> ``"sub-01_raw"``), at the file's
  sampling rate, its type from the channel types (the most common one among the non-stim
  channels: ``"EEG"``, ``"MEG"``, ``"ECG"``, ...), the MNE channel types and units in
  ``desc["channel_types"]`` / ``desc["channel_units"]``;
* the annotations, if any, one string stream ``"<name>-annotations"`` of type ``Markers``:
  one sample per annotation, at its onset, holding its description (durations are dropped).

Clock: the time stamps are seconds since the start of the measurement in MNE's own frame, so
sample ``k`` is at ``(first_samp + k) / sfreq`` (0 for the first sample of most files other
than FIF) and an annotation is at its ``onset``. They are not absolute times; the measurement
date, if the file has one, is in :attr:`Recording.info` as ``meas_date`` (ISO 8601).
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import mne
import numpy as np
from mne.io.constants import FIFF

from bci.io.streams import RecordedStream, Recording, as_path, check_stream

__all__ = ["LSL_TYPES", "read_mne"]

log = logging.getLogger(__name__)

LSL_TYPES = {
    "eeg": "EEG",
    "mag": "MEG",
    "grad": "MEG",
    "ref_meg": "MEG",
    "ecg": "ECG",
    "emg": "EMG",
    "eog": "EOG",
    "seeg": "sEEG",
    "ecog": "ECoG",
    "dbs": "DBS",
    "resp": "Resp",
    "stim": "Stim",
    "misc": "misc",
}
"""MNE channel type -> LSL stream type (others are passed through as they are)."""
_UNITS = {
    FIFF.FIFF_UNIT_V: "V",
    FIFF.FIFF_UNIT_T: "T",
    FIFF.FIFF_UNIT_T_M: "T/m",
    FIFF.FIFF_UNIT_AM: "Am",
    FIFF.FIFF_UNIT_MOL: "M",
    FIFF.FIFF_UNIT_CEL: "C",
    FIFF.FIFF_UNIT_S: "S",
    FIFF.FIFF_UNIT_SEC: "s",
}


def _stream_name(path: Path) -> str:
    name = path.name
    if name.lower().endswith(".gz"):
        name = name[:-3]
    return Path(name).stem or name


def _stream_type(channel_types: list[str]) -> str:
    """The LSL type of a data stream: its most common channel type, stim channels aside."""
    counts = Counter(t for t in channel_types if t != "stim") or Counter(channel_types)
    if not counts:
        return "misc"
    most = counts.most_common(1)[0][0]
    return LSL_TYPES.get(most, most)


def read_mne(path: str | Path) -> Recording:
    """Read a file with :func:`mne.io.read_raw` (``preload=True``).

    Parameters
    ----------
    path : str or Path
        A FIF, EDF, BDF, BrainVision ``.vhdr``, ... file.

    Returns
    -------
    Recording
        The data stream and, if the file has annotations, the annotation marker stream (see
        the module docstring for names, units and the clock).

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    ValueError
        If MNE cannot read it (an unsupported format, a broken file).
    """
    path = as_path(path)
    if not path.exists():
        raise FileNotFoundError(f"no recording file {str(path)!r}")
    try:
        raw = mne.io.read_raw(path, preload=True, verbose="error")
    except Exception as exc:  # MNE readers raise many types for broken files
        reason = " ".join(str(exc).split()) or f"its reader failed with {type(exc).__name__}"
        raise ValueError(f"cannot read {path.name} with MNE: {reason[:200]}") from None
    name = _stream_name(path)
    sfreq = float(raw.info["sfreq"])
    channel_types = list(raw.get_channel_types())
    units = [_UNITS.get(ch["unit"], "") for ch in raw.info["chs"]]
    recording = Recording(path=path)
    recording.info = {
        "reader": type(raw).__name__,
        "sfreq": sfreq,
        "first_samp": int(raw.first_samp),
    }
    meas_date = raw.info["meas_date"]
    if meas_date is not None:
        recording.info["meas_date"] = meas_date.isoformat()
    stamps = raw.first_time + raw.times
    data = RecordedStream(
        name=name,
        type=_stream_type(channel_types),
        source_id=name,
        channel_format="double64",
        nominal_srate=sfreq,
        channel_labels=list(raw.ch_names),
        time_stamps=np.asarray(stamps, dtype=np.float64),
        data=raw.get_data().T.astype(np.float64, copy=False),
        desc={"channel_types": channel_types, "channel_units": units, "reader": "mne"},
    )
    _add(recording, data)
    annotations = raw.annotations
    if len(annotations):
        order = np.argsort(annotations.onset, kind="stable")
        markers = RecordedStream(
            name=f"{name}-annotations",
            type="Markers",
            source_id=f"{name}-annotations",
            channel_format="string",
            nominal_srate=0.0,
            channel_labels=["annotation"],
            time_stamps=np.asarray(annotations.onset[order], dtype=np.float64),
            data=[[str(annotations.description[i])] for i in order],
            desc={"reader": "mne"},
        )
        _add(recording, markers)
    log.info("%s: read with %s, %d streams", path.name, type(raw).__name__, len(recording.streams))
    return recording


def _add(recording: Recording, stream: RecordedStream) -> None:
    problem = check_stream(stream)
    if problem is None:
        recording.streams.append(stream)
    else:
        recording.skipped.append((stream.describe(), problem))
        log.info("%s: skipped stream %s: %s", recording.path.name, stream.describe(), problem)
