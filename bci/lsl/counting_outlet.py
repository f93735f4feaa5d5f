"""LSL outlets that count the samples they push, so a session can check its recording.

Every outlet a node makes (:func:`bci.lsl.streams.make_outlet`, the display's marker
outlet) is a :class:`CountingOutlet`. The runner sends :func:`samples_sent` in each heartbeat;
at the end of a session the recording report compares those counts, stream by stream, with the
samples the XDF file holds (:mod:`bci.session.recording_report`).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pylsl

_SENT: Counter[str] = Counter()


class CountingOutlet(pylsl.StreamOutlet):
    """A :class:`pylsl.StreamOutlet` that adds what it pushes to this process's counts."""

    def __init__(self, info: pylsl.StreamInfo, *args: Any, **kwargs: Any) -> None:
        super().__init__(info, *args, **kwargs)
        self.stream_name = info.name()
        _SENT[self.stream_name] += 0  # a stream that never pushes still shows, with 0

    def push_sample(self, x: Any, *args: Any, **kwargs: Any) -> None:
        """Push one sample (see :meth:`pylsl.StreamOutlet.push_sample`) and count it."""
        super().push_sample(x, *args, **kwargs)
        _SENT[self.stream_name] += 1

    def push_chunk(self, x: Any, *args: Any, **kwargs: Any) -> None:
        """Push a chunk (see :meth:`pylsl.StreamOutlet.push_chunk`) and count its samples."""
        super().push_chunk(x, *args, **kwargs)
        _SENT[self.stream_name] += _samples_in(x, self.channel_count)


def _samples_in(chunk: Any, n_channels: int) -> int:
    shape = getattr(chunk, "shape", None)
    if shape is not None:
        return int(shape[0]) if len(shape) > 1 else int(shape[0]) // max(n_channels, 1)
    if chunk and isinstance(chunk[0], (list, tuple)):
        return len(chunk)
    return len(chunk) // max(n_channels, 1)


def samples_sent() -> dict[str, int]:
    """Samples pushed so far by this process, per stream name."""
    return dict(_SENT)
