"""Head motion: SimpleITK recovers known rigid moves of NIfTI volumes and realigns them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bci.bridge.motion import MotionCorrector
from bci.bridge.volumes import read_volume
from bci.preprocess import framewise_displacement
from bci.sim.phantom import epi_affine, moved_volume, random_motion, write_moving_series


def test_motion_of_moved_nifti_volumes_is_recovered(tmp_path: Path) -> None:
    params = random_motion(5, max_mm=2.0, max_deg=2.0, seed=1)
    params[4] = [2.0, -2.0, 2.0, -2.0, 2.0, -2.0]  # the corner of the range
    paths = write_moving_series(tmp_path, params, noise=5.0, seed=1)
    corrector = MotionCorrector()
    reference = read_volume(paths[0])
    previous = np.zeros(6)
    for i, path in enumerate(paths):
        volume = read_volume(path)
        motion = corrector.correct(volume.data, volume.affine)
        error = np.abs(motion.params - params[i])
        assert error[:3].max() < 0.1, f"volume {i}: translation error {error[:3]} mm"
        assert error[3:].max() < 0.1, f"volume {i}: rotation error {error[3:]} degrees"
        assert motion.fd_mm == pytest.approx(framewise_displacement(previous, motion.params))
        previous = motion.params
        inside = (slice(12, 52), slice(12, 52), slice(8, 28))
        before = np.corrcoef(volume.data[inside].ravel(), reference.data[inside].ravel())[0, 1]
        after = np.corrcoef(motion.realigned[inside].ravel(), reference.data[inside].ravel())[0, 1]
        assert after > 0.995 and (i == 0 or after > before)


def test_motion_errors_and_new_runs() -> None:
    corrector = MotionCorrector()
    with pytest.raises(ValueError, match="volume 4x5x3 is too small to estimate motion"):
        corrector.correct(np.zeros((4, 5, 3)), np.eye(4))
    data = np.ones((16, 16, 16), dtype=np.float32)
    corrector.correct(data, np.eye(4))
    data[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="volume has NaN/Inf values"):
        corrector.correct(data, np.eye(4))
    with pytest.raises(ValueError, match="volume has shape \\(16, 16, 17\\), the run's reference"):
        corrector.correct(np.ones((16, 16, 17)), np.eye(4))
    corrector.reset()  # a new run: any shape may be the reference
    assert corrector.correct(np.ones((16, 16, 17)), np.eye(4)).fd_mm == 0.0


def test_a_slab_moved_through_plane_keeps_its_edge_slices() -> None:
    # 16 slices of 3.5 mm through the middle of the head: the top and bottom slices cut the brain.
    shape = (48, 48, 16)
    affine = epi_affine(shape, (4.0, 4.0, 3.5))
    reference = moved_volume(np.zeros(6), shape, affine)
    moved = moved_volume([0.0, 0.0, 2.0, 0.0, 0.0, 0.0], shape, affine)
    corrector = MotionCorrector()
    corrector.correct(reference, affine)
    realigned = corrector.correct(moved, affine).realigned
    brain = reference > 350.0
    for k in (0, shape[2] - 1):  # the moved head left part of one edge slice's view
        ratio = realigned[..., k][brain[..., k]] / reference[..., k][brain[..., k]]
        assert np.percentile(ratio, 1) > 0.8, f"slice {k}: {np.percentile(ratio, [1, 50])}"
