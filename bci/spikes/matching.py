"""Detected spikes against ground truth: how many were found, how many detections are false."""

from __future__ import annotations

import numpy as np


def match_spikes(
    true_times: np.ndarray,
    true_channels: np.ndarray,
    found_times: np.ndarray,
    found_channels: np.ndarray,
    tolerance_s: float = 0.001,
) -> dict[str, float]:
    """Match detections to true spikes on the same channel, each at most once.

    A detection matches the nearest unmatched true spike on its channel within ``tolerance_s``
    (greedy in time order).

    Returns
    -------
    dict
        ``n_true``, ``n_found``, ``hits``, ``found`` (hits / n_true) and ``false``
        ((n_found - hits) / n_found).
    """
    hits = 0
    for channel in np.union1d(true_channels, found_channels):
        truth = np.sort(np.asarray(true_times)[true_channels == channel])
        found = np.sort(np.asarray(found_times)[found_channels == channel])
        used = np.zeros(truth.size, dtype=bool)
        for t in found:
            i = int(np.searchsorted(truth, t))
            best, best_d = -1, tolerance_s
            for j in (i - 1, i, i + 1):
                if 0 <= j < truth.size and not used[j] and abs(truth[j] - t) <= best_d:
                    best, best_d = j, abs(truth[j] - t)
            if best >= 0:
                used[best] = True
                hits += 1
    n_true, n_found = int(np.size(true_times)), int(np.size(found_times))
    return {
        "n_true": n_true,
        "n_found": n_found,
        "hits": hits,
        "found": hits / n_true if n_true else float("nan"),
        "false": (n_found - hits) / n_found if n_found else 0.0,
    }
