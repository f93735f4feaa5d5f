"""Reading volume files (NIfTI, DICOM multi-frame and mosaic) and the ROI mask of the bridge."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from bci.bridge.volumes import (
    MAX_VOLUME_BYTES,
    OversizeVolumeError,
    VolumeError,
    load_mask,
    read_dicom,
    read_nifti,
    read_volume,
)

SHAPE = (4, 3, 5)  # (columns, rows, slices) of the DICOM volumes below


def nifti_bytes(data: np.ndarray, zooms: tuple[float, ...] | None = None) -> bytes:
    img = nib.Nifti1Image(data, np.eye(4))
    if zooms is not None:
        img.header.set_zooms(zooms)
    return img.to_bytes()


def dicom_bytes(
    volume: np.ndarray,
    *,
    mosaic: bool = False,
    instance: int | None = 1,
    tr_ms: float | None = 800.0,
    rescale: tuple[float, float] | None = None,
) -> bytes:
    """A DICOM file holding ``volume`` (columns, rows, slices) as int16, the bridge's axes.

    Multi-frame (one frame per slice) or, with ``mosaic``, a Siemens mosaic in a square grid.
    """
    frames = np.ascontiguousarray(volume.transpose(2, 1, 0)).astype("<i2")  # (slice, row, col)
    n, rows, cols = frames.shape
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "MR"
    if instance is not None:
        ds.InstanceNumber = instance
    if tr_ms is not None:
        ds.RepetitionTime = tr_ms
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    if mosaic:
        grid = int(np.ceil(np.sqrt(n)))
        tiles = np.zeros((grid * grid, rows, cols), "<i2")
        tiles[:n] = frames
        image = tiles.reshape(grid, grid, rows, cols).transpose(0, 2, 1, 3)
        pixels = image.reshape(grid * rows, grid * cols)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "MOSAIC"]
        ds.private_block(0x0019, "SIEMENS MR HEADER", create=True).add_new(0x0A, "US", n)
    else:
        pixels = frames
        ds.NumberOfFrames = n
    ds.Rows, ds.Columns = pixels.shape[-2:]
    ds.PixelData = pixels.tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def int_volume(seed: int, shape: tuple[int, int, int] = SHAPE) -> np.ndarray:
    return np.random.default_rng(seed).integers(-300, 3000, shape).astype(np.float32)


# -- NIfTI -----------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_nifti_volume_is_read_exactly(tmp_path: Path, suffix: str):
    data = np.random.default_rng(0).standard_normal((5, 4, 3)).astype(np.float32)
    path = tmp_path / f"vol_0001{suffix}"
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    volume = read_volume(path)
    assert volume.data.dtype == np.float32
    np.testing.assert_array_equal(volume.data, data)
    assert volume.index is None  # NIfTI: the index comes from the file name
    assert volume.tr_s is None  # a 3-D header without a time unit has no TR


def test_nifti_scaling_and_single_volume_4d():
    raw = np.arange(24, dtype=np.int16).reshape(2, 3, 4, 1)
    img = nib.Nifti1Image(raw, np.eye(4))
    img.header.set_slope_inter(0.5, 10.0)
    img.header.set_zooms((2.0, 2.0, 2.0, 1.25))
    volume = read_nifti(img.to_bytes())
    np.testing.assert_array_equal(volume.data, raw[..., 0] * 0.5 + 10.0)
    assert volume.tr_s == 1.25


def test_nifti_tr_of_a_3d_header_with_a_time_unit():
    img = nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4))
    img.header["pixdim"][4] = 1500.0
    img.header.set_xyzt_units("mm", "msec")
    assert read_nifti(img.to_bytes()).tr_s == pytest.approx(1.5)


def test_nifti_damaged_or_cut_short_is_one_line_volume_error():
    raw = nifti_bytes(np.random.default_rng(0).standard_normal((8, 8, 8)).astype(np.float32))
    cases = {
        raw[: len(raw) // 2]: "NIfTI data cut short or damaged",
        raw[:200]: "NIfTI header cut short (200 of 348 bytes)",
        gzip.compress(raw)[:300]: "gzip data cut short or damaged",
        b"\x00garbage" * 100: "not a NIfTI-1/NIfTI-2 file",
        raw[:2]: "2 bytes is too short for a NIfTI header",
    }
    for data, expected in cases.items():
        with pytest.raises(VolumeError) as err:
            read_nifti(data)
        assert expected in str(err.value)
        assert "\n" not in str(err.value)


def test_nifti_with_several_volumes_is_refused():
    with pytest.raises(VolumeError, match=r"^holds 2 volumes \(2, 2, 2, 2\); expected one 3-D"):
        read_nifti(nifti_bytes(np.zeros((2, 2, 2, 2), np.float32)))


# -- DICOM -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mosaic", [False, True], ids=["multi-frame", "mosaic"])
def test_dicom_volume_values_tr_and_index(tmp_path: Path, mosaic: bool):
    data = int_volume(1)
    path = tmp_path / "001_000004_000012.dcm"
    path.write_bytes(dicom_bytes(data, mosaic=mosaic, instance=12, tr_ms=800.0))
    volume = read_volume(path)
    assert volume.data.shape == SHAPE
    np.testing.assert_array_equal(volume.data, data)
    assert volume.tr_s == pytest.approx(0.8)
    assert volume.index == 12


def test_dicom_rescale_and_acquisition_number(tmp_path: Path):
    data = int_volume(2)
    ds = pydicom.dcmread(io.BytesIO(dicom_bytes(data, instance=None, rescale=(2.0, -5.0))))
    ds.AcquisitionNumber = 33
    path = tmp_path / "MR.1.3.12.2.1107"  # an extensionless DICOM named by UID
    ds.save_as(path, enforce_file_format=True)
    volume = read_volume(path)
    np.testing.assert_array_equal(volume.data, data * 2.0 - 5.0)
    assert volume.index == 33


def test_dicom_per_frame_rescale_from_functional_groups():
    data = int_volume(3)
    ds = pydicom.dcmread(io.BytesIO(dicom_bytes(data, tr_ms=None)))
    groups = []
    for f in range(SHAPE[2]):
        transform = Dataset()
        transform.RescaleSlope, transform.RescaleIntercept = float(f + 1), 0.0
        group = Dataset()
        group.PixelValueTransformationSequence = [transform]
        groups.append(group)
    ds.PerFrameFunctionalGroupsSequence = groups
    timing = Dataset()
    timing.RepetitionTime = 2000.0
    shared = Dataset()
    shared.MRTimingAndRelatedParametersSequence = [timing]
    ds.SharedFunctionalGroupsSequence = [shared]
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    volume = read_dicom(buf.getvalue())
    np.testing.assert_array_equal(volume.data, data * np.arange(1, SHAPE[2] + 1))
    assert volume.tr_s == 2.0


def test_dicom_single_slice_and_damaged_files_are_refused():
    one_slice = dicom_bytes(int_volume(4, (4, 3, 1)))
    ds = pydicom.dcmread(io.BytesIO(one_slice))
    del ds.NumberOfFrames
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    with pytest.raises(VolumeError, match=r"^a single 2-D slice \(3, 4\); one file per slice"):
        read_dicom(buf.getvalue())
    whole = dicom_bytes(int_volume(5))
    with pytest.raises(VolumeError, match="^DICOM pixel data cut short or unreadable"):
        read_dicom(whole[:-7])
    with pytest.raises(VolumeError, match="^no DICOM pixel data"):
        read_dicom(whole[:200])
    with pytest.raises(VolumeError, match="^no DICOM pixel data"):
        read_dicom(b"this is not a DICOM file" * 20)


def test_empty_or_missing_files(tmp_path: Path):
    (tmp_path / "vol_0001.dcm").write_bytes(b"")
    with pytest.raises(VolumeError, match="^empty file$"):
        read_volume(tmp_path / "vol_0001.dcm")
    with pytest.raises(VolumeError, match="^cannot read the file"):
        read_volume(tmp_path / "gone.nii")


# -- mask ------------------------------------------------------------------------------------


def test_mask_keeps_nonzero_voxels_in_c_order(tmp_path: Path):
    m = np.zeros((3, 4, 2), np.float32)
    m[2, 0, 1] = 1
    m[0, 3, 0] = 5
    m[0, 1, 1] = -1
    m[1, 1, 1] = np.nan  # NaN is not kept
    nib.save(nib.Nifti1Image(m, np.eye(4)), tmp_path / "mask.nii.gz")
    mask = load_mask(tmp_path / "mask.nii.gz")
    assert mask.shape == (3, 4, 2)
    assert mask.indices.tolist() == [[0, 1, 1], [0, 3, 0], [2, 0, 1]]
    assert mask.labels() == ["voxel-0-1-1", "voxel-0-3-0", "voxel-2-0-1"]
    volume = np.arange(24, dtype=np.float32).reshape(3, 4, 2)
    np.testing.assert_array_equal(mask.apply(volume), [3.0, 6.0, 17.0])
    with pytest.raises(
        VolumeError, match=r"^shape \(3, 4, 3\) differs from the mask's \(3, 4, 2\)$"
    ):
        mask.apply(np.zeros((3, 4, 3), np.float32))


def test_mask_errors_are_one_line(tmp_path: Path):
    missing = tmp_path / "nope.nii.gz"
    with pytest.raises(VolumeError) as err:
        load_mask(missing)
    assert str(err.value) == f"mask file not found: {missing}"
    garbage = tmp_path / "garbage.nii"
    garbage.write_bytes(b"\x01" * 1000)
    with pytest.raises(VolumeError) as err:
        load_mask(garbage)
    assert str(err.value) == (
        f"cannot read mask {garbage}: not a NIfTI-1/NIfTI-2 file (no header size 348 or 540)"
    )
    four_d = tmp_path / "4d.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4, 2), np.uint8), np.eye(4)), four_d)
    with pytest.raises(VolumeError) as err:
        load_mask(four_d)
    assert str(err.value) == f"mask {four_d} is not 3-D (shape (4, 4, 4, 2))"
    empty = tmp_path / "empty.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.uint8), np.eye(4)), empty)
    with pytest.raises(VolumeError) as err:
        load_mask(empty)
    assert str(err.value) == f"mask {empty} has no nonzero voxels"


# -- what is read of a file ------------------------------------------------------------------

GIB = 2**30


def _peak_bytes(read, *args):
    """Python's peak allocation (tracemalloc) while ``read(*args)`` runs, and its outcome."""
    import tracemalloc

    tracemalloc.start()
    try:
        try:
            outcome = read(*args)
        except VolumeError as err:
            outcome = err
        return tracemalloc.get_traced_memory()[1], outcome
    finally:
        tracemalloc.stop()


def _sparse(path: Path, head: bytes, size: int) -> Path:
    """A file of ``size`` bytes that starts with ``head``; the rest is a hole (no disk used)."""
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(size)
    return path


def test_a_2_gb_sparse_nifti_is_read_only_as_far_as_its_header_says(tmp_path):
    data = np.arange(4 * 3 * 5, dtype=np.float32).reshape(4, 3, 5)
    path = _sparse(tmp_path / "vol_0001.nii", nifti_bytes(data), 2 * GIB)
    peak, volume = _peak_bytes(read_volume, path)
    np.testing.assert_array_equal(volume.data, data)
    assert peak < 2**20  # the header and 240 bytes of data, not 2 GB


def test_a_2_gb_sparse_file_with_no_header_or_a_huge_one_is_refused_after_its_header(tmp_path):
    huge = nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4))
    huge.header.set_data_shape((4096, 4096, 4096))  # 256 GiB of float32
    cases = {
        "zeros.nii": (b"", "not a NIfTI-1/NIfTI-2 file (no header size 348 or 540)"),
        "huge.nii": (
            huge.header.binaryblock,
            f"its NIfTI header gives {348 + 4 * 4096**3} bytes (shape [4096, 4096, 4096]), "
            f"over the {MAX_VOLUME_BYTES} bytes a volume may have",
        ),
        "volume.dcm": (
            b"",
            f"{2 * GIB} bytes, over the {MAX_VOLUME_BYTES} bytes a volume may have",
        ),
    }
    for name, (head, message) in cases.items():
        peak, err = _peak_bytes(read_volume, _sparse(tmp_path / name, head, 2 * GIB))
        assert isinstance(err, VolumeError) and str(err) == message
        assert isinstance(err, OversizeVolumeError) == (name != "zeros.nii")
        assert peak < 2**20


def test_a_gzip_bomb_is_inflated_no_further_than_its_header_says(tmp_path):
    """A small volume's gzip followed by 256 MiB of zeros (256 KiB gzipped) inflates ~3 KiB."""
    import zlib

    raw = nifti_bytes(np.ones((8, 8, 8), np.float32))
    deflate = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [deflate.compress(raw)]
    zeros = bytes(2**24)
    parts += [deflate.compress(zeros) for _ in range(16)]
    path = tmp_path / "vol_0001.nii.gz"
    path.write_bytes(b"".join([*parts, deflate.flush()]))
    assert path.stat().st_size < 2**20
    peak, err = _peak_bytes(read_volume, path)
    assert isinstance(err, OversizeVolumeError)
    assert str(err) == f"gzip data inflates beyond the {len(raw)} bytes its NIfTI header gives"
    assert peak < 4 * 2**20
    mask = tmp_path / "mask.nii.gz"
    mask.write_bytes(path.read_bytes())
    peak, err = _peak_bytes(load_mask, mask)
    assert isinstance(err, VolumeError)
    assert str(err) == (
        f"cannot read mask {mask}: gzip data inflates beyond the {len(raw)} bytes its NIfTI "
        "header gives"
    )
    assert peak < 4 * 2**20


def test_a_gzipped_volume_still_reads(tmp_path):
    data = np.random.default_rng(3).standard_normal((6, 5, 4)).astype(np.float32)
    path = tmp_path / "vol_0001.nii.gz"
    path.write_bytes(gzip.compress(nifti_bytes(data)))
    np.testing.assert_array_equal(read_volume(path).data, data)
