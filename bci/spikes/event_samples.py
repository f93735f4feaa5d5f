"""What a spike-event stream's samples mean: which channel (and unit) each spike was on.

Amplifier apps send spike events in a few shapes; all are read here into ``(channel, unit)``:

* numbers, one or two channels: ``[channel]`` or ``[channel, unit]`` (int or float), as a
  Blackrock- or Plexon-style app sends one sample per threshold crossing or sorted spike;
* numbers, one channel per site (``n_sites`` channels): a sample holds the number of spikes on
  each site at its time stamp (one-hot for a single spike);
* strings: the first integer in the text is the channel and the second, if any, the unit:
  ``"ch12 u1"``, ``"12"``, ``"12,1"``, ``"elec12 unit 1"``, ``"A-012"`` all work.

Channels are numbered from ``channel_base`` (0, or 1 for apps that count electrodes from 1);
the returned channels are 0-based site indices. Every unit on a channel counts for that site.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

_INTEGER = re.compile(r"\d+")


class EventParseError(ValueError):
    """An event sample that names no channel; the message quotes it."""


def parse_event_text(text: str) -> tuple[int, int]:
    """``(channel, unit)`` from a string event, as numbered by the sender (unit 0 if absent)."""
    numbers = _INTEGER.findall(str(text))
    if not numbers:
        raise EventParseError(f"spike event {str(text)[:40]!r} names no channel number")
    return int(numbers[0]), int(numbers[1]) if len(numbers) > 1 else 0


def parse_event_samples(
    samples: Sequence | np.ndarray, times: np.ndarray, n_sites: int, channel_base: int = 0
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Spike times and 0-based sites from a chunk of event samples.

    Parameters
    ----------
    samples : sequence or np.ndarray
        ``(n, n_channels)`` numbers or strings, as pulled from the stream.
    times : np.ndarray
        ``(n,)`` their time stamps.
    n_sites : int
        Sites of the array; a channel outside ``[channel_base, channel_base + n_sites)`` is
        reported, not counted.
    channel_base : int
        The sender's number for the first site.

    Returns
    -------
    spike_times, sites : np.ndarray
        float64 and int64, one entry per spike.
    problems : list of str
        One line per sample that could not be used.
    """
    times = np.asarray(times, dtype=np.float64)
    problems: list[str] = []
    if len(times) == 0:
        return np.empty(0), np.empty(0, np.int64), problems
    first = samples[0][0] if len(samples[0]) else None
    if isinstance(first, str):
        chans = []
        keep = []
        for i, sample in enumerate(samples):
            try:
                chans.append(parse_event_text(" ".join(map(str, sample)))[0])
                keep.append(i)
            except EventParseError as err:
                problems.append(str(err))
        channels = np.asarray(chans, dtype=np.int64)
        spike_times = times[keep]
    else:
        values = np.asarray(samples, dtype=np.float64)
        if values.ndim != 2:
            values = values.reshape(len(times), -1)
        if values.shape[1] == n_sites and n_sites > 2:
            counts = np.nan_to_num(values, nan=0.0).clip(0).round().astype(np.int64)
            rows, sites = np.nonzero(counts)
            reps = counts[rows, sites]
            return np.repeat(times[rows], reps), np.repeat(sites, reps).astype(np.int64), problems
        finite = np.isfinite(values[:, 0])
        if not finite.all():
            problems.append(f"{int(np.count_nonzero(~finite))} spike event(s) with a NaN channel")
        channels = values[finite, 0].round().astype(np.int64)
        spike_times = times[finite]
    sites = channels - int(channel_base)
    inside = (sites >= 0) & (sites < n_sites)
    if not inside.all():
        bad = channels[~inside]
        problems.append(
            f"{bad.size} spike event(s) on channel {int(bad[0])}, outside "
            f"{channel_base}-{channel_base + n_sites - 1} (channels = {n_sites}, "
            f"channel_base = {channel_base})"
        )
    return spike_times[inside], sites[inside], problems
