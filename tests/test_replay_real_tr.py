"""A recording made elsewhere at a real scanner's pace replays exactly, at any speed.

The file is written by the tests' own XDF writer, as another program would write it: two
participants' fMRI streams at TR 2 s (1024 voxels, nominal rate 0.5 Hz), a calibration run of
120 trials and a test run of 24 trials with a 40 s pause between them in which no volume was
acquired, and the display's JSON markers (phase, stimulus, blank; no run markers), stored before
the data streams and with clock offsets. Before this was fixed, pyxdf's dejittering spread the
pause over the whole stream and a ``--speed 0`` replay lost most volumes in liblsl's buffers.
Each participant has a broken volume (a NaN voxel) and an intensity spike in the calibration run:
the online preprocessing censors both, and the session goes on without a bad trial.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from session_helpers import REPO, node_processes, read_summary, run_session
from xdf_writer import XdfStream, write_xdf

from bci.session.config import config_to_toml
from bci.stimulus_set import load_stimulus_set

pytestmark = pytest.mark.slow

TR, N_VOXELS, N_TRAIN, N_TEST, GAP_S = 2.0, 1024, 120, 24, 40.0
TRIAL_S, STIMULUS_S = 1.0, 0.5  # a fast event-related design keeps the replay short
NAN_VOLUME, SPIKE_VOLUME = 30, 40  # of the calibration run, each participant
DELAY_S, WINDOW_S = 4.0, 4.0
T0 = 5000.0


def _write_recording(path):
    stimuli = load_stimulus_set(REPO / "stimuli" / "demo-faces")
    rng = np.random.default_rng(7)
    n_runs = [(0, N_TRAIN, "train"), (N_TRAIN, N_TEST, "test")]
    volume_t, markers, t_run = [], [], T0
    for first, n, phase in n_runs:
        onsets = t_run + TR + TRIAL_S * np.arange(n)  # one volume of lead-in
        markers.append((onsets[0], {"event": "phase", "phase": phase}))
        for k, onset in enumerate(onsets):
            trial = first + k
            sid = stimuli.ids[trial]
            markers.append(
                (onset, {"event": "stimulus", "phase": phase, "stimulus": sid, "trial": trial})
            )
            markers.append((onset + STIMULUS_S, {"event": "blank", "phase": phase, "trial": trial}))
        n_volumes = int(np.ceil((onsets[-1] + DELAY_S + WINDOW_S + TR - t_run) / TR))
        volume_t.append(t_run + TR * np.arange(n_volumes))
        t_run = volume_t[-1][-1] + TR + GAP_S
    stamps = np.concatenate(volume_t)
    onsets = np.array([t for t, m in markers if m["event"] == "stimulus"])
    trials = [m["trial"] for _, m in markers if m["event"] == "stimulus"]
    streams = []
    for subject in range(2):
        weights = rng.standard_normal((stimuli.latent_dim, N_VOXELS)).astype(np.float32)
        data = rng.standard_normal((stamps.size, N_VOXELS)).astype(np.float32)
        for onset, trial in zip(onsets, trials, strict=True):
            inside = (stamps >= onset + DELAY_S) & (stamps < onset + DELAY_S + WINDOW_S)
            data[inside] += 2.0 * stimuli.latents[trial] @ weights
        data[NAN_VOLUME, 5] = np.nan
        data[SPIKE_VOLUME] += 20.0  # every voxel: the global mean jumps ~40 SDs of its jumps
        name = f"sub-{subject + 1:02d}"
        streams.append(
            XdfStream(
                name,
                "fMRI",
                "float32",
                1.0 / TR,
                stamps + rng.uniform(-1e-4, 1e-4, stamps.size),  # sub-ms stamping jitter
                data,
                source_id=f"bridge-{name}",
                chunk_samples=1,
                clock_offsets=[(t, 0.002) for t in np.arange(T0 - 10, stamps[-1] + 10, 5.0)],
            )
        )
    marker_stream = XdfStream(
        "scanner-markers",
        "Markers",
        "string",
        0.0,
        np.array([t for t, _ in markers]),
        [[json.dumps(m)] for _, m in markers],
        source_id="stim-pc",
        chunk_samples=1,
    )
    return write_xdf(path, [marker_stream, *streams])  # the markers first: another order


def _config(path):
    raw = {
        "session": {"mode": "decode", "heartbeat_timeout_s": 20.0},
        "stimuli": {
            "path": str(REPO / "stimuli" / "demo-faces"),
            "n_train": N_TRAIN,
            "n_test": N_TEST,
        },
        "timing": {
            "time_scale": 1.0,
            "tr_s": TR,
            "stimulus_s": STIMULUS_S,
            "isi_s": TRIAL_S - STIMULUS_S,
        },
        "acquire": {
            "marker_stream": "scanner-markers",
            "delay_s": DELAY_S,
            "window_s": WINDOW_S,
            "resolve_timeout_s": 20.0,
            "streams": [
                {"name": "sub-01", "type": "fMRI", "subject": 0},
                {"name": "sub-02", "type": "fMRI", "subject": 1},
            ],
        },
        "simulate": {"enabled": False},
    }
    path.write_text(config_to_toml(raw))
    return path


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("real-tr")
    return _write_recording(tmp / "scan.xdf"), _config(tmp / "scan.toml")


@pytest.fixture(scope="module")
def decoded() -> dict[str, np.ndarray]:
    """The latents each replay decoded, by speed (filled by the replay tests of this module)."""
    return {}


@pytest.mark.parametrize("speed", ["0", "10"])
def test_real_tr_recording_replays_every_trial(recording, tmp_path, speed, decoded):
    xdf, config = recording
    out = tmp_path / f"replay-{speed}"
    done = run_session(config, out, "--replay", str(xdf), "--speed", speed, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = read_summary(out)
    assert summary["trials"] == {"train": N_TRAIN, "test": N_TEST}
    assert summary["bad_trials"] == 0
    runs = summary["runs"]
    assert [(r["phase"], r["trials"], r["trials_used"]) for r in runs] == [
        ("train", N_TRAIN, N_TRAIN),
        ("test", N_TEST, N_TEST),
    ]
    assert [r["bad_trials"] for r in runs] == [[], []]
    censored = {"non-finite": 1, "motion": 0, "intensity": 1}
    assert [p["censored_by_reason"] for p in summary["preprocess"].values()] == [censored] * 2
    assert [r["censored_volumes"] for r in runs] == [
        {s: {"non-finite": 1, "intensity": 1} for s in ("0", "1")},
        {},
    ]
    samples = summary["replay"]["samples"]
    assert set(samples) == {"sub-01", "sub-02"}
    assert all(s["lost"] == 0 and s["received"] == s["pushed"] for s in samples.values())
    for r in runs:  # the volumes of each run, for both participants
        assert len(set(r["volumes_received"].values())) == 1
    assert sum(r["volumes_received"]["0"] for r in runs) == samples["sub-01"]["pushed"]
    latents = np.load(out / "decoded_latents.npz")
    assert list(latents["trial"]) == list(range(N_TRAIN, N_TRAIN + N_TEST))
    assert summary["decoding"]["latent_correlation"] > 0.3  # chance is 0
    decoded[speed] = latents["decoded"]
    assert node_processes(str(out)) == []


def test_real_tr_replays_decode_the_same_latents_at_both_speeds(decoded):
    assert set(decoded) == {"0", "10"}, "both replays of this module must have run and passed"
    assert np.max(np.abs(decoded["0"] - decoded["10"])) <= 1e-5
