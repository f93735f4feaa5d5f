"""A decode session fed by a real ``bci-scanner-bridge`` watching a folder of moving volumes.

The test is the scanner: a thread writes one NIfTI volume of the head phantom every TR (wall
seconds) into the bridge's folder. The head drifts slowly (still at first, then up to 1 mm and
1 degree on every axis) and jumps once by 0.8 mm and 0.8 degree; every volume carries the evoked
response (``latent @ weights``, moving with the head) of the stimulus the display showed
``DELAY_S`` (scanner seconds) before it, read off the display's own LSL markers. The bridge
emits a trigger per volume, and the session starts each run on one, so stimulus onsets are locked
to the volumes and each trial's window holds one volume in its middle.

The session must decode above chance, use the bridge's motion stream (the jump censored as
motion, not fatal), and the motion the bridge estimated must be the motion the test applied.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pylsl
import pytest
from scipy.ndimage import gaussian_filter
from session_helpers import node_processes, read_summary, start_session
from test_scanner_bridge import REPO, WAIT_S, bridge_log, start_bridge, stream_name

from bci.session.config import config_to_toml
from bci.sim.phantom import epi_affine, move_with_head, moved_volume
from bci.stimulus_set import load_stimulus_set

__all__ = ["start_bridge"]  # the fixture

pytestmark = pytest.mark.slow

SHAPE, ZOOMS = (48, 48, 28), (4.0, 4.0, 4.5)  # small: 0.1-0.4 s to realign a volume
TR, TIME_SCALE = 2.0, 2.0  # a TR of 1 s of wall time (the fake scanner takes 0.1-0.3 s a volume)
TR_WALL = TR / TIME_SCALE
N_TRAIN, N_TEST = 40, 8
DELAY_S, WINDOW_S = 3.0, 2.0  # the window [onset + 3, onset + 5) s holds the volume at onset + 4
RESPONSE_S = 4.0  # the volume that carries a trial's response: 2 TRs after its onset
EVOKED, NOISE = 10.0, 5.0  # the brain is ~700
DRIFT = np.array([0.8, -0.6, 0.5, 0.8, -0.5, 0.6])  # mm, degrees: reached at volume 46
JUMP = np.array([0.8, 0.0, 0.0, 0.0, 0.0, 0.8])
JUMP_TRIAL = 20  # the volume with this trial's response jumps (and the head stays there)


def drift(k: int) -> np.ndarray:
    """The slow part of volume ``k``'s motion: still for 6 volumes, a ramp over 40, then held."""
    return DRIFT * float(np.clip((k - 6) / 40.0, 0.0, 1.0))


class Scanner(threading.Thread):
    """Writes a volume every ``TR_WALL`` s; each carries the responses the markers call for."""

    def __init__(self, folder: Path, markers: str, affine: np.ndarray, weights: np.ndarray):
        super().__init__(daemon=True)
        self.folder, self.marker_name, self.affine, self.weights = folder, markers, affine, weights
        self.stimuli = load_stimulus_set(REPO / "stimuli" / "demo-faces")
        self.rng = np.random.default_rng(5)
        self.stop = threading.Event()
        self.params: list[np.ndarray] = []  # the true motion of every volume written
        self.carried: dict[int, int] = {}  # trial -> the volume that carries its response
        self.jump_at: int | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as err:  # reported by the test
            self.error = err

    def _run(self) -> None:
        inlet, pending = None, []  # (response time, trial, latent index)
        start = pylsl.local_clock()
        k = 0
        while not self.stop.is_set():
            t = start + k * TR_WALL
            time.sleep(max(0.0, t - pylsl.local_clock()))
            if inlet is None:
                found = pylsl.resolve_bypred(f"name='{self.marker_name}'", 1, 0.0)
                if found:
                    inlet = pylsl.StreamInlet(found[0], processing_flags=pylsl.proc_clocksync)
                    inlet.open_stream(WAIT_S)
            while inlet is not None:
                sample, stamp = inlet.pull_sample(0.0)
                if sample is None:
                    break
                marker = json.loads(sample[0])
                if marker.get("event") == "stimulus":
                    index = self.stimuli.ids.index(marker["stimulus"])
                    pending.append((stamp + RESPONSE_S / TIME_SCALE, marker["trial"], index))
            now = [p for p in pending if abs(p[0] - t) < TR_WALL / 2]
            pending = [p for p in pending if p[0] >= t + TR_WALL / 2]
            if self.jump_at is None and any(trial == JUMP_TRIAL for _, trial, _ in now):
                self.jump_at = k
            params = drift(k) + (JUMP if self.jump_at is not None else 0.0)
            evoked = np.zeros(SHAPE, np.float32)
            for _, trial, index in now:
                self.carried[trial] = k
                evoked += EVOKED * np.tensordot(self.stimuli.latents[index], self.weights, 1)
            data = moved_volume(params, SHAPE, self.affine) + move_with_head(
                evoked, params, self.affine
            )
            data += NOISE * self.rng.standard_normal(SHAPE).astype(np.float32)
            image = nib.Nifti1Image(data[..., None], self.affine)
            image.header.set_xyzt_units("mm", "sec")
            image.header["pixdim"][4] = TR_WALL
            nib.save(image, self.folder / f"tmp_{k:04d}.nii")
            os.replace(self.folder / f"tmp_{k:04d}.nii", self.folder / f"vol_{k:04d}.nii")
            self.params.append(params)
            k += 1


def _config(path: Path, name: str) -> Path:
    raw = {
        "session": {"mode": "decode", "heartbeat_timeout_s": 20.0},
        "stimuli": {
            "path": str(REPO / "stimuli" / "demo-faces"),
            "n_train": N_TRAIN,
            "n_test": N_TEST,
        },
        "timing": {
            "time_scale": TIME_SCALE,
            "tr_s": TR,
            "stimulus_s": TR / 2,
            "isi_s": TR / 2,  # one trial per TR
            "run_break_s": 4.0,
            "lead_in_s": 4.0,  # longer than the bridge's settle time
        },
        "trigger": {"source": "lsl", "stream": f"{name}-triggers"},
        "acquire": {
            "marker_stream": f"markers-{name}",
            "delay_s": DELAY_S,
            "window_s": WINDOW_S,
            "resolve_timeout_s": 20.0,
            "streams": [{"name": name, "type": "fMRI", "subject": 0}],
        },
        "simulate": {"enabled": False},
        "display": {"width": 320, "height": 240},
    }
    path.write_text(config_to_toml(raw))
    return path


def test_session_decodes_moving_volumes_through_the_bridge(tmp_path: Path, start_bridge):
    watch, name = tmp_path / "export", stream_name(tmp_path)
    watch.mkdir()
    affine = epi_affine(SHAPE, ZOOMS)
    rng = np.random.default_rng(11)
    brain = moved_volume(np.zeros(6), SHAPE, affine) > 350.0
    mask = brain & (rng.random(SHAPE) < 0.1)
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), affine), tmp_path / "mask.nii.gz")
    latent_dim = load_stimulus_set(REPO / "stimuli" / "demo-faces").latents.shape[1]
    weights = np.stack(  # smooth over a voxel, so that moving and realigning keeps them
        [gaussian_filter(rng.standard_normal(SHAPE), 1.0) for _ in range(latent_dim)]
    )
    weights *= brain / weights.std(axis=(1, 2, 3), keepdims=True) / np.sqrt(latent_dim)
    weights = weights.astype(np.float32)

    bridge = start_bridge(
        "--watch", watch, "--mask", tmp_path / "mask.nii.gz", "--name", name, "--tr", TR_WALL,
        "--pattern", "vol_*", "--settle-s", 0.1, "--triggers", f"{name}-triggers", "-vv",
    )  # fmt: skip
    found = pylsl.resolve_bypred(f"name='{name}-motion'", 1, WAIT_S)
    assert found, bridge_log(tmp_path)
    motion = pylsl.StreamInlet(found[0], max_buflen=600)
    motion.open_stream(WAIT_S)
    scanner = Scanner(watch, f"markers-{name}", affine, weights)
    scanner.start()
    out = tmp_path / "session"
    session = start_session(_config(tmp_path / "session.toml", name), out)
    try:
        stdout, stderr = session.communicate(timeout=240)
    finally:
        scanner.stop.set()
        scanner.join(WAIT_S)
        if session.poll() is None:
            session.kill()
    assert scanner.error is None, scanner.error
    assert session.returncode == 0, stderr[-3000:]

    rows = []
    while len(rows) < len(scanner.params):
        sample, _ = motion.pull_sample(WAIT_S)
        assert sample is not None, f"{len(rows)} of {len(scanner.params)} motion samples"
        rows.append(sample)
    bridge.send_signal(signal.SIGTERM)
    assert bridge.wait(WAIT_S) == 0
    rows, true = np.array(rows), np.array(scanner.params)
    error_mm = np.abs(rows[:, :3] - true[:, :3]).max()
    error_deg = np.abs(rows[:, 3:6] - true[:, 3:]).max()
    print(f"motion error {error_mm:.3f} mm {error_deg:.3f} deg over {len(rows)} volumes")
    # At this small grid (4 mm voxels) and with the evoked response in the volumes, the rotations
    # are recovered less well than the 64x64x36 phantom's 0.1 degree (tests/test_bridge_motion_
    # stream.py): measured 0.046 mm and 0.18 degree here.
    assert error_mm < 0.1 and error_deg < 0.3
    assert scanner.jump_at is not None and rows[scanner.jump_at, 6] > 1.0  # FD of the jump

    summary = read_summary(out)
    print(json.dumps({k: summary.get(k) for k in ("trials", "bad_trials", "decoding")}))
    print(json.dumps(summary["preprocess"]), json.dumps(summary["runs"])[:3000])
    pre = summary["preprocess"]["0"]
    assert pre["motion"] is True and pre["motion_unknown"] == 0
    assert pre["censored_by_reason"] == {"non-finite": 0, "motion": 1, "intensity": 0}
    # the jump's volume is the only one of trial 20's window: that trial alone is bad
    assert summary["trials"] == {"train": N_TRAIN - 1, "test": N_TEST}
    assert summary["bad_trials"] == 1
    assert summary["runs"][0]["bad_trials"] == [
        {"trial": JUMP_TRIAL, "reason": "all 1 volumes of the window censored"}
    ]
    assert summary["runs"][0]["censored_volumes"] == {"0": {"motion": 1}}
    decoding = summary["decoding"]
    assert decoding["n"] == N_TEST
    # chance is 0; measured 0.32 and 0.35 on 8 test trials with the default high-pass (0.48
    # without it: the phantom has no drift and a high SNR, where the high-pass costs most)
    assert decoding["latent_correlation"] > 0.2
    assert decoding["identification_2way"] > 0.8  # chance is 0.5; measured 1.0
    assert node_processes(str(out)) == []
