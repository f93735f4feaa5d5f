"""Export a recording to MNE: its regular-rate numeric streams as a Raw, markers as annotations.

What ends up in the Raw
-----------------------
* **Channels**: every numeric, regular-rate stream that is not a marker stream (irregular
  numeric streams are left out with a log message). With one stream its samples are taken as
  they are and its labels are the channel names. With several, the first stream with the
  highest nominal rate is the reference: the Raw has its samples over the span all streams
  cover, and every other stream is linearly interpolated onto the reference's time stamps
  (for streams at the same rate this aligns them; a lower-rate stream is thereby upsampled
  to the highest rate). Channel names are then ``"<stream>:<label>"``
  (``"bci-sim-01:voxel-00000"``), made unique with ``-1``, ``-2`` suffixes where needed.
* **Channel types**: a channel's own type when the stream describes one that MNE knows
  (``desc["channel_types"]``, e.g. ``"EEG"`` -> ``eeg``, ``"stim"``); an unknown one -> ``misc``;
  none -> from the stream type: ``EEG`` -> ``eeg``, ``ECG`` -> ``ecg``, ``EMG`` -> ``emg``,
  ``EOG`` -> ``eog``, everything else (``fMRI``, spikes, ...) -> ``misc``.
* **Units**: values are passed through unscaled (MNE expects SI units: volts), except channels
  whose unit (``desc["channel_units"]``) says microvolts (``microvolts``, ``uV``, ``µV``),
  millivolts or nanovolts, which are scaled to volts.
* **Annotations**: one per marker sample (marker streams: string streams and streams of type
  ``Markers``), duration 0, description the marker string (a multi-channel sample's values
  joined by ``"/"``), onset in seconds from the Raw's first sample. A marker is placed at the
  sample its time stamp falls on (interpolating between the reference's time stamps), so it
  stays on the right sample even if the data has gaps; markers before the first sample or
  more than one sample period after the last one are left out (logged).

The Raw's ``first_samp`` is 0 and it has no measurement date; ``info["description"]`` names
the file and the time stamp of the first sample on the recording's clock.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import mne
import numpy as np

from bci.io.recording import read_recording
from bci.io.streams import RecordedStream, Recording

__all__ = ["MNE_TYPES", "to_mne"]

log = logging.getLogger(__name__)

MNE_TYPES = {"eeg": "eeg", "ecg": "ecg", "emg": "emg", "eog": "eog"}
"""Stream type (lower case) -> MNE channel type; any other stream type gives ``misc``."""
_SCALES = {
    "microvolts": 1e-6,
    "microvolt": 1e-6,
    "uv": 1e-6,
    "µv": 1e-6,
    "μv": 1e-6,
    "millivolts": 1e-3,
    "millivolt": 1e-3,
    "mv": 1e-3,
    "nanovolts": 1e-9,
    "nanovolt": 1e-9,
    "nv": 1e-9,
}
_KNOWN_TYPES = frozenset(mne.io.get_channel_type_constants())


def _channel_types(stream: RecordedStream) -> list[str]:
    fallback = MNE_TYPES.get(stream.type.lower(), "misc")
    given = stream.desc.get("channel_types")
    if not isinstance(given, list) or len(given) != stream.n_channels:
        return [fallback] * stream.n_channels
    types = []
    for t in given:
        t = str(t).strip().lower()
        types.append(fallback if not t else t if t in _KNOWN_TYPES else "misc")
    return types


def _scales(stream: RecordedStream) -> np.ndarray:
    units = stream.desc.get("channel_units")
    if not isinstance(units, list) or len(units) != stream.n_channels:
        return np.ones(stream.n_channels)
    return np.array([_SCALES.get(str(u).strip().lower(), 1.0) for u in units])


def _unique(names: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for name in names:
        candidate, k = name, 0
        while candidate in seen:
            k += 1
            candidate = f"{name}-{k}"
        seen.add(candidate)
        out.append(candidate)
    return out


def _select(recording: Recording, streams: Sequence[str] | None) -> list[RecordedStream]:
    if streams is not None:
        chosen = [recording.stream(name) for name in streams]
        bad = [s.describe() for s in chosen if s.is_marker or s.nominal_srate <= 0]
        if bad:
            raise ValueError(f"not regular-rate numeric data streams: {', '.join(bad)}")
        return chosen
    chosen = []
    for s in recording.data_streams():
        if s.nominal_srate > 0:
            chosen.append(s)
        else:
            log.info("to_mne: irregular stream %s left out", s.describe())
    if not chosen:
        names = ", ".join(s.describe() for s in recording.streams) or "none"
        raise ValueError(
            f"{recording.path.name} has no regular-rate numeric stream to export; streams: {names}"
        )
    return chosen


def _aligned(chosen: list[RecordedStream]) -> tuple[np.ndarray, np.ndarray, float]:
    """Time stamps ``(n,)``, values ``(n, n_channels)`` of all streams on one grid, and the rate."""
    sfreq = max(s.nominal_srate for s in chosen)
    ref = next(s for s in chosen if s.nominal_srate == sfreq)
    if len(chosen) == 1:
        values = np.asarray(ref.data, dtype=np.float64) * _scales(ref)
        return ref.time_stamps, values, sfreq
    start = max(s.time_stamps[0] for s in chosen)
    stop = min(s.time_stamps[-1] for s in chosen)
    tol = 1e-3 / sfreq  # a thousandth of a sample: dejittered stamps are not exact
    keep = (ref.time_stamps >= start - tol) & (ref.time_stamps <= stop + tol)
    if stop < start or not keep.any():
        spans = ", ".join(
            f"{s.name!r} {s.time_stamps[0]:.3f}-{s.time_stamps[-1]:.3f} s" for s in chosen
        )
        raise ValueError(f"the data streams do not overlap in time: {spans}")
    grid = ref.time_stamps[keep]
    blocks = []
    for s in chosen:
        data = np.asarray(s.data, dtype=np.float64) * _scales(s)
        if s is ref:
            blocks.append(data[keep])
        else:
            cols = [np.interp(grid, s.time_stamps, data[:, c]) for c in range(s.n_channels)]
            blocks.append(np.stack(cols, axis=1))
    log.info(
        "to_mne: %d streams aligned on %r at %g Hz over %.3f s",
        len(chosen),
        ref.name,
        sfreq,
        grid[-1] - grid[0],
    )
    return grid, np.concatenate(blocks, axis=1), sfreq


def _annotations(recording: Recording, grid: np.ndarray, sfreq: float) -> mne.Annotations:
    n = len(grid)
    onsets, descriptions = [], []
    n_out = 0
    for stream in recording.marker_streams():
        t = stream.time_stamps
        pos = np.interp(t, grid, np.arange(n, dtype=np.float64))
        before, after = t < grid[0], t > grid[-1]
        pos[before] = (t[before] - grid[0]) * sfreq
        pos[after] = (n - 1) + (t[after] - grid[-1]) * sfreq
        tol = 1e-3  # of a sample, for rounding in the time stamps
        inside = (pos >= -tol) & (pos <= n + tol)
        pos = np.clip(pos, 0.0, float(n))
        n_out += int(np.count_nonzero(~inside))
        for i in np.flatnonzero(inside):
            sample = stream.data[i]
            values = sample if not stream.is_numeric else [f"{v:g}" for v in sample]
            onsets.append(pos[i] / sfreq)
            descriptions.append("/".join(str(v) for v in values))
    if n_out:
        log.info("to_mne: %d markers outside the exported data left out", n_out)
    order = np.argsort(onsets, kind="stable")
    return mne.Annotations(
        onset=np.asarray(onsets, dtype=np.float64)[order],
        duration=np.zeros(len(onsets)),
        description=[descriptions[i] for i in order],
        orig_time=None,
    )


def _warn_gaps(grid: np.ndarray, sfreq: float, name: str) -> None:
    if len(grid) < 2:
        return
    largest = float(np.max(np.diff(grid)))
    if largest > 1.5 / sfreq:
        log.warning(
            "to_mne: %s has gaps of up to %.3f s at %g Hz; the Raw assumes regular sampling "
            "(annotations are placed by sample)",
            name,
            largest,
            sfreq,
        )


def to_mne(
    source: Recording | str | Path,
    *,
    streams: Sequence[str] | None = None,
    markers: bool = True,
) -> mne.io.RawArray:
    """The recording's regular-rate numeric data as an MNE Raw, its markers as annotations.

    Parameters
    ----------
    source : Recording or str or Path
        A recording, or a file to read with :func:`bci.io.read_recording`.
    streams : sequence of str, optional
        Names of the data streams to export, in this order (default: every numeric
        regular-rate stream that is not a marker stream, in file order).
    markers : bool
        Whether to add the marker streams as annotations.

    Returns
    -------
    mne.io.RawArray
        See the module docstring for alignment, names, types, units and annotations.

    Raises
    ------
    ValueError
        If there is no stream to export, or the chosen streams do not overlap in time.
    KeyError
        If ``streams`` names a stream the recording does not have.
    """
    recording = source if isinstance(source, Recording) else read_recording(source)
    chosen = _select(recording, streams)
    grid, values, sfreq = _aligned(chosen)
    _warn_gaps(grid, sfreq, chosen[0].name if len(chosen) == 1 else "the reference stream")
    if len(chosen) == 1:
        names = list(chosen[0].channel_labels)
    else:
        names = [f"{s.name}:{label}" for s in chosen for label in s.channel_labels]
    types = [t for s in chosen for t in _channel_types(s)]
    info = mne.create_info(_unique(names), sfreq, types, verbose="error")
    info["description"] = (
        f"exported from {recording.path.name}; first sample at {grid[0]:.6f} s on the "
        "recording's clock"
    )
    raw = mne.io.RawArray(values.T, info, verbose="error")
    if markers:
        raw.set_annotations(_annotations(recording, grid, sfreq), verbose="error")
    return raw
