"""Runs found from run markers, or from the pauses in the volumes and the phase changes."""

from __future__ import annotations

import numpy as np

from bci.nodes.run_tracker import RunTracker


def _volumes(starts, counts, tr=2.0):
    return np.concatenate([s + tr * np.arange(n) for s, n in zip(starts, counts, strict=True)])


def test_runs_are_found_in_the_pauses_of_the_volumes_whatever_the_delivery_order():
    tracker = RunTracker([0, 1], tolerance_s=0.1)
    volumes = _volumes([100.0, 400.0], [120, 30])
    for t in (102.0, 402.0):
        tracker.add_trial(t, "train" if t < 300 else "test")
    # subject 1 first and in pieces, subject 0 later, with a slight stamp offset
    tracker.add_volumes(1, volumes[130:])
    tracker.add_volumes(1, volumes[:130])
    tracker.add_volumes(0, volumes + 1e-4)
    tracker.add_bad(402.0, "no volumes in window")
    tracker.add_censored(1, 110.0, "intensity")
    tracker.add_censored(1, 404.0, "non-finite")
    tracker.add_censored(0, 406.0, "non-finite")
    report = tracker.report()
    assert [r["censored_volumes"] for r in report] == [
        {"1": {"intensity": 1}},
        {"0": {"non-finite": 1}, "1": {"non-finite": 1}},
    ]
    assert [(r["phase"], r["trials"], r["volumes_received"]) for r in report] == [
        ("train", 1, {"0": 120, "1": 120}),
        ("test", 1, {"0": 30, "1": 30}),
    ]
    assert [r["volumes_expected"] for r in report] == [None, None]
    assert report[1]["bad_responses"] == {"no volumes in window": 1}
    assert tracker.run_of(401.0) == 1 and tracker.run_of(50.0) == 0


def test_run_markers_and_triggers_give_the_runs_and_the_expected_volumes():
    tracker = RunTracker([0], tolerance_s=0.1)
    tracker.start_run(1, "test", 400.0, 30, 2.0)
    tracker.start_run(0, "train", 100.0, 120, 2.0)
    tracker.add_volumes(0, _volumes([100.0, 400.0], [118, 30]))  # two volumes lost in run 0
    for t in _volumes([100.0, 400.0], [120, 30]):
        tracker.add_trigger(t)
    report = tracker.report()
    assert [(r["run"], r["phase"]) for r in report] == [(0, "train"), (1, "test")]
    assert [(r["volumes_received"]["0"], r["volumes_expected"]) for r in report] == [
        (118, 120),
        (30, 30),
    ]
    assert tracker.declared_run_at(399.0).end == 100.0 + 240.0
