"""``bci-scanner-bridge`` with moving volumes: realigned samples and the companion motion stream."""

from __future__ import annotations

import signal
from pathlib import Path

import nibabel as nib
import numpy as np
import pylsl
from test_scanner_bridge import WAIT_S, connect, labels, pull, start_bridge, stream_name

from bci.bridge.motion_outlet import CHANNELS
from bci.sim.phantom import random_motion, write_moving_series

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
