"""``bci-scanner-bridge`` with moving volumes: realigned samples and the companion motion stream."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pylsl
from test_scanner_bridge import (
    REPO,
    WAIT_S,
    bridge_log,
    connect,
    labels,
    pull,
    start_bridge,
    stream_name,
)

from bci.bridge.motion_outlet import CHANNELS
from bci.lsl.streams import make_marker_outlet
from bci.session.config import validate_config
from bci.sim.phantom import random_motion, write_moving_series
from tests.harness import NodeProcess

__all__ = ["start_bridge"]  # the fixture


def test_bridge_realigns_moving_volumes_and_publishes_their_motion(tmp_path: Path, start_bridge):
    watch, name = tmp_path / "export", stream_name(tmp_path)
    params = random_motion(4, max_mm=2.0, max_deg=2.0, seed=3)
    write_moving_series(watch, params, noise=5.0, seed=3)
    mask = nib.load(watch / "mask.nii.gz").get_fdata() > 0
    reference = nib.load(watch / "vol_0000.nii.gz").get_fdata()[..., 0][mask]
    proc = start_bridge(
        "--watch", watch, "--mask", watch / "mask.nii.gz", "--name", name,
        "--pattern", "vol_*", "--settle-s", 0.1,
    )  # fmt: skip
    found = pylsl.resolve_bypred(f"name='{name}-motion'", 1, WAIT_S)
    assert found, f"no motion stream (bridge exit code {proc.poll()})"
    motion_inlet = pylsl.StreamInlet(found[0], max_buflen=60)
    motion_inlet.open_stream(WAIT_S)
    info = motion_inlet.info(WAIT_S)
    assert (info.type(), info.channel_count(), info.source_id()) == (
        "Motion",
        7,
        f"bci-scanner-bridge-{name}-motion",
    )
    assert labels(info) == list(CHANNELS)
    inlet, _ = connect(name, proc)  # the volumes are held until this consumer connects
    samples, stamps = pull(inlet, 4)
    rows, motion_stamps = pull(motion_inlet, 4)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(WAIT_S) == 0

    np.testing.assert_allclose(motion_stamps, stamps, atol=1e-6)
    rows = np.array(rows)
    assert np.abs(rows[:, :3] - params[:, :3]).max() < 0.1  # mm
    assert np.abs(rows[:, 3:6] - params[:, 3:]).max() < 0.1  # degrees
    assert rows[0, 6] == 0.0 and np.all(rows[1:, 6] > 0.5)  # FD
    for i, sample in enumerate(samples):
        moved = nib.load(watch / f"vol_{i:04d}.nii.gz").get_fdata()[..., 0][mask]
        realigned_r = np.corrcoef(sample, reference)[0, 1]
        assert realigned_r > 0.99
        if i:
            assert realigned_r > np.corrcoef(moved, reference)[0, 1]


def test_acquire_uses_the_bridge_motion_and_censors_the_volume_that_moved(
    tmp_path: Path, start_bridge
):
    """The bridge's motion stream, found by name, reaches acquire's preprocessing: a 1.5 mm jump
    is censored as motion, the still volumes before and after it are kept."""
    watch, name = tmp_path / "export", stream_name(tmp_path)
    params = np.zeros((6, 6))
    params[3:, 0] = 1.5  # volume 3 moves 1.5 mm along x and stays there
    write_moving_series(watch, params, noise=5.0, seed=4)
    config = validate_config(
        {
            "stimuli": {"path": str(REPO / "stimuli" / "demo-faces")},
            "session": {"heartbeat_s": 0.1},
            "timing": {"time_scale": 1.0, "tr_s": 2.0},
            "acquire": {
                "marker_stream": f"markers-{name}",
                "resolve_timeout_s": 10.0,
                "streams": [{"name": name, "subject": 0}],
            },
            "simulate": {"enabled": False},
        }
    )
    markers = make_marker_outlet(config["acquire"]["marker_stream"])
    proc = start_bridge(
        "--watch", watch, "--mask", watch / "mask.nii.gz", "--name", name,
        "--pattern", "vol_*", "--settle-s", 0.1,
    )  # fmt: skip
    assert pylsl.resolve_bypred(f"name='{name}-motion'", 1, WAIT_S), bridge_log(tmp_path)
    acquire = NodeProcess("acquire", config, tmp_path / "acquire", [])
    try:
        assert acquire.wait_state("ready", 30.0), acquire.log()
        acquire.send("start")
        deadline, preprocess = time.monotonic() + WAIT_S, {}
        while time.monotonic() < deadline and preprocess.get("volumes") != 6:
            msg = acquire.sub.recv(timeout_ms=100)
            if msg is not None and msg.topic == "heartbeat.acquire":
                preprocess = (msg.meta.get("preprocess") or {}).get("0", {})
    finally:
        acquire.stop()
        proc.send_signal(signal.SIGTERM)
        proc.wait(WAIT_S)
    del markers
    assert preprocess == {
        "method": "glm",
        "runs": 1,
        "volumes": 6,
        "censored": 1,
        "censored_by_reason": {"non-finite": 0, "motion": 1, "intensity": 0},
        "motion": True,
        "motion_unknown": 0,
    }, acquire.log()
    assert f"motion streams: {name}-motion" in acquire.log()
