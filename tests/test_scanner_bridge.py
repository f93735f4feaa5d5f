"""``bci-scanner-bridge`` end to end: the bridge runs as a subprocess watching a folder that the
test fills volume by volume; a real LSL inlet on loopback reads what it pushes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import nibabel as nib
import numpy as np
import pylsl
import pytest
from test_bridge_volumes import SHAPE, dicom_bytes, int_volume

from bci.bridge.cli import main

REPO = Path(__file__).resolve().parents[1]
PROG = "bci-scanner-bridge"
WAIT_S = 20.0  # generous upper bounds only: nothing below depends on timing
MASK_SHAPE = (4, 5, 3)

Start = Callable[..., subprocess.Popen]


@pytest.fixture
def start_bridge(tmp_path: Path) -> Iterator[Start]:
    """Start ``python -m bci.bridge.cli ARGS``; every bridge is killed when the test ends."""
    procs: list[subprocess.Popen] = []

    def start(*args: object) -> subprocess.Popen:
        log = (tmp_path / f"bridge-{len(procs)}.log").open("wb")
        cmd = [sys.executable, "-m", "bci.bridge.cli", *map(str, args)]
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(WAIT_S)


def bridge_log(tmp_path: Path, n: int = 0) -> str:
    return (tmp_path / f"bridge-{n}.log").read_text()


def wait_for_line(tmp_path: Path, text: str, n: int = 0) -> None:
    """Wait (at most WAIT_S) until the bridge's log holds ``text``."""
    deadline = time.monotonic() + WAIT_S
    while text not in bridge_log(tmp_path, n):
        assert time.monotonic() < deadline, f"the bridge never logged {text!r}"
        time.sleep(0.05)


def stream_name(tmp_path: Path) -> str:
    return f"bci-test-{tmp_path.name}-{uuid.uuid4().hex[:8]}"


def write_mask(path: Path, shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    keep = np.random.default_rng(seed).random(shape) < 0.5
    nib.save(nib.Nifti1Image(keep.astype(np.uint8), np.eye(4)), path)
    return keep


def connect(name: str, proc: subprocess.Popen) -> tuple[pylsl.StreamInlet, pylsl.StreamInfo]:
    """Resolve the bridge's stream, open an inlet; the full info (with desc) too."""
    found = pylsl.resolve_bypred(f"name='{name}'", 1, WAIT_S)
    assert found, f"stream {name!r} did not appear (bridge exit code {proc.poll()})"
    inlet = pylsl.StreamInlet(found[0], max_buflen=60, processing_flags=pylsl.proc_clocksync)
    inlet.open_stream(WAIT_S)
    return inlet, inlet.info(WAIT_S)


def pull(inlet: pylsl.StreamInlet, n: int) -> tuple[list[np.ndarray], list[float]]:
    samples, stamps = [], []
    for _ in range(n):
        sample, stamp = inlet.pull_sample(WAIT_S)
        assert sample is not None, f"got {len(samples)} of {n} samples"
        samples.append(np.asarray(sample, dtype=np.float32))
        stamps.append(stamp)
    return samples, stamps


def drain(inlet: pylsl.StreamInlet) -> list[list[float]]:
    extra = []
    while True:
        sample, _ = inlet.pull_sample(0.3)
        if sample is None:
            return extra
        extra.append(sample)


def desc_value(info: pylsl.StreamInfo, key: str) -> str:
    return info.desc().child_value(key)


def labels(info: pylsl.StreamInfo) -> list[str]:
    out, ch = [], info.desc().child("channels").child("channel")
    while not ch.empty():
        out.append(ch.child_value("label"))
        ch = ch.next_sibling()
    return out


def save(folder: Path, name: str, data: np.ndarray) -> float:
    """Write a NIfTI volume in place (not atomically, like a scanner); the LSL time before."""
    t = pylsl.local_clock()
    nib.save(nib.Nifti1Image(data, np.eye(4)), folder / name)
    return t


def test_volumes_reach_lsl_in_order_and_bad_files_are_skipped(tmp_path: Path, start_bridge):
    watch, name = tmp_path / "export", stream_name(tmp_path)
    watch.mkdir()
    keep = write_mask(tmp_path / "mask.nii.gz", MASK_SHAPE)
    rng = np.random.default_rng(1)
    vols = {i: rng.standard_normal(MASK_SHAPE).astype(np.float32) for i in range(8)}
    vols[6][tuple(np.argwhere(keep)[2])] = np.nan  # a NaN inside the mask: pushed as is
    written = {1: save(watch, "vol_0001.nii", vols[1]), 2: save(watch, "vol_0002.nii", vols[2])}

    proc = start_bridge(
        "--watch", watch, "--mask", tmp_path / "mask.nii.gz", "--tr", 1.5, "--name", name,
        "--settle-s", 0.1, "-vv",
    )  # fmt: skip
    inlet, info = connect(name, proc)
    assert (info.type(), info.channel_count()) == ("fMRI", int(keep.sum()))
    assert info.nominal_srate() == pytest.approx(1 / 1.5)
    assert info.channel_format() == pylsl.cf_float32
    assert info.source_id() == f"bci-scanner-bridge-{name}"
    assert desc_value(info, "tr_s") == "1.5"
    assert desc_value(info, "mask") == str((tmp_path / "mask.nii.gz").resolve())
    assert labels(info) == [f"voxel-{i}-{j}-{k}" for i, j, k in np.argwhere(keep)]

    samples, stamps = pull(inlet, 2)  # the files that were there before the bridge started

    (watch / "vol_0000.nii").write_bytes(nib.Nifti1Image(vols[0], np.eye(4)).to_bytes())
    nib.save(nib.Nifti1Image(vols[2] + 1, np.eye(4)), watch / "vol_0002.nii.gz")
    st = (watch / "vol_0001.nii").stat()
    (watch / "vol_0001.nii").touch()
    assert (watch / "vol_0001.nii").stat().st_mtime_ns != st.st_mtime_ns
    (watch / "vol_0003.nii").write_bytes(b"\x13 garbage, not a NIfTI file \x13" * 100)
    written[4] = save(watch, "vol_0004.nii", vols[4])
    raw = nib.Nifti1Image(vols[5], np.eye(4)).to_bytes()
    written[5] = pylsl.local_clock()
    with (watch / "vol_0005.nii").open("wb") as f:  # half, a pause, the rest
        f.write(raw[: len(raw) // 2])
        f.flush()
        time.sleep(0.5)  # the writer pauses for longer than --settle-s
        f.write(raw[len(raw) // 2 :])
    written[6] = save(watch, "vol_0006.nii", vols[6])
    save(watch, "vol_0007.nii", np.zeros((4, 5, 4), np.float32))  # not the mask's shape

    more, more_stamps = pull(inlet, 3)
    wait_for_line(tmp_path, "vol_0003.nii: unreadable")  # reported 2 s after it settled
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(WAIT_S) == 0
    assert drain(inlet) == []
    samples += more
    stamps += more_stamps

    pushed = [1, 2, 4, 5, 6]
    assert len(samples) == len(pushed)
    for sample, i in zip(samples, pushed, strict=True):
        np.testing.assert_array_equal(sample, vols[i][keep])  # exact float32, NaN included
    assert np.isnan(samples[-1][2])
    assert all(a <= b for a, b in zip(stamps, stamps[1:], strict=False))
    for stamp, i in zip(stamps, pushed, strict=True):
        assert stamp >= written[i] - 0.05  # stamped when complete, never before writing began

    log = bridge_log(tmp_path)
    assert (
        f"INFO bci.bridge.cli: watching {watch} (existing files first): mask "
        f"{tmp_path / 'mask.nii.gz'} ({keep.sum()} voxels of 4x5x3), TR 1.5 s, LSL stream "
        f"{name!r} (type fMRI, source_id 'bci-scanner-bridge-{name}')"
    ) in log
    for line in [
        "WARNING bci.bridge.folder: vol_0000.nii: volume 0 arrived after volume 2; dropped (out "
        "of order)",
        "WARNING bci.bridge.folder: vol_0002.nii.gz: duplicate of volume 2 (vol_0002.nii); ignored",
        "WARNING bci.bridge.folder: vol_0001.nii: changed after volume 1 was read; ignored "
        "(duplicate)",
        "ERROR bci.bridge.folder: vol_0003.nii: unreadable (not a NIfTI-1/NIfTI-2 file (no header "
        "size 348 or 540)); skipped unless it changes",
        "WARNING bci.bridge.folder: gap: no volume 3 before vol_0004.nii (volume 4); pushing on",
        "WARNING bci.bridge.cli: vol_0006.nii: NaN/Inf in 1 of "
        f"{keep.sum()} mask voxels; pushed as it is (the acquire node marks such trials bad)",
        "ERROR bci.bridge.cli: vol_0007.nii: shape (4, 5, 4) differs from the mask's (4, 5, 3); "
        "skipped",
        "DEBUG bci.bridge.cli: vol_0005.nii: volume 5 pushed",
        f"INFO bci.bridge.cli: stopped: 5 volumes pushed to {name!r}",
    ]:
        assert line in log
    assert "vol_0005.nii: unreadable" not in log  # the half-written file was just waited for
    assert log.count("unreadable (") == 1


def test_tr_comes_from_the_nifti_header_without_tr(tmp_path: Path, start_bridge):
    watch, name = tmp_path / "export", stream_name(tmp_path)
    watch.mkdir()
    keep = write_mask(tmp_path / "mask.nii", MASK_SHAPE, seed=2)
    data = np.random.default_rng(3).standard_normal((*MASK_SHAPE, 1)).astype(np.float32)
    img = nib.Nifti1Image(data, np.eye(4))
    img.header.set_zooms((2.0, 2.0, 2.0, 0.8))
    nib.save(img, watch / "run1_vol7.nii.gz")

    proc = start_bridge(
        "--watch", watch, "--mask", tmp_path / "mask.nii", "--name", name,
        "--pattern", "run1_*", "--settle-s", 0.05, "-v",
    )  # fmt: skip
    inlet, info = connect(name, proc)
    assert info.nominal_srate() == pytest.approx(1 / 0.8)
    assert desc_value(info, "tr_s") == "0.8"
    samples, _ = pull(inlet, 1)
    np.testing.assert_array_equal(samples[0], data[..., 0][keep])
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(WAIT_S) == 0
    log = bridge_log(tmp_path)
    assert "TR from the first volume's header" in log
    assert f"TR 0.8 s from the header of run1_vol7.nii.gz; stream {name!r} is up" in log


def test_dicom_volumes_multiframe_and_mosaic_and_sigterm(tmp_path: Path, start_bridge):
    watch, name = tmp_path / "export", stream_name(tmp_path)
    watch.mkdir()
    keep = write_mask(tmp_path / "mask.nii.gz", SHAPE, seed=4)
    vols = {1: int_volume(10), 2: int_volume(11)}
    (watch / "001_000007_000001.dcm").write_bytes(dicom_bytes(vols[1], instance=1))
    (watch / "001_000007_000002.dcm").write_bytes(dicom_bytes(vols[2], instance=2, mosaic=True))

    proc = start_bridge(
        "--watch", watch, "--mask", tmp_path / "mask.nii.gz", "--name", name,
        "--source-id", f"{name}-id", "--settle-s", 0.05, "-v",
    )  # fmt: skip
    inlet, info = connect(name, proc)
    assert info.source_id() == f"{name}-id"
    assert info.nominal_srate() == pytest.approx(1 / 0.8)  # RepetitionTime 800 ms
    samples, _ = pull(inlet, 2)
    np.testing.assert_array_equal(samples[0], vols[1][keep])
    np.testing.assert_array_equal(samples[1], vols[2][keep])
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(WAIT_S) == 0
    assert f"stopped: 2 volumes pushed to {name!r}" in bridge_log(tmp_path)


def test_timeout_ends_the_bridge_when_no_volume_arrives(tmp_path: Path, start_bridge):
    watch, name = tmp_path / "export", stream_name(tmp_path)
    watch.mkdir()
    write_mask(tmp_path / "mask.nii.gz", MASK_SHAPE)
    proc = start_bridge(
        "--watch", watch, "--mask", tmp_path / "mask.nii.gz", "--tr", 2, "--name", name,
        "--timeout-s", 0.5, "-v",
    )  # fmt: skip
    assert proc.wait(WAIT_S) == 0
    log = bridge_log(tmp_path)
    assert "INFO bci.bridge.cli: no new volume for 0.5 s; stopping" in log
    assert f"INFO bci.bridge.cli: stopped: 0 volumes pushed to {name!r}" in log


def test_no_tr_anywhere_is_an_error(tmp_path: Path, start_bridge):
    watch = tmp_path / "export"
    watch.mkdir()
    write_mask(tmp_path / "mask.nii.gz", MASK_SHAPE)
    save(watch, "vol_0001.nii", np.ones(MASK_SHAPE, np.float32))  # 3-D, no time unit: no TR
    proc = start_bridge(
        "--watch", watch, "--mask", tmp_path / "mask.nii.gz", "--name", stream_name(tmp_path),
        "--settle-s", 0.05,
    )  # fmt: skip
    assert proc.wait(WAIT_S) == 2
    assert bridge_log(tmp_path).splitlines()[-1] == (
        f"{PROG}: vol_0001.nii has no TR in its header (NIfTI pixdim[4] / DICOM "
        "RepetitionTime); pass --tr"
    )


def bad_arguments(tmp: Path) -> list[tuple[list[str], str]]:
    (tmp / "folder").mkdir()
    (tmp / "file").write_bytes(b"x")
    (tmp / "garbage.nii").write_bytes(b"\x01" * 500)
    nib.save(nib.Nifti1Image(np.ones((3, 3, 3, 2), np.uint8), np.eye(4)), tmp / "4d.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((3, 3, 3), np.uint8), np.eye(4)), tmp / "empty.nii.gz")
    nib.save(nib.Nifti1Image(np.ones((3, 3, 3), np.uint8), np.eye(4)), tmp / "mask.nii.gz")
    d, m = str(tmp / "folder"), str(tmp / "mask.nii.gz")
    return [
        (["--watch", str(tmp / "nope"), "--mask", m], f"watch folder not found: {tmp / 'nope'}"),
        (["--watch", str(tmp / "file"), "--mask", m], f"--watch {tmp / 'file'} is not a folder"),
        (["--watch", d], "the following arguments are required: --mask (see --help)"),
        (["--watch", d, "--mask", str(tmp / "no.nii")], f"mask file not found: {tmp / 'no.nii'}"),
        (
            ["--watch", d, "--mask", str(tmp / "garbage.nii")],
            f"cannot read mask {tmp / 'garbage.nii'}: not a NIfTI-1/NIfTI-2 file "
            "(no header size 348 or 540)",
        ),
        (
            ["--watch", d, "--mask", str(tmp / "4d.nii.gz")],
            f"mask {tmp / '4d.nii.gz'} is not 3-D (shape (3, 3, 3, 2))",
        ),
        (
            ["--watch", d, "--mask", str(tmp / "empty.nii.gz")],
            f"mask {tmp / 'empty.nii.gz'} has no nonzero voxels",
        ),
        (["--watch", d, "--mask", m, "--tr", "0"], "--tr must be > 0 (got 0.0)"),
        (
            ["--watch", d, "--mask", m, "--tr", "two"],
            "argument --tr: invalid float value: 'two' (see --help)",
        ),  # fmt: skip
        (["--watch", d, "--mask", m, "--settle-s", "-1"], "--settle-s must be >= 0 (got -1.0)"),
        (["--watch", d, "--mask", m, "--timeout-s", "0"], "--timeout-s must be > 0 (got 0.0)"),
        (["--watch", d, "--mask", m, "--name", ""], "--name must not be empty"),
        (
            ["--watch", d, "--mask", m, "--name", "it's"],
            "--name and --source-id cannot contain a quote",
        ),
    ]


def test_bad_arguments_give_one_line_and_exit_code_2(tmp_path: Path, capsys):
    for argv, message in bad_arguments(tmp_path):
        assert main(argv) == 2, argv
        out, err = capsys.readouterr()
        assert (out, err) == ("", f"{PROG}: {message}\n"), argv


def test_bad_arguments_exit_code_of_the_process(tmp_path: Path):
    argv, message = bad_arguments(tmp_path)[-1]
    result = subprocess.run(
        [sys.executable, "-m", "bci.bridge.cli", *argv], cwd=REPO, capture_output=True, text=True
    )
    assert (result.returncode, result.stdout, result.stderr) == (2, "", f"{PROG}: {message}\n")


def test_real_tr_volumes_are_stamped_at_acquisition_and_emit_triggers(tmp_path, start_bridge):
    """Files written at the real TR (2 s), two runs with a pause: every volume is stamped with
    the time its file was complete minus the export delay, and has a trigger with that stamp."""
    watch, name = tmp_path / "export", stream_name(tmp_path)
    watch.mkdir()
    mask = tmp_path / "mask.nii.gz"
    write_mask(mask, MASK_SHAPE)
    triggers = f"{name}-triggers"
    delay, settle = 1.5, 0.1
    proc = start_bridge(
        "--watch", watch, "--mask", mask, "--tr", 2.0, "--name", name,
        "--settle-s", settle, "--export-delay-s", delay, "--triggers", triggers,
    )  # fmt: skip
    inlet, info = connect(name, proc)
    found = pylsl.resolve_bypred(f"name='{triggers}'", 1, WAIT_S)
    assert found and found[0].type() == "Markers"
    trigger_inlet = pylsl.StreamInlet(found[0], processing_flags=pylsl.proc_clocksync)
    trigger_inlet.open_stream(WAIT_S)
    assert desc_value(info, "export_delay_s") == "1.5"
    written = []
    plan = [(0, 0.0), (1, 2.0), (2, 2.0), (3, 6.0), (4, 2.0)]  # a 4 s pause before volume 3
    for index, wait in plan:
        time.sleep(wait)
        save(watch, f"vol_{index:04d}.nii", int_volume(index, MASK_SHAPE))
        written.append(pylsl.local_clock())  # the file is complete now
    _, stamps = pull(inlet, len(plan))
    marks, trigger_stamps = [], []
    for _ in plan:
        sample, stamp = trigger_inlet.pull_sample(WAIT_S)
        assert sample is not None
        marks.append(json.loads(sample[0]))
        trigger_stamps.append(stamp)
    assert [m["event"] for m in marks] == ["trigger"] * 5
    assert [m["volume"] for m in marks] == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(trigger_stamps, stamps, atol=1e-6)
    # complete-time minus the delay: at most settle + two polls later than the write
    for stamp, t in zip(stamps, written, strict=True):
        assert t - delay - 0.01 <= stamp <= t - delay + settle + 0.3, (stamp, t)
    np.testing.assert_allclose(np.diff(stamps), [2.0, 2.0, 6.0, 2.0], atol=0.3)
