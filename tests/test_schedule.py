"""The display's trial schedule: onsets, phases, time scale, frames and the cursor."""

from __future__ import annotations

import pytest

from bci.nodes.schedule import Schedule
from bci.session.config import validate_config

IDS = tuple(f"face-{i:04d}" for i in range(8))


def small(**overrides) -> Schedule:
    args = dict(n_train=2, n_test=1, stimulus_s=2.0, isi_s=1.0, time_scale=2.0)
    args.update(overrides)
    return Schedule.build(IDS, **args)


def test_exact_onsets_and_phases():
    s = small()  # a trial is (2 + 1) / 2 = 1.5 wall s; a stimulus 1.0 wall s
    got = [(e.onset, e.kind, e.trial, e.stimulus, e.phase) for e in s.events]
    assert got == [
        (0.0, "phase", 0, "face-0000", "train"),
        (0.0, "stimulus", 0, "face-0000", "train"),
        (1.0, "blank", 0, "face-0000", "train"),
        (1.5, "stimulus", 1, "face-0001", "train"),
        (2.5, "blank", 1, "face-0001", "train"),
        (3.0, "phase", 2, "face-0002", "test"),
        (3.0, "stimulus", 2, "face-0002", "test"),
        (4.0, "blank", 2, "face-0002", "test"),
    ]
    assert s.duration == 4.5
    assert [t.stimulus_index for t in s.trials] == [0, 1, 2]
    assert s.stimulus_ids == ("face-0000", "face-0001", "face-0002")


def test_time_scale_divides_every_duration():
    slow, fast = small(time_scale=1.0), small(time_scale=20.0)
    assert slow.duration == pytest.approx(9.0)
    assert fast.duration == pytest.approx(9.0 / 20)
    for a, b in zip(slow.events, fast.events, strict=True):
        assert (a.kind, a.trial) == (b.kind, b.trial)
        assert b.onset == pytest.approx(a.onset / 20)


def test_from_config_uses_the_session_config(tmp_path):
    config = validate_config(
        {
            "stimuli": {"path": "s", "n_train": 3, "n_test": 2},
            "timing": {"stimulus_s": 2.0, "isi_s": 2.0, "time_scale": 20.0, "run_break_s": 0},
        },
        base=tmp_path,
    )
    s = Schedule.from_config(config, IDS)
    stimuli = [e for e in s.events if e.kind == "stimulus"]
    assert [e.onset for e in stimuli] == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8])
    assert [e.phase for e in stimuli] == ["train"] * 3 + ["test"] * 2
    assert [e.stimulus for e in stimuli] == list(IDS[:5])
    blanks = [e for e in s.events if e.kind == "blank"]
    assert [e.onset for e in blanks] == pytest.approx([0.1, 0.3, 0.5, 0.7, 0.9])
    assert [(e.onset, e.phase) for e in s.events if e.kind == "phase"] == [
        (0.0, "train"),
        (pytest.approx(0.6), "test"),
    ]
    assert s.duration == pytest.approx(1.0)


def test_frames_come_one_flip_at_a_time():
    s = small()
    assert s.next_onset == 0.0
    assert [e.kind for e in s.pop_frame(0.0)] == ["phase", "stimulus"]
    assert s.pop_frame(0.99) == []
    assert s.next_onset == 1.0
    # Late by several frames: still one frame per call, in order.
    assert [(e.kind, e.trial) for e in s.pop_frame(10.0)] == [("blank", 0)]
    assert [(e.kind, e.trial) for e in s.pop_frame(10.0)] == [("stimulus", 1)]
    rest = s.due(10.0)
    assert [(e.kind, e.trial) for e in rest] == [
        ("blank", 1),
        ("phase", 2),
        ("stimulus", 2),
        ("blank", 2),
    ]
    assert s.done and s.next_onset is None and s.remaining == 0
    assert s.pop_frame(100.0) == []
    s.reset()
    assert s.remaining == len(s.events)


def test_no_train_phase_and_zero_isi():
    s = small(n_train=0, n_test=3, isi_s=0.0)
    assert [e.kind for e in s.events] == ["phase", "stimulus", "stimulus", "stimulus", "blank"]
    assert {e.phase for e in s.events} == {"test"}
    assert s.events[-1].onset == pytest.approx(3.0)  # the last stimulus still ends on a blank
    assert s.duration == pytest.approx(3.0)


def test_refuses_a_too_small_stimulus_set():
    with pytest.raises(ValueError, match="has 8 stimuli but the schedule presents 9"):
        small(n_train=5, n_test=4)
    with pytest.raises(ValueError, match="time_scale > 0"):
        small(time_scale=0.0)


def test_run_break_separates_calibration_from_test():
    s = Schedule.build(
        ["a", "b", "c", "d"],
        n_train=2,
        n_test=2,
        stimulus_s=2.0,
        isi_s=2.0,
        time_scale=2.0,
        run_break_s=10.0,
    )
    assert [t.onset for t in s.trials] == [0.0, 2.0, 9.0, 11.0]
    assert s.duration == 13.0
    no_test = Schedule.build(
        ["a", "b"], n_train=2, n_test=0, stimulus_s=2.0, isi_s=2.0, time_scale=2.0, run_break_s=10.0
    )
    assert no_test.duration == 4.0
