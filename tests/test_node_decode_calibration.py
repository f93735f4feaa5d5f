"""The decode node's calibration cannot hang: a real decode process (and its bci-train), the test
playing acquire and the display on a real bus."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from bci.bus import Publisher
from bci.nodes.calibration_store import CalibrationStore
from bci.nodes.decode import MIN_CALIBRATION_TRIALS
from bci.session.config import validate_config
from bci.sim import SimulatedCohort
from bci.stimulus_set import load_stimulus_set
from tests.harness import NodeProcess

STIMULI = Path(__file__).resolve().parents[1] / "stimuli" / "demo-faces"
N_TRAIN, N_VOXELS = 8, 32


@pytest.fixture(scope="module")
def stimuli():
    return load_stimulus_set(STIMULI)


def _config() -> dict:
    return validate_config(
        {
            "session": {"heartbeat_s": 0.05},
            "stimuli": {"path": str(STIMULI), "n_train": N_TRAIN, "n_test": 2},
            "timing": {"time_scale": 20.0},
            "model": {"aligner": "none", "alphas": [1.0, 10.0]},
        }
    )


def _patterns(stimuli) -> np.ndarray:
    """(subject, trial, voxel) responses of a simulated cohort to the first stimuli."""
    cohort = SimulatedCohort(2, N_VOXELS, stimuli.latents.shape[1], snr=4.0, random_state=5)
    latents = stimuli.latents[: N_TRAIN + 2]
    return np.stack([cohort.trial_responses(latents, s) for s in range(2)]).astype(np.float32)


class Acquire:
    """The test's acquire and display: one bus socket publishing responses and events."""

    def __init__(self, stimuli) -> None:
        self.peer = Publisher(name="acquire")
        self.ids = stimuli.ids

    def response(self, trial: int, subject: int, pattern, phase="train", bad=None) -> None:
        meta = {"trial": trial, "subject": subject, "stimulus": str(self.ids[trial])}
        meta.update({"phase": phase, "bad": bad, "arrival_lsl": 0.0})
        self.peer.publish("responses", [pattern], kind="response", meta=meta)

    def event(self, kind: str, **meta) -> None:
        self.peer.publish("events", kind=kind, meta={"node": "display", **meta})


def _start(tmp_path: Path, acquire: Acquire) -> NodeProcess:
    node = NodeProcess(
        "decode", _config(), tmp_path, ["latents", "events"], peers={"acq": acquire.peer.endpoint}
    )
    assert node.wait_state("ready", 60.0), node.log()
    node.send("start")
    assert node.wait_state("running", 10.0), node.log()
    assert acquire.peer.wait_for_subscribers("responses", timeout_ms=10_000)
    return node


def _next_event(node: NodeProcess, kinds: set[str], timeout_s: float):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        msg = node.recv(timeout_s=0.2, topic="events")
        if msg is not None and msg.kind in kinds:
            return msg
        assert node.proc.poll() is None, node.log()
    return None


def _counter(node: NodeProcess, key: str, timeout_s: float = 5.0) -> int | None:
    """``key`` in the node's next heartbeat's counters."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        msg = node.sub.recv(timeout_ms=100)
        if msg is not None and msg.topic == f"heartbeat.{node.name}":
            return msg.meta["counters"].get(key)
    return None


def test_fit_with_the_complete_trials_when_the_calibration_run_ends(tmp_path, stimuli):
    """Trial 3 misses subject 1 (a stream that stopped, a restarted acquire) and trial 5 is
    NaN for subject 1: the model is fitted on the other 6 once the run ended; then a late
    response does not decode a trial a second time."""
    data = _patterns(stimuli)
    acquire = Acquire(stimuli)
    node = _start(tmp_path, acquire)
    try:
        for trial in range(N_TRAIN):
            for subject in range(2):
                if (trial, subject) == (3, 1):
                    continue
                if (trial, subject) == (5, 1):
                    acquire.response(trial, 1, np.zeros(N_VOXELS, np.float32), bad="NaN in 3 of 32")
                    continue
                acquire.response(trial, subject, data[subject, trial])
        # a stimulus that is not in the set, and patterns of another width: the fit (and the
        # report) broke on them
        for subject in range(2):
            meta = {"trial": N_TRAIN + 5, "subject": subject, "stimulus": "nope", "phase": "train"}
            acquire.peer.publish("responses", [data[subject, 0]], kind="response", meta=meta)
            meta = {**meta, "trial": N_TRAIN + 6, "stimulus": str(acquire.ids[N_TRAIN + 6])}
            acquire.peer.publish("responses", [np.ones(5, np.float32)], kind="response", meta=meta)
        fitting = _next_event(node, {"model_fitting"}, 3.0)
        assert fitting is None, "fitted before the run ended"  # trial 3 is still awaited
        acquire.event("run_end", run=0, triggers=0)
        fitting = _next_event(node, {"model_fitting"}, 10.0)
        assert fitting is not None, node.log()
        assert fitting.meta["trials"] == N_TRAIN - 2 and fitting.meta["subjects"] == [0, 1]
        assert _next_event(node, {"model_ready"}, 60.0) is not None, node.log()
        assert "fitting on the 6 of 8 calibration trials that are complete" in node.log()
        # test trial 8: subject 0 alone is decoded after a TR; subject 1 comes late
        acquire.response(N_TRAIN, 0, data[0, N_TRAIN], phase="test")
        latent = node.recv(timeout_s=5.0, topic="latents")
        assert latent is not None and latent.meta["subjects"] == [0], node.log()
        acquire.response(N_TRAIN, 1, data[1, N_TRAIN], phase="test")
        assert node.recv(timeout_s=1.0, topic="latents") is None  # not decoded a second time
        assert "trial 8 subject 1 came after the trial was decoded; not used" in node.log()
        assert (
            "decode: trial 13 subject 0: stimulus 'nope' is not in the stimulus set; skipped "
            "(further ones are only counted)"
        ) in node.log()
        assert _counter(node, "unusable_responses") == 4
    finally:
        code = node.stop()
        acquire.peer.close()
    assert code == 0, node.log()


def test_too_few_complete_trials_stop_the_node_with_one_line(tmp_path, stimuli):
    data = _patterns(stimuli)
    acquire = Acquire(stimuli)
    node = _start(tmp_path, acquire)
    try:
        for trial in range(N_TRAIN):
            acquire.response(trial, 0, data[0, trial])
            bad = "NaN in 32 of 32 voxels" if trial >= 2 else None
            pattern = np.zeros(N_VOXELS, np.float32) if bad else data[1, trial]
            acquire.response(trial, 1, pattern, bad=bad)
        acquire.event("run_end", run=0, triggers=0)
        node.proc.wait(20.0)
    finally:
        node.stop()
        acquire.peer.close()
    assert node.proc.returncode == 1, node.log()
    line = (
        f"decode: only 2 of {N_TRAIN} calibration trials are complete (a usable response from "
        f"each of subjects [0, 1]); a model needs at least {MIN_CALIBRATION_TRIALS} and there "
        f"is none at {tmp_path / 'model.npz'}"
    )
    assert line in node.log()


def test_a_restarted_decode_picks_up_the_stored_calibration(tmp_path, stimuli):
    data = _patterns(stimuli)
    acquire = Acquire(stimuli)
    node = _start(tmp_path, acquire)
    for trial in range(N_TRAIN - 1):
        for subject in range(2):
            acquire.response(trial, subject, data[subject, trial])
    stored = tmp_path / "calibration" / "responses"
    deadline = time.monotonic() + 10
    while len(list(stored.glob("*.npz"))) < 2 * (N_TRAIN - 1) and time.monotonic() < deadline:
        time.sleep(0.05)
    node.proc.kill()  # a crash: nothing is saved on the way out
    node.stop()
    acquire.peer.close()
    acquire = Acquire(stimuli)
    node = _start(tmp_path, acquire)
    try:
        assert f"picked up {2 * (N_TRAIN - 1)} stored calibration responses" in node.log()
        for subject in range(2):  # the last trial: the calibration is complete, no run_end
            acquire.response(N_TRAIN - 1, subject, data[subject, N_TRAIN - 1])
        fitting = _next_event(node, {"model_fitting"}, 10.0)
        assert fitting is not None and fitting.meta["trials"] == N_TRAIN, node.log()
        assert _next_event(node, {"model_ready"}, 60.0) is not None, node.log()
    finally:
        code = node.stop()
        acquire.peer.close()
    assert code == 0, node.log()


def test_a_participant_left_out_by_acquire_is_not_waited_for(tmp_path, stimuli):
    """acquire left subject 0 out (wrong channel count) and says so: the calibration is complete
    with subject 1 alone, and the model's only subject is subject 1."""
    data = _patterns(stimuli)
    acquire = Acquire(stimuli)
    node = _start(tmp_path, acquire)
    try:
        acquire.peer.publish(
            "events", kind="participants", meta={"node": "acquire", "subjects": [1]}
        )
        for trial in range(N_TRAIN):
            acquire.response(trial, 1, data[1, trial])
        fitting = _next_event(node, {"model_fitting"}, 10.0)  # no run_end needed
        assert fitting is not None and fitting.meta["subjects"] == [1], node.log()
        assert fitting.meta["trials"] == N_TRAIN
        assert _next_event(node, {"model_ready"}, 60.0) is not None, node.log()
        acquire.response(N_TRAIN, 1, data[1, N_TRAIN], phase="test")
        latent = node.recv(timeout_s=5.0, topic="latents")
        assert latent is not None and latent.meta["subjects"] == [1], node.log()
    finally:
        code = node.stop()
        acquire.peer.close()
    assert code == 0, node.log()


def test_calibration_store_round_trip_and_a_damaged_file(tmp_path):
    store = CalibrationStore(tmp_path / "calibration")
    assert store.load() == ([], []) and not store.ended
    store.add(3, 1, "face-0003", np.arange(4, dtype=np.float32), None)
    store.add(4, 0, "face-0004", None, "NaN in 2 of 4 voxels")
    (store.responses / "t000005-s000.npz").write_bytes(b"PK\x03\x04 truncated")
    store.mark_ended()
    stored, problems = store.load()
    assert [(r.trial, r.subject, r.stimulus, r.bad) for r in stored] == [
        (3, 1, "face-0003", None),
        (4, 0, "face-0004", "NaN in 2 of 4 voxels"),
    ]
    np.testing.assert_array_equal(stored[0].pattern, np.arange(4))
    assert stored[1].pattern is None
    assert len(problems) == 1 and problems[0].startswith("t000005-s000.npz: ")
    assert store.ended
