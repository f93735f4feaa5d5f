"""Read one volume file (NIfTI or DICOM) into a 3-D float32 array; load and apply the ROI mask.

Formats
-------
NIfTI (``.nii``, ``.nii.gz``; NIfTI-1 or NIfTI-2, single file)
    Through nibabel, with the header's scaling (``scl_slope``/``scl_inter``) applied. A 4-D
    file must hold exactly one volume (shape ``(x, y, z, 1)``). The TR is ``pixdim[4]`` (in
    the header's time unit) when the image is 4-D or the header names a time unit; a 3-D
    header with no time unit has no TR (nibabel writes ``pixdim[4] = 1`` by default).
DICOM (``.dcm``, ``.ima``, or any other name)
    Through pydicom, one file per volume:

    * a multi-frame (enhanced) DICOM, or any DICOM whose pixel data is 3-D: one frame per
      slice;
    * a Siemens mosaic: one 2-D image tiling the slices, row by row, in a square grid of
      ``ceil(sqrt(n))`` tiles, ``n`` from the private tag NumberOfImagesInMosaic
      (0019,100A) of ``SIEMENS MR HEADER``.

    ``RescaleSlope``/``RescaleIntercept`` are applied (top level, shared or per-frame
    functional groups). A DICOM holding a single 2-D slice is refused: volumes split into one
    file per slice are not supported. The TR is ``RepetitionTime`` (ms; top level or the
    shared MR timing functional group); the volume index is ``InstanceNumber``, else
    ``AcquisitionNumber``.

    Voxel axes: ``volume[i, j, k]`` is column ``i``, row ``j`` of slice (frame or tile) ``k``,
    with no flips, so a mask for DICOM input must be drawn on that grid (save a volume read
    by :func:`read_volume` with nibabel to draw it on).

Size
----
No file is read whole on trust. A NIfTI file is read up to the size its header gives (header,
extensions and the data its ``dim`` and ``bitpix`` describe), a gzipped one inflated
incrementally and stopped there, and any volume over :data:`MAX_VOLUME_BYTES` (a DICOM file by
its size on disk) is refused with :class:`OversizeVolumeError` before its data is read: a
2 GB sparse file, or a small gzip that inflates to gigabytes, costs a header read.

Mask
----
A 3-D NIfTI of the volumes' shape; the kept voxels are the nonzero (and not NaN) ones, in C
order of their indices (``np.nonzero`` order: the last axis varies fastest). Channel ``c`` of
the stream is voxel ``Mask.indices[c]``, labelled ``voxel-i-j-k``.
"""

from __future__ import annotations

import io
import math
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from pydicom.dataset import Dataset

NIFTI_SUFFIXES = (".nii", ".nii.gz")
SIEMENS_CREATOR = "SIEMENS MR HEADER"
_TIME_UNITS = {"sec": 1.0, "msec": 1e-3, "usec": 1e-6}


MAX_VOLUME_BYTES = 512 * 2**20
"""The largest volume file (inflated, for gzip) read: 512 MiB, a 512^3 float32 volume."""
_CHUNK = 2**20
_NIFTI2_HEADER = 540


class VolumeError(ValueError):
    """A file that is not (yet) a readable volume, or a bad mask; the message is one line."""


class OversizeVolumeError(VolumeError):
    """A file that will not become a readable volume: larger than its header or the limit."""


@dataclass(frozen=True)
class Volume:
    """One volume read from a file.

    Attributes
    ----------
    data : np.ndarray
        3-D float32 array.
    tr_s : float or None
        Repetition time from the header, in seconds (None when the header has none).
    index : int or None
        Acquisition index from the header (DICOM InstanceNumber/AcquisitionNumber); None for
        NIfTI, whose index comes from the file name.
    affine : np.ndarray or None
        The NIfTI voxel-to-world affine (None for DICOM).
    """

    data: np.ndarray
    tr_s: float | None = None
    index: int | None = None
    affine: np.ndarray | None = None


@dataclass(frozen=True)
class Mask:
    """The ROI: which voxels of a volume become the stream's channels.

    Attributes
    ----------
    path : Path
        The mask file.
    shape : tuple of int
        The 3-D shape volumes must have.
    indices : np.ndarray
        ``(n_voxels, 3)`` int array of the kept voxels, in C order.
    affine : np.ndarray
        The mask's voxel-to-world affine.
    """

    path: Path
    shape: tuple[int, int, int]
    indices: np.ndarray
    affine: np.ndarray

    @property
    def n_voxels(self) -> int:
        """How many voxels are kept (the stream's channel count)."""
        return len(self.indices)

    def labels(self) -> list[str]:
        """Channel labels ``voxel-i-j-k``, one per kept voxel in channel order."""
        return [f"voxel-{i}-{j}-{k}" for i, j, k in self.indices.tolist()]

    def apply(self, volume: np.ndarray) -> np.ndarray:
        """The kept voxels of ``volume`` as a float32 vector in channel order.

        Raises
        ------
        VolumeError
            ``shape (4, 4, 5) differs from the mask's (4, 4, 4)``.
        """
        if volume.shape != self.shape:
            raise VolumeError(f"shape {volume.shape} differs from the mask's {self.shape}")
        i, j, k = self.indices.T
        return np.asarray(volume[i, j, k], dtype=np.float32)


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def is_nifti_name(name: str) -> bool:
    """Whether a file name is a NIfTI one (``.nii`` or ``.nii.gz``, any case)."""
    return name.lower().endswith(NIFTI_SUFFIXES)


def _nifti_size(head: bytes) -> int:
    """The bytes a single-file NIfTI holds (header, extensions, data), from its first bytes."""
    if len(head) < 4:
        raise VolumeError(f"{len(head)} bytes is too short for a NIfTI header")
    for order in "<>":
        size = struct.unpack(order + "i", head[:4])[0]
        if size in (348, _NIFTI2_HEADER):
            break
    else:
        raise VolumeError("not a NIfTI-1/NIfTI-2 file (no header size 348 or 540)")
    if len(head) < size:
        raise VolumeError(f"NIfTI header cut short ({len(head)} of {size} bytes)")
    if size == 348:
        dims = struct.unpack(order + "8h", head[40:56])
        bitpix = struct.unpack(order + "h", head[72:74])[0]
        offset = struct.unpack(order + "f", head[108:112])[0]
    else:
        bitpix = struct.unpack(order + "h", head[14:16])[0]
        dims = struct.unpack(order + "8q", head[16:80])
        offset = struct.unpack(order + "q", head[168:176])[0]
    n = dims[0]
    shape = dims[1 : n + 1] if 1 <= n <= 7 else ()
    if not shape or min(shape) < 1 or bitpix < 8 or bitpix % 8 or not 0 <= offset < 2**40:
        raise OversizeVolumeError(
            f"bad NIfTI header (dim {list(dims)}, bitpix {bitpix}, vox_offset {offset})"
        )
    total = max(int(offset), size) + math.prod(shape) * (bitpix // 8)
    if total > MAX_VOLUME_BYTES:
        raise OversizeVolumeError(
            f"its NIfTI header gives {total} bytes (shape {list(shape)}), over the "
            f"{MAX_VOLUME_BYTES} bytes a volume may have"
        )
    return total


def _inflated_nifti(f: io.BufferedIOBase) -> bytes:
    """A gzipped NIfTI inflated chunk by chunk, never beyond the size its header gives."""
    inflater = zlib.decompressobj(wbits=31)
    out = bytearray()
    total: int | None = None
    try:
        while not inflater.eof:
            data = f.read(_CHUNK)
            if not data:
                break
            while data and not inflater.eof:
                limit = _NIFTI2_HEADER if total is None else total
                out += inflater.decompress(data, limit + 1 - len(out))
                data = inflater.unconsumed_tail
                if total is None and (len(out) >= _NIFTI2_HEADER or inflater.eof):
                    total = _nifti_size(bytes(out))
                if total is not None and len(out) > total and not inflater.eof:
                    raise OversizeVolumeError(
                        f"gzip data inflates beyond the {total} bytes its NIfTI header gives"
                    )
    except zlib.error as err:
        raise VolumeError(f"gzip data cut short or damaged ({_one_line(err)})") from None
    if not inflater.eof:
        raise VolumeError("gzip data cut short or damaged (no end of stream)")
    return bytes(out if total is None else out[:total])


def _nifti_file_bytes(f: io.BufferedIOBase) -> bytes:
    """A NIfTI file's bytes (inflated when gzipped), read no further than its header says."""
    head = f.read(_NIFTI2_HEADER)
    if head[:2] == b"\x1f\x8b":
        f.seek(0)
        return _inflated_nifti(f)
    total = _nifti_size(head)
    raw = head + f.read(max(total - len(head), 0))
    if len(raw) < total:
        raise VolumeError(f"NIfTI data cut short or damaged ({len(raw)} of {total} bytes)")
    return raw[:total]


def _nifti_image(raw: bytes) -> nib.Nifti1Image:
    raw = _nifti_file_bytes(io.BytesIO(raw))  # inflated, and no longer than its header says
    sizes = {struct.unpack("<i", raw[:4])[0], struct.unpack(">i", raw[:4])[0]}
    kind = nib.Nifti2Image if _NIFTI2_HEADER in sizes else nib.Nifti1Image
    try:
        return kind.from_bytes(raw)
    except Exception as err:  # nibabel raises many kinds on a damaged header
        raise VolumeError(f"bad NIfTI header ({_one_line(err)})") from None


def _nifti_data(img: nib.Nifti1Image) -> np.ndarray:
    try:
        data = np.asanyarray(img.dataobj)
    except Exception as err:
        raise VolumeError(f"NIfTI data cut short or damaged ({_one_line(err)})") from None
    return np.asarray(data, dtype=np.float32)


def _nifti_tr(header: nib.Nifti1Header) -> float | None:
    tr = float(str(np.float32(header["pixdim"][4])))  # the float32's shortest decimal: 0.8
    unit = header.get_xyzt_units()[1]
    if not (math.isfinite(tr) and tr > 0):
        return None
    if unit in _TIME_UNITS:
        return tr * _TIME_UNITS[unit]
    return tr if int(header["dim"][0]) >= 4 else None


def read_nifti(raw: bytes) -> Volume:
    """A NIfTI file's bytes (gzipped or not) as a :class:`Volume`.

    Raises
    ------
    VolumeError
        When the bytes are not a complete NIfTI file holding one 3-D volume.
    """
    img = _nifti_image(raw)
    data = _nifti_data(img)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        what = f"{data.shape[3]} volumes" if data.ndim == 4 else f"a {data.ndim}-D image"
        raise VolumeError(f"holds {what} {data.shape}; expected one 3-D volume per file")
    return Volume(np.ascontiguousarray(data), _nifti_tr(img.header), None, img.affine)


def _first_item(ds: Dataset, *keywords: str) -> Dataset | None:
    """Walk ``keywords`` down first items of sequences: ``_first_item(ds, "A", "B")``."""
    for keyword in keywords:
        seq = ds.get(keyword) if ds is not None else None
        if not seq:
            return None
        ds = seq[0]
    return ds


def _rescale_of(item: Dataset | None) -> tuple[float, float] | None:
    if item is None or "RescaleSlope" not in item:
        return None
    return float(item.RescaleSlope), float(item.get("RescaleIntercept", 0.0) or 0.0)


def _rescales(ds: Dataset, n_frames: int) -> list[tuple[float, float]]:
    """``(slope, intercept)`` per frame: per-frame groups, else shared groups, else top level."""
    default = _rescale_of(ds)
    if default is None:
        shared = _first_item(ds, "SharedFunctionalGroupsSequence")
        default = _rescale_of(_first_item(shared, "PixelValueTransformationSequence"))
    default = default or (1.0, 0.0)
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    out = []
    for f in range(n_frames):
        item = per_frame[f] if f < len(per_frame) else None
        found = _rescale_of(_first_item(item, "PixelValueTransformationSequence"))
        out.append(found or default)
    return out


def _mosaic_count(ds: Dataset) -> int | None:
    try:
        value = ds.get_private_item(0x0019, 0x0A, SIEMENS_CREATOR).value
    except KeyError:
        return None
    if isinstance(value, bytes):
        return int.from_bytes(value[:2], "little") if len(value) >= 2 else None
    return int(value)


def _is_mosaic(ds: Dataset) -> bool:
    image_type = [str(v).upper() for v in (ds.get("ImageType") or [])]
    return "MOSAIC" in image_type or _mosaic_count(ds) is not None


def _unmosaic(image: np.ndarray, n: int) -> np.ndarray:
    """``(rows, cols)`` mosaic -> ``(n, tile_rows, tile_cols)`` slices."""
    grid = math.ceil(math.sqrt(n))
    rows, cols = image.shape
    if n < 1 or rows % grid or cols % grid:
        raise VolumeError(
            f"mosaic of {rows}x{cols} pixels cannot hold {n} slices in a {grid}x{grid} grid"
        )
    h, w = rows // grid, cols // grid
    tiles = image.reshape(grid, h, grid, w).transpose(0, 2, 1, 3).reshape(grid * grid, h, w)
    return tiles[:n]


def _dicom_tr(ds: Dataset) -> float | None:
    value = ds.get("RepetitionTime")
    if value is None:
        shared = _first_item(ds, "SharedFunctionalGroupsSequence")
        timing = _first_item(shared, "MRTimingAndRelatedParametersSequence")
        value = timing.get("RepetitionTime") if timing is not None else None
    try:
        tr = float(value) / 1000.0 if value not in (None, "") else math.nan
    except (TypeError, ValueError):
        return None
    return tr if math.isfinite(tr) and tr > 0 else None


def _dicom_index(ds: Dataset) -> int | None:
    for keyword in ("InstanceNumber", "AcquisitionNumber"):
        value = ds.get(keyword)
        if value not in (None, ""):
            try:
                return int(value)
            except (TypeError, ValueError):
                continue
    return None


def read_dicom(raw: bytes) -> Volume:
    """A DICOM file's bytes as a :class:`Volume` (multi-frame/3-D or Siemens mosaic).

    Raises
    ------
    VolumeError
        When the bytes are not a complete DICOM image holding a whole volume.
    """
    try:
        ds = pydicom.dcmread(io.BytesIO(raw), force=True)
    except Exception as err:
        raise VolumeError(f"not a readable DICOM file ({_one_line(err)})") from None
    if "PixelData" not in ds:
        raise VolumeError("no DICOM pixel data (not a DICOM image, or cut short)")
    if int(ds.get("SamplesPerPixel", 1) or 1) != 1:
        raise VolumeError(f"has {ds.SamplesPerPixel} samples per pixel; expected grey levels")
    try:
        pixels = ds.pixel_array
    except Exception as err:
        raise VolumeError(f"DICOM pixel data cut short or unreadable ({_one_line(err)})") from None
    if pixels.ndim == 2:
        if not _is_mosaic(ds):
            raise VolumeError(
                f"a single 2-D slice {pixels.shape}; one file per slice is not supported "
                "(need a multi-frame/3-D DICOM or a Siemens mosaic)"
            )
        n = _mosaic_count(ds)
        if n is None:
            raise VolumeError("Siemens mosaic without NumberOfImagesInMosaic (0019,100A)")
        frames = _unmosaic(pixels, n)
        rescale = _rescales(ds, 1) * n
    elif pixels.ndim == 3:
        frames = pixels
        rescale = _rescales(ds, len(frames))
    else:
        raise VolumeError(f"DICOM pixel data of shape {pixels.shape}; expected 2-D or 3-D")
    slopes = np.array([s for s, _ in rescale])[:, None, None]
    intercepts = np.array([i for _, i in rescale])[:, None, None]
    if np.all(slopes == 1.0) and np.all(intercepts == 0.0):
        data = frames.astype(np.float32)
    else:
        data = (frames * slopes + intercepts).astype(np.float32)
    volume = np.ascontiguousarray(data.transpose(2, 1, 0))  # (slice, row, col) -> (col, row, slice)
    return Volume(volume, _dicom_tr(ds), _dicom_index(ds), None)


def read_volume(path: str | Path) -> Volume:
    """Read one volume file: NIfTI by name (``.nii``, ``.nii.gz``), anything else as DICOM.

    The file is read into memory once, no further than its header's size (see Size above),
    and parsed from those bytes.

    Parameters
    ----------
    path : str | Path
        The file.

    Returns
    -------
    Volume

    Raises
    ------
    VolumeError
        One line saying why the file is not (yet) a readable volume;
        :class:`OversizeVolumeError` when it never will be (larger than its header or the
        limit, or a header that describes no volume).
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if not size:
                raise VolumeError("empty file")
            if is_nifti_name(path.name):
                raw = _nifti_file_bytes(f)
            elif size > MAX_VOLUME_BYTES:
                raise OversizeVolumeError(
                    f"{size} bytes, over the {MAX_VOLUME_BYTES} bytes a volume may have"
                )
            else:
                raw = f.read()
    except OSError as err:
        raise VolumeError(f"cannot read the file ({err.strerror or _one_line(err)})") from None
    return read_nifti(raw) if is_nifti_name(path.name) else read_dicom(raw)


def load_mask(path: str | Path) -> Mask:
    """Load the ROI mask: a 3-D NIfTI; nonzero, non-NaN voxels are kept in C order.

    Parameters
    ----------
    path : str | Path
        ``.nii`` or ``.nii.gz``.

    Returns
    -------
    Mask

    Raises
    ------
    VolumeError
        ``mask file not found: PATH``, ``cannot read mask PATH: REASON``,
        ``mask PATH is not 3-D (shape (4, 4, 4, 2))``, ``mask PATH has no nonzero voxels``.
    """
    path = Path(path)
    if not path.is_file():
        raise VolumeError(f"mask file not found: {path}")
    try:
        with open(path, "rb") as f:
            img = _nifti_image(_nifti_file_bytes(f))
        data = _nifti_data(img)
    except VolumeError as err:
        raise VolumeError(f"cannot read mask {path}: {err}") from None
    except OSError as err:
        raise VolumeError(f"cannot read mask {path}: {err.strerror or _one_line(err)}") from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise VolumeError(f"mask {path} is not 3-D (shape {data.shape})")
    keep = (data != 0) & ~np.isnan(data)
    if not keep.any():
        raise VolumeError(f"mask {path} has no nonzero voxels")
    indices = np.argwhere(keep)  # C order of the nonzero indices
    return Mask(path, tuple(int(n) for n in data.shape), indices, np.asarray(img.affine))
