"""The bridge's folder watcher: completeness, order, gaps, duplicates (real files, a fake clock)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from test_bridge_volumes import dicom_bytes, int_volume

from bci.bridge.folder import (
    MTIME_WINDOW,
    FolderWatcher,
    ReadyVolume,
    is_volume_name,
    name_index,
)

SETTLE, GAP, UNREADABLE = 0.2, 1.0, 2.0
GARBAGE = b"\x07 not a volume \x07" * 40


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t = round(self.t + dt, 6)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="bci.bridge")
    return caplog


def messages(caplog: pytest.LogCaptureFixture, level: int = logging.WARNING) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= level]


def make_watcher(folder: Path, clock: Clock, **kw) -> FolderWatcher:
    """A watcher on the test's clock; stamped by poll times unless ``use_mtime=True``."""
    kw = {"settle_s": SETTLE, "gap_s": GAP, "unreadable_s": UNREADABLE, "use_mtime": False, **kw}
    return FolderWatcher(folder, clock=clock, **kw)


def volume_bytes(seed: int) -> tuple[bytes, np.ndarray]:
    data = np.random.default_rng(seed).standard_normal((3, 4, 2)).astype(np.float32)
    return nib.Nifti1Image(data, np.eye(4)).to_bytes(), data


def write(folder: Path, name: str, seed: int) -> np.ndarray:
    raw, data = volume_bytes(seed)
    (folder / name).write_bytes(raw)
    return data


def settle(watcher: FolderWatcher, clock: Clock) -> list[ReadyVolume]:
    """Poll once (the watcher sees the files as they are), then again once they settled."""
    first = watcher.poll()
    clock.advance(SETTLE + 0.05)
    return first + watcher.poll()


def test_existing_files_are_read_once_settled_in_index_order(tmp_path: Path, clock: Clock, logs):
    second = write(tmp_path, "vol_0002.nii", 2)
    first = write(tmp_path, "vol_0001.nii.gz", 1)
    (tmp_path / ".vol_0000.nii").write_bytes(GARBAGE)  # hidden: never read
    (tmp_path / "notes.txt").write_bytes(GARBAGE)  # not a volume name
    watcher = make_watcher(tmp_path, clock)
    assert watcher.poll() == []
    clock.advance(SETTLE - 0.05)
    assert watcher.poll() == []  # not settled yet
    clock.advance(0.1)
    ready = watcher.poll()
    assert [r.index for r in ready] == [1, 2]
    assert [r.path.name for r in ready] == ["vol_0001.nii.gz", "vol_0002.nii"]
    np.testing.assert_array_equal(ready[0].volume.data, first)
    np.testing.assert_array_equal(ready[1].volume.data, second)
    assert [r.completed_at for r in ready] == [100.0, 100.0]  # when first seen complete
    clock.advance(1.0)
    assert watcher.poll() == []
    assert messages(logs) == []


def test_a_file_written_in_two_halves_is_read_once_complete(tmp_path: Path, clock: Clock, logs):
    raw, data = volume_bytes(3)
    path = tmp_path / "vol_0007.nii"
    path.write_bytes(raw[: len(raw) // 2])
    watcher = make_watcher(tmp_path, clock)
    for _ in range(6):  # stable but cut short, for less than the unreadable limit
        assert watcher.poll() == []
        clock.advance(0.25)
    assert watcher.pending == ["vol_0007.nii"]
    with path.open("ab") as f:
        f.write(raw[len(raw) // 2 :])
    complete_at = clock()
    ready = settle(watcher, clock)
    assert [r.index for r in ready] == [7]
    np.testing.assert_array_equal(ready[0].volume.data, data)
    assert ready[0].completed_at == complete_at
    assert watcher.pending == []
    assert messages(logs) == []


def test_an_unreadable_file_is_reported_once_and_not_waited_for(tmp_path: Path, clock: Clock, logs):
    write(tmp_path, "vol_0001.nii", 1)
    (tmp_path / "vol_0002.nii").write_bytes(GARBAGE)
    write(tmp_path, "vol_0003.nii", 3)
    watcher = make_watcher(tmp_path, clock, unreadable_s=0.5, gap_s=5.0)
    assert [r.index for r in settle(watcher, clock)] == [1]  # 3 waits for 2
    clock.advance(0.3)
    assert watcher.poll() == []
    clock.advance(0.3)  # 2 has now been unparsable for 0.5 s after it settled
    assert [r.index for r in watcher.poll()] == [3]
    assert messages(logs, logging.ERROR) == [
        "vol_0002.nii: unreadable (not a NIfTI-1/NIfTI-2 file (no header size 348 or 540)); "
        "skipped unless it changes"
    ]
    assert "gap: no volume 2 before vol_0003.nii (volume 3); pushing on" in messages(logs)
    clock.advance(1.0)
    assert watcher.poll() == []
    assert len(messages(logs, logging.ERROR)) == 1  # reported once
    write(tmp_path, "vol_0002.nii", 2)  # rewritten: read again, now too late
    assert settle(watcher, clock) == []
    assert messages(logs)[-1] == (
        "vol_0002.nii: volume 2 arrived after volume 3; dropped (out of order)"
    )


def test_a_gap_waits_for_the_missing_volume_then_pushes_on(tmp_path: Path, clock: Clock, logs):
    watcher = make_watcher(tmp_path, clock)
    write(tmp_path, "vol_0001.nii", 1)
    assert [r.index for r in settle(watcher, clock)] == [1]
    write(tmp_path, "vol_0003.nii", 3)  # before 2
    t3 = clock()
    assert settle(watcher, clock) == []  # 3 waits for 2
    write(tmp_path, "vol_0002.nii", 2)
    ready = settle(watcher, clock)
    assert [r.index for r in ready] == [2, 3]
    assert [r.completed_at for r in ready] == [t3, t3]  # 2 completed later: stamps never fall
    assert messages(logs) == []

    write(tmp_path, "vol_0005.nii", 5)  # 4 never comes
    assert settle(watcher, clock) == []
    ready_at = clock()
    clock.advance(GAP - 0.1)
    assert watcher.poll() == []
    clock.advance(0.1)
    assert clock() - ready_at == pytest.approx(GAP)
    assert [r.index for r in watcher.poll()] == [5]
    assert messages(logs) == ["gap: no volume 4 before vol_0005.nii (volume 5); pushing on"]
    write(tmp_path, "vol_0004.nii", 4)
    assert settle(watcher, clock) == []
    assert messages(logs)[-1] == (
        "vol_0004.nii: volume 4 arrived after volume 5; dropped (out of order)"
    )
    assert watcher.last_index == 5


def test_duplicates_are_logged_and_ignored(tmp_path: Path, clock: Clock, logs):
    watcher = make_watcher(tmp_path, clock)
    write(tmp_path, "vol_0001.nii", 1)
    assert [r.index for r in settle(watcher, clock)] == [1]
    write(tmp_path, "vol_0001.nii.gz", 11)  # same index, another file
    assert settle(watcher, clock) == []
    path = tmp_path / "vol_0001.nii"
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # the same file touched again
    assert settle(watcher, clock) == []
    write(tmp_path, "vol_0003.nii", 3)
    assert settle(watcher, clock) == []  # waits for 2
    write(tmp_path, "vol_0003b.nii", 33)  # a duplicate of a volume still waiting
    assert settle(watcher, clock) == []
    assert messages(logs) == [
        "vol_0001.nii.gz: duplicate of volume 1 (vol_0001.nii); ignored",
        "vol_0001.nii: changed after volume 1 was read; ignored (duplicate)",
        "vol_0003b.nii: duplicate of volume 3 (vol_0003.nii); ignored",
    ]
    clock.advance(GAP)
    ready = watcher.poll()
    assert [r.path.name for r in ready] == ["vol_0003.nii"]


def test_flush_hands_out_waiting_volumes_and_names_incomplete_files(
    tmp_path: Path, clock: Clock, logs
):
    watcher = make_watcher(tmp_path, clock)
    write(tmp_path, "vol_0001.nii", 1)
    assert [r.index for r in settle(watcher, clock)] == [1]
    write(tmp_path, "vol_0003.nii", 3)
    (tmp_path / "vol_0004.nii").write_bytes(GARBAGE)
    assert settle(watcher, clock) == []
    assert [r.index for r in watcher.flush()] == [3]
    assert messages(logs) == [
        "vol_0004.nii: still incomplete or unreadable at exit; not pushed",
        "gap: no volume 2 before vol_0003.nii (volume 3); pushing on",
    ]


def test_dicom_index_comes_from_the_header(tmp_path: Path, clock: Clock, logs):
    (tmp_path / "img_0099.dcm").write_bytes(dicom_bytes(int_volume(1), instance=2))
    (tmp_path / "img_0098.dcm").write_bytes(dicom_bytes(int_volume(2), instance=1))
    write(tmp_path, "scan.nii", 5)  # no number anywhere
    watcher = make_watcher(tmp_path, clock)
    ready = settle(watcher, clock)
    assert [(r.index, r.path.name) for r in ready] == [(1, "img_0098.dcm"), (2, "img_0099.dcm")]
    np.testing.assert_array_equal(ready[1].volume.data, int_volume(1))
    assert messages(logs) == [
        "scan.nii: no volume index (no number in the file name, no DICOM "
        "InstanceNumber/AcquisitionNumber); skipped unless it changes"
    ]


def test_activity_pattern_and_names(tmp_path: Path, clock: Clock):
    watcher = make_watcher(tmp_path, clock, pattern="run1_*.nii")
    assert watcher.last_activity == 100.0
    clock.advance(5.0)
    write(tmp_path, "run2_0001.nii", 1)  # does not match the pattern
    assert settle(watcher, clock) == []
    assert watcher.last_activity == 100.0
    write(tmp_path, "run1_0001.nii", 1)
    assert [r.index for r in settle(watcher, clock)] == [1]
    assert watcher.last_activity == 105.25

    assert [name_index(n) for n in ["vol_0007.nii", "001_000004_000012.dcm", "a7b.nii.gz"]] == [
        7,
        12,
        7,
    ]
    assert name_index("MR.1.3.12.2.1107") == 1107
    assert name_index("scan.nii") is None
    kept = ["a.nii", "a.NII.GZ", "a.dcm", "a.IMA", "MR000012", "MR.1.3.12.2"]
    dropped = [".a.nii", "a.nii.part", "a.nii.gz.tmp", "DICOMDIR", "notes.txt", "a.json"]
    assert [is_volume_name(n) for n in kept] == [True] * len(kept)
    assert [is_volume_name(n) for n in dropped] == [False] * len(dropped)


def test_an_oversize_file_is_reported_at_once_and_not_read_again(
    tmp_path: Path, clock: Clock, logs
):
    """A file larger than a volume may be will never parse: one error, one read, no retries."""
    from bci.bridge.volumes import MAX_VOLUME_BYTES, read_volume

    reads: list[str] = []

    def reader(path: Path):
        reads.append(path.name)
        return read_volume(path)

    write(tmp_path, "vol_0001.nii", 1)
    with open(tmp_path / "vol_0002.dcm", "wb") as f:
        f.truncate(2 * 2**30)  # a 2 GB sparse file
    write(tmp_path, "vol_0003.nii", 3)
    watcher = make_watcher(tmp_path, clock, reader=reader, gap_s=5.0)
    assert [r.index for r in settle(watcher, clock)] == [1, 3]  # 3 does not wait for 2
    for _ in range(10):
        clock.advance(0.05)
        assert watcher.poll() == []
    assert reads.count("vol_0002.dcm") == 1
    assert messages(logs, logging.ERROR) == [
        f"vol_0002.dcm: unreadable ({2 * 2**30} bytes, over the {MAX_VOLUME_BYTES} bytes a "
        "volume may have); skipped unless it changes"
    ]


def write_at(folder: Path, name: str, seed: int, mtime_s: float) -> None:
    """A volume file whose last write is dated ``mtime_s`` (file-system clock)."""
    write(folder, name, seed)
    os.utime(folder / name, ns=(int(mtime_s * 1e9), int(mtime_s * 1e9)))


def test_a_lagging_watcher_stamps_volumes_when_they_were_written(tmp_path: Path, clock: Clock):
    # The file server's clock is 1.7e9 s ahead of the watcher's (any constant skew); volume 1 is
    # seen 0.05 s after its last write, then the watcher falls behind: 2-4 arrive every 0.5 s
    # but are seen together, 1.4 s after 2 was written.
    skew = 1.7e9 + 0.123456
    watcher = make_watcher(tmp_path, clock, use_mtime=True)
    write_at(tmp_path, "vol_0001.nii", 1, clock() - 0.05 + skew)
    first = settle(watcher, clock)
    assert [r.completed_at for r in first] == [100.0]  # as seen: nothing better known yet
    assert watcher.mtime_offset == pytest.approx(0.05 - skew)
    written = [clock() + 0.5, clock() + 1.0, clock() + 1.5]
    for i, t in enumerate(written, start=2):
        write_at(tmp_path, f"vol_{i:04d}.nii", i, t + skew)
    clock.advance(1.9)
    ready = settle(watcher, clock)
    assert [r.index for r in ready] == [2, 3, 4]
    np.testing.assert_allclose([r.completed_at for r in ready], np.add(written, 0.05), atol=1e-6)
    poll_stamps = clock() - SETTLE - 0.05
    assert all(r.completed_at < poll_stamps for r in ready)


def test_whole_second_modification_times_fall_back_to_poll_times(
    tmp_path: Path, clock: Clock, logs
):
    watcher = make_watcher(tmp_path, clock, use_mtime=True)
    write_at(tmp_path, "vol_0001.nii", 1, 1_700_000_000.0)  # FAT, some shares: whole seconds
    clock.advance(0.5)
    seen = clock()
    assert [r.completed_at for r in settle(watcher, clock)] == [seen]
    assert watcher.use_mtime is False and watcher.mtime_offset is None
    assert messages(logs, logging.INFO) == [
        "vol_0001.nii: modification times in whole seconds; volumes are stamped when they are "
        "seen complete"
    ]
    write_at(tmp_path, "vol_0002.nii", 2, 1_700_000_000.25)  # fine again: still poll times
    clock.advance(0.7)
    seen = clock()
    assert [r.completed_at for r in settle(watcher, clock)] == [seen]


def test_a_step_of_the_file_clock_is_forgotten_after_the_window(tmp_path: Path, clock: Clock):
    # Volumes every 0.5 s, each seen 0.05 s after it was written; after volume 4 the file
    # server's clock steps back by 1 s (NTP): its files are stamped 1 s early until every delay
    # measured before the step has left the window.
    watcher = make_watcher(tmp_path, clock, use_mtime=True, settle_s=0.0)
    skew, written, stamps = 1.7e9, [], []
    for i in range(4 + MTIME_WINDOW + 2):
        t = clock() + 0.5
        clock.advance(0.5)
        step = -1.0 if i >= 4 else 0.0
        write_at(tmp_path, f"vol_{i:04d}.nii", i, t - 0.05 + skew + step)
        written.append(t - 0.05)
        watcher.poll()  # seen at its final size and time
        stamps += [r.completed_at for r in watcher.poll()]  # settled (settle_s 0): read
    errors = np.subtract(stamps, np.add(written, 0.05))  # the shortest delay is kept in
    np.testing.assert_allclose(errors[:4], 0.0, atol=1e-6)
    assert errors[4] == pytest.approx(-0.5)  # 1 s early, held at the previous stamp
    np.testing.assert_allclose(errors[5 : MTIME_WINDOW + 3], -1.0, atol=1e-6)  # 1 s early
    # forgotten once the 4 delays from before the step have left the window
    np.testing.assert_allclose(errors[MTIME_WINDOW + 3 :], 0.0, atol=1e-6)
    assert len(errors) == MTIME_WINDOW + 6
